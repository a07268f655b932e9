//! The service boundary: what a request from the network must pass before a handler sees
//! it, and where the server may be reached from at all. [`exposure`] picks the listen address
//! (loopback while auth is off), [`origin`] decides which web origins may drive the API from
//! a browser, [`guard`] is the middleware that applies the header-size limit, the origin rule
//! and CORS, [`ids`] checks the client-chosen identifiers that become store keys, [`choice`]
//! reads enumerated fields (unknown values are 400s), [`oversized_head`] gives heads too large
//! for actix-http's parser the OpenAI-shaped 431 too, and [`websocket`] reads a WebSocket client's request within size, type and time limits.

pub mod choice;
pub mod exposure;
pub mod guard;
pub mod ids;
pub mod origin;
pub mod oversized_head;
pub mod websocket;
