//! Our MCP server over stdio (what `kubiya mcp server` runs by default): one JSON-RPC message
//! per line in, one per line out, one [`Connection`] for the life of the process. Only
//! protocol messages reach the output; logs go to `tracing` (stderr).

use std::io;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::jsonrpc::{self, INVALID_REQUEST, PARSE_ERROR, RpcError};
use super::process::{LineRead, read_capped_line};
use super::server::{Connection, McpServer, outbound};

/// Longest request line we accept.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// After stdin closes, how long running calls get to wind down once cancelled.
const EOF_GRACE: Duration = Duration::from_secs(5);

/// Serves one client on `input`/`output` until `input` ends.
pub async fn serve<R, W>(input: R, output: W, server: McpServer) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, out_rx) = outbound();
    let writer = tokio::spawn(write_messages(output, out_rx));
    let connection = Connection::new();
    connection.set_unsolicited(Some(out.clone()));
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    loop {
        match read_capped_line(&mut reader, &mut line, MAX_REQUEST_BYTES).await? {
            LineRead::Eof => break,
            LineRead::TooLong(bytes) => {
                tracing::warn!(bytes, "dropped a request line over the size limit");
                out.respond(jsonrpc::error_response(
                    None,
                    &RpcError::new(INVALID_REQUEST, "message too large"),
                ));
            }
            LineRead::Line => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<Value>(&line) {
                    Ok(message) => {
                        server.handle(&connection, message, &out);
                    }
                    Err(error) => {
                        out.respond(jsonrpc::error_response(
                            None,
                            &RpcError::new(PARSE_ERROR, format!("parse error: {error}")),
                        ));
                    }
                }
            }
        }
    }
    // Input ended: cancel what is still running, give it a moment, and let replies flush.
    connection.close();
    let deadline = tokio::time::Instant::now() + EOF_GRACE;
    while connection.running() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    connection.set_unsolicited(None);
    drop(out);
    writer
        .await
        .map_err(|error| io::Error::other(format!("writer task failed: {error}")))?
}

async fn write_messages<W: AsyncWrite + Unpin>(
    mut output: W,
    mut messages: mpsc::Receiver<Value>,
) -> io::Result<()> {
    while let Some(message) = messages.recv().await {
        output
            .write_all(jsonrpc::to_line(&message).as_bytes())
            .await?;
        output.flush().await?;
    }
    output.shutdown().await.or(Ok(()))
}
