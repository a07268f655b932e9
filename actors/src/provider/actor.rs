//! The `LlmProvider` actor and [`ProviderPool`], the handle sessions use to reach it.
//!
//! Each pool member runs on its own arbiter (an `awc` client is not `Send`) and owns one
//! [`Upstream`] per configured provider: the primary, then the fallbacks in order. A
//! [`StartCompletion`] spawns the call into the actor's context, so the mailbox stays free
//! for other sessions; events go back through the caller's `Recipient<LlmEvent>`, and the
//! call is dropped (closing the upstream connection) the moment the caller cancels or goes
//! away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix::prelude::*;
use tokio_util::sync::CancellationToken;

use super::call;
use super::event::{LlmEvent, Usage};
use super::message::ChatRequest;
use super::preset::ProviderKind;
use super::upstream::{Upstream, UpstreamConfig};

impl Message for LlmEvent {
    type Result = ();
}

/// Streams one model call to `reply_to`: deltas, tool calls, usage, then exactly one
/// `Finished` or `Failed`. Nothing is sent after `cancel` fires or `reply_to` closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartCompletion {
    pub request: ChatRequest,
    pub reply_to: Recipient<LlmEvent>,
    pub cancel: CancellationToken,
}

/// Calls, tokens and upstream connections across all calls of a pool, for metrics.
#[derive(Debug, Default)]
pub struct TokenAccounting {
    pub calls: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    /// TCP connections opened to the upstreams; far below `calls` when the pools reuse them.
    pub connections_opened: Arc<AtomicU64>,
}

impl TokenAccounting {
    pub fn record(&self, usage: Usage) {
        self.input_tokens.fetch_add(usage.input, Ordering::Relaxed);
        self.output_tokens
            .fetch_add(usage.output, Ordering::Relaxed);
    }
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

/// Members of the provider actor, each on its own arbiter, used round-robin.
#[derive(Clone)]
pub struct ProviderPool {
    members: Arc<[Addr<LlmProvider>]>,
    next: Arc<AtomicUsize>,
    pub accounting: Arc<TokenAccounting>,
    pub primary: ProviderKind,
    pub model: String,
}

impl ProviderPool {
    /// Starts `size` members (at least one), each with its own clients for `upstreams`
    /// (primary first). Must be called inside a running actix system.
    pub fn start(upstreams: Vec<UpstreamConfig>, size: usize) -> Self {
        assert!(!upstreams.is_empty(), "a pool needs a primary upstream");
        let accounting = Arc::new(TokenAccounting::default());
        let primary = upstreams[0].kind;
        let model = upstreams[0].model.clone();
        let members: Arc<[Addr<LlmProvider>]> = (0..size.max(1))
            .map(|_| {
                let configs = upstreams.clone();
                let accounting = accounting.clone();
                LlmProvider::start_in_arbiter(&Arbiter::new().handle(), move |_| LlmProvider {
                    upstreams: configs
                        .into_iter()
                        .map(|config| Upstream::new(config, accounting.connections_opened.clone()))
                        .collect(),
                    accounting,
                })
            })
            .collect();
        Self {
            members,
            next: Arc::new(AtomicUsize::new(0)),
            accounting,
            primary,
            model,
        }
    }

    pub fn start_completion(&self, message: StartCompletion) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.members.len();
        self.members[index].do_send(message);
    }
}
