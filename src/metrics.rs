//! Prometheus metrics: request counts and latency histograms by route, method and status,
//! counted as requests end; the time each turn spends in the server's own code, observed by
//! the Session as it ends; and model calls, upstream connections, tokens, open streams and
//! MCP servers, copied from the parts that count them when `GET /metrics` renders the registry
//! in the text format.

use std::time::Duration;

use kubiya_actors::session::OverheadObserver;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    turn_overhead: Histogram,
    /// Read from their owners when scraped (see [`Snapshot`]).
    model_calls: IntCounter,
    upstream_connections: IntCounter,
    tokens: IntCounterVec,
    open_streams: IntGauge,
    mcp_servers: IntGaugeVec,
    mcp_restarts: IntCounter,
}

/// Values other parts keep, copied into the registry at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub model_calls: u64,
    /// TCP connections opened to the providers; with reuse, far fewer than model calls.
    pub upstream_connections: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub open_streams: u64,
    /// MCP servers by state (`running`, `restarting`, ...).
    pub mcp_servers: Vec<(String, i64)>,
    pub mcp_restarts: u64,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("kubiya".into()), None).expect("a constant prefix is valid");
        let labels = &["route", "method", "status"];
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            labels,
        )
        .expect("valid metric");
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to the response head, by route",
            )
            .buckets(buckets),
            labels,
        )
        .expect("valid metric");
        let turn_overhead = Histogram::with_opts(
            HistogramOpts::new(
                "turn_overhead_seconds",
                "Time a turn spends in the server's own code: its whole time minus the time it waited for model calls, MCP tool calls and workflow executions",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        let model_calls =
            IntCounter::new("llm_calls_total", "Model calls started").expect("valid metric");
        let upstream_connections = IntCounter::new(
            "llm_upstream_connections_opened_total",
            "TCP connections opened to the model providers (reused across model calls)",
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            Opts::new(
                "llm_tokens_total",
                "Tokens the providers reported, by direction",
            ),
            &["direction"],
        )
        .expect("valid metric");
        let open_streams = IntGauge::new("open_streams", "Chat and compose turns in progress")
            .expect("valid metric");
        let mcp_servers = IntGaugeVec::new(
            Opts::new("mcp_servers", "Supervised MCP servers by state"),
            &["state"],
        )
        .expect("valid metric");
        let mcp_restarts =
            IntCounter::new("mcp_restarts_total", "Restarts of supervised MCP servers")
                .expect("valid metric");
        let collectors: [Box<dyn Collector>; 9] = [
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(turn_overhead.clone()),
            Box::new(model_calls.clone()),
            Box::new(upstream_connections.clone()),
            Box::new(tokens.clone()),
            Box::new(open_streams.clone()),
            Box::new(mcp_servers.clone()),
            Box::new(mcp_restarts.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("registered once");
        }
        Self {
            registry,
            requests,
            latency,
            turn_overhead,
            model_calls,
            upstream_connections,
            tokens,
            open_streams,
            mcp_servers,
            mcp_restarts,
        }
    }

    /// What the Sessions report each turn's overhead to.
    pub fn turn_overhead(&self) -> TurnOverhead {
        TurnOverhead(self.turn_overhead.clone())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn observe_request(&self, route: &str, method: &str, status: &str, seconds: f64) {
        let labels = [route, method, status];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// Copies what other parts count into the registry; the counters only ever move up
    /// because their sources do.
    pub fn record(&self, snapshot: &Snapshot) {
        set_counter(&self.model_calls, snapshot.model_calls);
        set_counter(&self.upstream_connections, snapshot.upstream_connections);
        set_counter(
            &self.tokens.with_label_values(&["input"]),
            snapshot.input_tokens,
        );
        set_counter(
            &self.tokens.with_label_values(&["output"]),
            snapshot.output_tokens,
        );
        self.open_streams
            .set(i64::try_from(snapshot.open_streams).unwrap_or(i64::MAX));
        self.mcp_servers.reset();
        for (state, count) in &snapshot.mcp_servers {
            self.mcp_servers
                .with_label_values(&[state.as_str()])
                .set(*count);
        }
        set_counter(&self.mcp_restarts, snapshot.mcp_restarts);
    }

    /// Everything registered, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::with_capacity(4096);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// The turn overhead histogram, as the Sessions see it.
pub struct TurnOverhead(Histogram);

impl OverheadObserver for TurnOverhead {
    fn observe(&self, in_server: Duration) {
        self.0.observe(in_server.as_secs_f64());
    }
}

fn set_counter(counter: &IntCounter, value: u64) {
    let current = counter.get();
    if value > current {
        counter.inc_by(value - current);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
