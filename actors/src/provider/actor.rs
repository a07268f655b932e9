//! The `LlmProvider` actor and [`ProviderPool`], the handle sessions use to reach it.
//!
//! By default the pool starts one member on each thread that makes calls ([`PerThread`]):
//! a Session's model calls then run on its own HTTP worker, with no hop to another thread and
//! no queue shared with other workers. A pool of a fixed size instead runs that many members,
//! each on its own arbiter, used round-robin. Each member owns one [`Upstream`] per
//! configured provider (an `awc` client is not `Send`): the primary, then the fallbacks in
//! order. A [`StartCompletion`] spawns the call into the actor's context, so the mailbox stays
//! free for other sessions; events go back through the caller's `Recipient<LlmEvent>`, and the
//! call is dropped (closing the upstream connection) the moment the caller cancels or goes
//! away.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;

use super::accounting::TokenAccounting;
use super::call::{self, StartCompletion};
use super::event::LlmEvent;
use super::preset::ProviderKind;
use super::upstream::{Upstream, UpstreamConfig};
use crate::per_thread::PerThread;

impl Message for LlmEvent {
    type Result = ();
}

pub struct LlmProvider {
    upstreams: Arc<[Upstream]>,
    accounting: Arc<TokenAccounting>,
}

impl Actor for LlmProvider {
    type Context = Context<Self>;
}

impl Handler<StartCompletion> for LlmProvider {
    type Result = ();

    fn handle(&mut self, message: StartCompletion, ctx: &mut Self::Context) {
        self.accounting.calls.fetch_add(1, Ordering::Relaxed);
        let upstreams = self.upstreams.clone();
        let accounting = self.accounting.clone();
        ctx.spawn(actix::fut::wrap_future(async move {
            call::complete(&upstreams, message, &accounting).await;
        }));
    }
}

/// Where the members of the provider actor run.
#[derive(Clone)]
enum Members {
    /// One on each thread that calls, started there on first use.
    PerThread(PerThread<LlmProvider>),
    /// A fixed number, each on its own arbiter, used round-robin.
    Arbiters {
        members: Arc<[Addr<LlmProvider>]>,
        next: Arc<AtomicUsize>,
    },
}

/// The members of the provider actor and what they count.
#[derive(Clone)]
pub struct ProviderPool {
    members: Members,
    pub accounting: Arc<TokenAccounting>,
    pub primary: ProviderKind,
    pub model: String,
}

impl ProviderPool {
    /// Members with their own clients for `upstreams` (primary first): one on each calling
    /// thread when `size` is 0, otherwise `size` on their own arbiters. Must be called inside
    /// a running actix system.
    pub fn start(upstreams: Vec<UpstreamConfig>, size: usize) -> Self {
        assert!(!upstreams.is_empty(), "a pool needs a primary upstream");
        let accounting = Arc::new(TokenAccounting::default());
        let primary = upstreams[0].kind;
        let model = upstreams[0].model.clone();
        let member = {
            let accounting = accounting.clone();
            move || LlmProvider {
                upstreams: upstreams
                    .iter()
                    .cloned()
                    .map(|config| Upstream::new(config, accounting.connections_opened.clone()))
                    .collect(),
                accounting: accounting.clone(),
            }
        };
        let members = if size == 0 {
            Members::PerThread(PerThread::new(member))
        } else {
            let member = Arc::new(member);
            Members::Arbiters {
                members: (0..size)
                    .map(|_| {
                        let member = member.clone();
                        LlmProvider::start_in_arbiter(&Arbiter::new().handle(), move |_| member())
                    })
                    .collect(),
                next: Arc::new(AtomicUsize::new(0)),
            }
        };
        Self {
            members,
            accounting,
            primary,
            model,
        }
    }

    pub fn start_completion(&self, message: StartCompletion) {
        match &self.members {
            Members::PerThread(member) => member.get().do_send(message),
            Members::Arbiters { members, next } => {
                let index = next.fetch_add(1, Ordering::Relaxed) % members.len();
                members[index].do_send(message);
            }
        }
    }
}
