//! Fuzzing, on the stable toolchain, of everything that parses bytes from outside: the
//! provider stream decoders of each protocol (whatever the framing: SSE and NDJSON), their
//! whole-body parsers, the Kubiya platform stream, workflow documents (JSON and YAML) through
//! parsing and validation, and request bodies through the running HTTP layer. Inputs are the
//! real captured fixtures in `tests/fixtures`, mutated (bytes flipped, inserted, removed,
//! spliced from another fixture) and cut into random chunks, plus generated SSE and NDJSON
//! streams of arbitrary JSON. Properties: nothing panics, and what a parser allocates stays
//! within a fixed multiple of its input ([`allocation`] counts every allocation on the
//! thread). `make test` runs a short pass; `make fuzz` sets `KUBIYA_FUZZ_CASES` for a long one.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests (and their helpers) fail by panicking"
)]

mod allocation;
mod inputs;
mod platform;
mod providers;
mod requests;
mod workflows;

#[global_allocator]
static ALLOCATOR: allocation::Counting = allocation::Counting;
