//! Logging and traces. Logs: `tracing-subscriber` writing to stderr (stdout stays free for
//! protocol output such as `kubiya mcp server`), human-readable or one JSON object per line,
//! at the configured level; writes go through a background thread so a slow terminal or log
//! collector never stalls a worker. Traces: off unless the standard `OTEL_EXPORTER_OTLP_*`
//! variables name a collector; then the spans of [`kubiya_actors::TRACE`] (HTTP requests,
//! turns, model calls, tool calls, workflow executions and steps) go to it over OTLP/HTTP,
//! batched on the SDK's own thread, and an incoming `traceparent` continues the caller's
//! trace ([`continue_trace`]). Those spans never reach the log lines.

use std::io::IsTerminal;

use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings};

/// Keep it alive until exit: dropping it flushes buffered log lines and pending spans.
pub struct TelemetryGuard {
    _log: WorkerGuard,
    traces: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(traces) = self.traces.take()
            && let Err(err) = traces.shutdown()
        {
            #[expect(
                clippy::print_stderr,
                reason = "the subscriber is gone at exit: stderr is the last place to say it"
            )]
            {
                eprintln!("kubiya: sending the last spans failed: {err}");
            }
        }
    }
}

/// Installs the global subscriber: logs, and traces when configured.
pub fn init(settings: &LogSettings) -> TelemetryGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let mut filter = EnvFilter::new(settings.level.as_str()).add_directive(
        format!("{}=off", kubiya_actors::TRACE)
            .parse()
            .expect("a valid directive"),
    );
    if settings.mcp_debug {
        filter = filter.add_directive(
            "kubiya_actors::mcp=debug"
                .parse()
                .expect("a valid directive"),
        );
    }
    let builder = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => builder.compact().with_filter(filter).boxed(),
    };
    let (traces, problem) = match tracer_provider() {
        Ok(traces) => (traces, None),
        Err(problem) => (None, Some(problem)),
    };
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("kubiya"))
            .with_filter(Targets::new().with_target(kubiya_actors::TRACE, tracing::Level::TRACE))
    });
    tracing_subscriber::registry().with(logs).with(spans).init();
    if let Some(problem) = problem {
        tracing::warn!(
            problem,
            "traces are off: the OTLP exporter could not be set up"
        );
    } else if traces.is_some() {
        tracing::info!("traces go to the OTLP collector named by OTEL_EXPORTER_OTLP_*");
    }
    TelemetryGuard {
        _log: guard,
        traces,
    }
}

/// The standard variables that turn traces on; `OTEL_SDK_DISABLED=true` or
/// `OTEL_TRACES_EXPORTER=none` keep them off.
fn traces_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The exporter reads the endpoint, headers and timeout from the `OTEL_EXPORTER_OTLP_*`
/// variables itself; the service is `kubiya-agent` unless `OTEL_SERVICE_NAME` says otherwise.
fn tracer_provider() -> Result<Option<SdkTracerProvider>, String> {
    if !traces_configured() {
        return Ok(None);
    }
    if let Ok(protocol) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")
        && !protocol.is_empty()
        && protocol != "http/protobuf"
    {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported; use http/protobuf"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|err| err.to_string())?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("kubiya-agent");
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// Makes `span` a child of the caller's span named by the request's `traceparent` (W3C
/// trace context), when there is one and traces are on.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    // Fails only when the span was already started, which it is not yet.
    let _ = span.set_parent(parent);
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
