//! [`PerThread`]: one instance of an actor on each thread that asks for it, started there on
//! first use. A turn's Session lives on the HTTP worker that took the request; the stateless
//! actors it calls on every model call (the `Composer`, the `LlmProvider` with its `awc`
//! clients, which are not `Send` anyway) are then on the same thread, so a model call crosses
//! no thread and waits in no shared queue. Messages, addresses and `Recipient`s stay as they
//! are: only where the actor runs changes.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, Addr, Context};

thread_local! {
    /// The actors started on this thread, by the id of the [`PerThread`] that started them.
    static STARTED: RefCell<HashMap<u64, Box<dyn Any>>> = RefCell::new(HashMap::new());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Starts an actor made by `make` on each thread that calls [`PerThread::get`].
pub struct PerThread<A> {
    id: u64,
    make: Arc<dyn Fn() -> A + Send + Sync>,
}

impl<A> Clone for PerThread<A> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            make: self.make.clone(),
        }
    }
}

impl<A: Actor<Context = Context<A>>> PerThread<A> {
    pub fn new(make: impl Fn() -> A + Send + Sync + 'static) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            make: Arc::new(make),
        }
    }

    /// This thread's actor, started now if it has none. Must be called inside a running
    /// actix system (an HTTP worker, an arbiter).
    pub fn get(&self) -> Addr<A> {
        STARTED.with(|started| {
            if let Some(addr) = started
                .borrow()
                .get(&self.id)
                .and_then(|addr| addr.downcast_ref::<Addr<A>>())
            {
                return addr.clone();
            }
            let addr = (self.make)().start();
            started.borrow_mut().insert(self.id, Box::new(addr.clone()));
            addr
        })
    }
}
