//! What a pool of `LlmProvider`s counts across all its calls (calls, tokens, upstream
//! connections opened) for `/metrics`; each model call adds to it as it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::event::Usage;

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
