//! Logging set-up: `tracing-subscriber` writing to stderr (stdout stays free for protocol
//! output such as `kubiya mcp server`), human-readable or one JSON object per line, at the
//! configured level. Writes go through a background thread so a slow terminal or log
//! collector never stalls a worker.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; keep the guard alive until exit so buffered lines flush.
pub fn init(settings: &LogSettings) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let mut filter = EnvFilter::new(settings.level.as_str());
    if settings.mcp_debug {
        filter = filter.add_directive(
            "kubiya_actors::mcp=debug"
                .parse()
                .expect("a valid directive"),
        );
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal());
    match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Pretty => builder.compact().init(),
    }
    guard
}
