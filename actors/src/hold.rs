//! [`Release`]: the one shape of things held for the length of a turn or a stream (turn
//! leases, stream permits). Dropping one frees it in the background; [`Release::release`]
//! frees it now and completes once others may take it, so a turn can free what it held
//! before it is acknowledged and a client continuing at once never finds it still taken.

use futures_util::future::BoxFuture;

pub trait Release: Send + Sync {
    /// Frees it now; the future completes once it is free for others.
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}
