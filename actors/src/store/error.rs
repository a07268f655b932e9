//! [`StoreError`]: how a store call fails, whichever store (in memory or Redis) answers it.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A session's turn lease is held by another turn.
    #[error("another turn of this session is in progress; retry when it has finished")]
    Busy,
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
}
