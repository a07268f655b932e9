//! LLM providers: which vendors we know and how to reach them.
//!
//! [`preset`] maps each vendor to its wire protocol, default base URL, API-key variable and
//! default model. The start-up code resolves a [`preset::ProviderKind`] plus overrides into
//! the settings the provider actor runs with.

pub mod preset;

pub use preset::{Protocol, ProviderKind};
