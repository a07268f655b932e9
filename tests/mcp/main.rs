//! Black-box tests of MCP: the supervisor against real third-party servers (the reference
//! `everything` and `filesystem` servers, the dual-era Python `mcp-server-time`) and small
//! script servers, process-tree cleanup, the `/v1/mcp/servers` endpoint, and `kubiya mcp
//! server` driven by the Python SDK client, and runs over MCP as the server's executions. The peers are installed into `tests/mcp-peers/` by
//! `make deps`; a test that finds them missing fails and says so.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests (and their helpers) fail by panicking"
)]

#[path = "../support/mock_upstream.rs"]
mod mock_upstream;
#[path = "../support/sse.rs"]
mod sse;
mod support;

mod agent;
mod calls;
mod conformance;
mod executions;
mod http;
mod oauth;
mod our_server;
mod peers;
mod processes;
mod remote;
