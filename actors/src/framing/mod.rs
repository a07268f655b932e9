//! Stream framing below the wire protocols: response bodies that arrive in chunks split
//! anywhere, turned into whole Server-Sent Events ([`sse`]) or newline-delimited JSON lines
//! ([`ndjson`]), both over the line buffer in [`lines`]. No I/O and no protocol here: the
//! LLM providers' codecs and the Kubiya platform runner feed chunks in and read frames out.

mod lines;
pub mod ndjson;
pub mod sse;
