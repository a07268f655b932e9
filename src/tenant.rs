//! Tenants. Until API keys are configured every request runs as the one default tenant;
//! sessions, executions and streams are always keyed by tenant so that isolation holds
//! once keys map requests to tenants.

pub const DEFAULT_TENANT: &str = "default";
