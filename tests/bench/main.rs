//! `make bench`: the turn path's figures, measured. It starts a fast mock OpenAI upstream in
//! this process (keep-alive, chunked streams; it counts the TCP connections it accepts) and
//! the release `kubiya` binary in front of it, then measures on loopback, each figure against
//! the mock called directly in the same run: upstream connections opened per model call at 16
//! in flight, added latency at one request in flight (p50, p99), requests/s and p99 at 16 in
//! flight, peak resident memory under that load, added time to first token (p99) at 512
//! concurrent streams, and as many concurrent open streams as the open-files limit allows (up
//! to 10,000): none lost, none stalled, their time to first token and the memory they take.
//! It prints each figure next to its goal. Then the memory soak ([`soak`]): resident memory of
//! a fresh server after 300 chats of 1 MB and a workflow printing 200 MB. `cargo test` only
//! builds it; `cargo bench` runs it (`cargo bench --bench gateway -- soak`: the soak alone);
//! `KUBIYA_BENCH_BIN` names another build of the server to measure instead.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark fails by panicking and reports on stdout"
)]

mod soak;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

const REQUEST: &str =
    r#"{"model":"kubiya-workflow-agent","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM_REQUEST: &str = r#"{"model":"kubiya-workflow-agent","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const HOLD_REQUEST: &str = r#"{"model":"kubiya-workflow-agent","stream":true,"messages":[{"role":"user","content":"hold"}]}"#;
/// The most concurrent streams the goals ask for.
const MAX_OPEN_STREAMS: usize = 10_000;
const CONCURRENT_STREAMS: usize = 512;
/// Open streams are opened this many at a time.
const OPEN_BATCH: usize = 500;
/// A held stream that has not ended this long after it was released is stalled.
const STALL_AFTER: Duration = Duration::from_secs(60);

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let only = |phase: &str| std::env::args().any(|arg| arg == phase);
    actix_rt::System::new().block_on(async {
        if only("streams") {
            open_streams_only().await;
        } else if only("soak") {
            soak::run().await;
        } else {
            run().await;
            soak::run().await;
        }
    });
}

/// A chat answer in OpenAI's streaming format, prepared once: the first event carries the
/// role and the first token, so a held stream has its first token before it pauses.
fn stream_body() -> (Bytes, Bytes) {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let first = chunk(r#"{"role":"assistant","content":"ok"}"#, "null");
    let mut rest = chunk("{}", r#""stop""#);
    rest.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\ndata: [DONE]\n\n");
    (Bytes::from(first), Bytes::from(rest))
}

const WHOLE_BODY: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

/// What the mock counts, and the switch that lets held streams finish.
struct Mock {
    port: u16,
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    release: watch::Sender<bool>,
}

struct MockState {
    first: Bytes,
    rest: Bytes,
    /// `first` and `rest` in one piece.
    whole_stream: Bytes,
    requests: Arc<AtomicU64>,
    released: watch::Receiver<bool>,
}

async fn mock(body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let text = std::str::from_utf8(&body).unwrap_or("");
    if text.contains("\"hold\"") {
        // The role and the first token, then nothing until the bench releases held streams.
        let (first, rest) = (state.first.clone(), state.rest.clone());
        let mut released = state.released.clone();
        let held = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) })
            .chain(futures_util::stream::once(async move {
                let _ = released.wait_for(|released| *released).await;
                Ok(rest)
            }));
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .streaming(held);
    }
    if text.contains("\"stream\":true") {
        // The whole stream in one write: nothing to build per request.
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(state.whole_stream.clone());
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(WHOLE_BODY)
}

fn start_mock() -> Mock {
    let connections = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let (release, released) = watch::channel(false);
    let (counted, answered) = (connections.clone(), requests.clone());
    let (bound, port) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let (first, rest) = stream_body();
            let whole_stream = Bytes::from([first.as_ref(), rest.as_ref()].concat());
            let state = web::Data::new(MockState {
                first,
                rest,
                whole_stream,
                requests: answered,
                released,
            });
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .default_service(web::to(mock))
            })
            .on_connect(move |_, _| {
                counted.fetch_add(1, Ordering::Relaxed);
            })
            // As many workers as cores, and a listen backlog that takes a burst of thousands
            // of connections at once: a std listener's 128 made the kernel drop the SYNs of
            // a burst, each retried a second later, which was the mock's own p99.
            .workers(num_cpus())
            .backlog(16_384)
            .max_connections(50_000)
            .tcp_nodelay(true)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
            bound.send(server.addrs()[0].port()).unwrap();
            server.run().await.unwrap();
        });
    });
    Mock {
        port: port.recv().expect("the mock starts"),
        connections,
        requests,
        release,
    }
}

struct Server {
    child: std::process::Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(mock_port: u16) -> Server {
    launch(|command| {
        command.args([
            "--provider",
            "openai",
            "--api-key",
            "sk-bench",
            "--base-url",
            &format!("http://127.0.0.1:{mock_port}/v1"),
        ]);
    })
}

/// Starts `kubiya mcp agent` on a free loopback port, with what `configure` adds, and waits
/// until it listens.
fn launch(configure: impl FnOnce(&mut std::process::Command)) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Another build of the server can be measured with the same bench and mock.
    let binary =
        std::env::var_os("KUBIYA_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_kubiya").into());
    let mut command = std::process::Command::new(binary);
    command
        .args([
            "mcp",
            "agent",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        // One log line per request would measure the terminal, not the server.
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null());
    configure(&mut command);
    let child = command.spawn().expect("the kubiya binary starts");
    // Owned by the guard at once, so the process is reaped on every path.
    let server = Server { child, port };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the server did not start");
}

/// Raises this process's open-files soft limit to its hard limit (the server inherits it)
/// and returns it.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reading and setting this process's own limit with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(120))
        .finish()
}

async fn post(client: &awc::Client, url: &str, body: &'static str) -> Duration {
    let started = Instant::now();
    let mut response = client
        .post(url)
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .expect("request");
    response.body().limit(1 << 20).await.expect("body");
    started.elapsed()
}

/// How one stream went.
enum StreamOutcome {
    /// Time to its first token; whether it then reached its end.
    Done {
        first_token: Duration,
        ended: bool,
    },
    Lost,
}

/// One streamed request: the time to the first body chunk that carries the token (counted in
/// `first_tokens`, as is a failure), then the rest of the stream (which `released` may hold
/// back) read to its end within `STALL_AFTER` of `released` turning true.
async fn stream(
    client: &awc::Client,
    url: &str,
    body: &'static str,
    released: &watch::Receiver<bool>,
    first_tokens: &AtomicU64,
) -> StreamOutcome {
    let outcome = first_token(client, url, body).await;
    first_tokens.fetch_add(1, Ordering::Relaxed);
    let Some((first_token, mut response)) = outcome else {
        return StreamOutcome::Lost;
    };
    let mut released = released.clone();
    let rest = async {
        while let Some(chunk) = response.next().await {
            if chunk.is_err() {
                return false;
            }
        }
        true
    };
    let deadline = async {
        let _ = released.wait_for(|released| *released).await;
        tokio::time::sleep(STALL_AFTER).await;
    };
    let ended = tokio::select! {
        ended = rest => ended,
        () = deadline => false,
    };
    StreamOutcome::Done { first_token, ended }
}

/// Sends a streamed request and reads up to its first token.
async fn first_token(
    client: &awc::Client,
    url: &str,
    body: &'static str,
) -> Option<(
    Duration,
    impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
)> {
    let started = Instant::now();
    let mut response = client
        .post(url)
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let mut seen = Vec::new();
    while let Some(Ok(chunk)) = response.next().await {
        seen.extend_from_slice(&chunk);
        if seen.windows(14).any(|w| w == b"\"content\":\"ok\"") {
            return Some((started.elapsed(), response));
        }
    }
    None
}

/// `count` streams, opened `batch` at a time (each batch once the previous one has its first
/// tokens, so the listen backlogs are not what is measured); the mock holds them open (when
/// `body` asks it to) until all have their first token, then lets them end. Returns the
/// outcomes and the server's resident memory while all were open.
async fn concurrent_streams(
    url: &str,
    body: &'static str,
    (count, batch): (usize, usize),
    mock: &Mock,
    server_pid: Option<u32>,
) -> (Vec<StreamOutcome>, f64) {
    // A client of its own: its pooled connections close with it at the end, so the next
    // phase has its files.
    let client = &client();
    mock.release.send_replace(false);
    let released = mock.release.subscribe();
    let first_tokens = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let size = batch.min(count - streams.len());
        streams.extend((0..size).map(|_| {
            let (client, url, released, first_tokens) = (
                client.clone(),
                url.to_owned(),
                released.clone(),
                first_tokens.clone(),
            );
            actix_rt::spawn(
                async move { stream(&client, &url, body, &released, &first_tokens).await },
            )
        }));
        // This batch has its first tokens (or failed): all so far are open at once.
        let waiting = Instant::now();
        while (first_tokens.load(Ordering::Relaxed) as usize) < streams.len()
            && waiting.elapsed() < Duration::from_secs(120)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let memory = server_pid.map_or(0.0, |pid| rss_mb(pid, "VmRSS:"));
    mock.release.send_replace(true);
    let mut outcomes = Vec::with_capacity(count);
    for stream in streams {
        outcomes.push(stream.await.unwrap_or(StreamOutcome::Lost));
    }
    mock.release.send_replace(false);
    (outcomes, memory)
}

struct StreamFigures {
    lost: usize,
    stalled: usize,
    first_token_p99: Duration,
}

fn stream_figures(mut outcomes: Vec<StreamOutcome>) -> StreamFigures {
    let mut first_tokens = Vec::with_capacity(outcomes.len());
    let (mut lost, mut stalled) = (0, 0);
    for outcome in outcomes.drain(..) {
        match outcome {
            StreamOutcome::Lost => lost += 1,
            StreamOutcome::Done { first_token, ended } => {
                first_tokens.push(first_token);
                if !ended {
                    stalled += 1;
                }
            }
        }
    }
    let first_token_p99 = if first_tokens.is_empty() {
        Duration::ZERO
    } else {
        percentile(&mut first_tokens, 0.99)
    };
    StreamFigures {
        lost,
        stalled,
        first_token_p99,
    }
}

/// Requests/s and latency p99 with `in_flight` requests at a time for `duration`.
async fn load(
    client: &awc::Client,
    url: &str,
    in_flight: usize,
    duration: Duration,
) -> (f64, Duration) {
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            actix_rt::spawn(async move {
                let mut latencies = Vec::with_capacity(64 * 1024);
                while Instant::now() < deadline {
                    latencies.push(post(&client, &url, REQUEST).await);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let throughput = latencies.len() as f64 / duration.as_secs_f64();
    (throughput, percentile(&mut latencies, 0.99))
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// A `/proc/<pid>/status` memory field (`VmRSS:` now, `VmHWM:` the peak) in MB.
fn rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn added(via: Duration, direct: Duration) -> f64 {
    ms(via) - ms(direct)
}

fn row(name: &str, measured: String, direct: String, goal: &str, met: bool) {
    let mark = if met { "ok  " } else { "OVER" };
    println!("{mark} {name:<50} {measured:>30}   {direct:>24}   goal {goal}");
}

async fn run() {
    let open_files = raise_open_files_limit();
    let mock = start_mock();
    let server = start_server(mock.port);
    let pid = server.child.id();
    let direct = format!("http://127.0.0.1:{}/v1/chat/completions", mock.port);
    let via = format!("http://127.0.0.1:{}/v1/chat/completions", server.port);
    let client = client();
    for _ in 0..500 {
        post(&client, &direct, REQUEST).await;
        post(&client, &via, REQUEST).await;
    }

    // Added latency at one request in flight: the same request, direct and through us.
    let rounds = 3_000;
    let (mut direct_samples, mut via_samples) =
        (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        direct_samples.push(post(&client, &direct, REQUEST).await);
        via_samples.push(post(&client, &via, REQUEST).await);
    }
    let (direct_p50, direct_p99) = (
        percentile(&mut direct_samples, 0.5),
        percentile(&mut direct_samples, 0.99),
    );
    let (via_p50, via_p99) = (
        percentile(&mut via_samples, 0.5),
        percentile(&mut via_samples, 0.99),
    );

    // 16 in flight for 10 s each, direct then through us; the upstream connections the
    // server opens meanwhile, per model call (one model call per request here).
    let load_for = Duration::from_secs(10);
    let (direct_rps, direct_load_p99) = load(&client, &direct, 16, load_for).await;
    let (connections, calls) = (
        mock.connections.load(Ordering::Relaxed),
        mock.requests.load(Ordering::Relaxed),
    );
    let (via_rps, via_load_p99) = load(&client, &via, 16, load_for).await;
    let per_call = (mock.connections.load(Ordering::Relaxed) - connections) as f64
        / (mock.requests.load(Ordering::Relaxed) - calls).max(1) as f64;
    let peak_under_load = rss_mb(pid, "VmHWM:");

    // Added time to first token at 512 concurrent streams, four rounds each way.
    let (mut direct_ttft, mut via_ttft) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        let (outcomes, _) = concurrent_streams(
            &direct,
            STREAM_REQUEST,
            (CONCURRENT_STREAMS, CONCURRENT_STREAMS),
            &mock,
            None,
        )
        .await;
        direct_ttft.extend(outcomes);
        let (outcomes, _) = concurrent_streams(
            &via,
            STREAM_REQUEST,
            (CONCURRENT_STREAMS, CONCURRENT_STREAMS),
            &mock,
            None,
        )
        .await;
        via_ttft.extend(outcomes);
    }
    let direct_512 = stream_figures(direct_ttft);
    let via_512 = stream_figures(via_ttft);

    let open = open_streams(&mock, &server, open_files).await;

    println!(
        "\nkubiya bench: the release binary in front of a mock upstream on loopback ({} cores, open files {open_files})\n",
        num_cpus()
    );
    println!(
        "     {:<50} {:>30}   {:>24}",
        "figure", "through the server", "mock direct"
    );
    row(
        "upstream connections per model call, 16 in flight",
        format!("{per_call:.4}"),
        String::new(),
        "<= 0.01",
        per_call <= 0.01,
    );
    let (p50, p99) = (added(via_p50, direct_p50), added(via_p99, direct_p99));
    row(
        "added latency, 1 in flight, p50 / p99",
        format!("+{p50:.3} / +{p99:.3} ms"),
        format!("{:.3} / {:.3} ms", ms(direct_p50), ms(direct_p99)),
        "<= +0.10 / +0.15 ms",
        p50 <= 0.10 && p99 <= 0.15,
    );
    row(
        "requests/s at 16 in flight, p99",
        format!("{via_rps:.0}/s, p99 {:.2} ms", ms(via_load_p99)),
        format!("{direct_rps:.0}/s, p99 {:.2} ms", ms(direct_load_p99)),
        ">= 17,700/s, p99 <= 1.9 ms",
        via_rps >= 17_700.0 && ms(via_load_p99) <= 1.9,
    );
    row(
        "peak resident memory under that load",
        format!("{peak_under_load:.1} MB"),
        String::new(),
        "<= 64 MB",
        peak_under_load <= 64.0,
    );
    let ttft_512 = added(via_512.first_token_p99, direct_512.first_token_p99);
    row(
        &format!("added time to first token p99, {CONCURRENT_STREAMS} streams"),
        format!("+{ttft_512:.2} ms"),
        format!("{:.2} ms", ms(direct_512.first_token_p99)),
        "<= +0.5 ms",
        ttft_512 <= 0.5 && via_512.lost + via_512.stalled == 0,
    );
    open_stream_rows(&open);
}

/// The open-streams phase alone, on a fresh server (`cargo bench --bench gateway -- streams`):
/// its figures, and the server's resident memory before it.
async fn open_streams_only() {
    let open_files = raise_open_files_limit();
    let mock = start_mock();
    let server = start_server(mock.port);
    let via = format!("http://127.0.0.1:{}/v1/chat/completions", server.port);
    let client = client();
    for _ in 0..500 {
        post(&client, &via, REQUEST).await;
    }
    let before = rss_mb(server.child.id(), "VmRSS:");
    let open = open_streams(&mock, &server, open_files).await;
    println!("\nkubiya bench: open streams on a fresh server ({before:.1} MB before them)\n");
    open_stream_rows(&open);
}

/// What the open-streams phase measured.
struct OpenStreams {
    count: usize,
    open_files: u64,
    direct: StreamFigures,
    via: StreamFigures,
    memory: f64,
}

/// As many concurrent open streams as the files allow, direct and through the server: each
/// holds a client and an upstream socket in the server, and in this process a client and a
/// mock socket.
async fn open_streams(mock: &Mock, server: &Server, open_files: u64) -> OpenStreams {
    let count = MAX_OPEN_STREAMS.min((open_files as usize).saturating_sub(300) / 2);
    let direct = format!("http://127.0.0.1:{}/v1/chat/completions", mock.port);
    let via = format!("http://127.0.0.1:{}/v1/chat/completions", server.port);
    let (outcomes, _) =
        concurrent_streams(&direct, HOLD_REQUEST, (count, OPEN_BATCH), mock, None).await;
    let direct = stream_figures(outcomes);
    let (outcomes, memory) = concurrent_streams(
        &via,
        HOLD_REQUEST,
        (count, OPEN_BATCH),
        mock,
        Some(server.child.id()),
    )
    .await;
    OpenStreams {
        count,
        open_files,
        direct,
        via: stream_figures(outcomes),
        memory,
    }
}

fn open_stream_rows(open: &OpenStreams) {
    let OpenStreams {
        count: open_streams,
        open_files,
        direct: direct_open,
        via: via_open,
        memory: memory_open,
    } = open;
    let (open_streams, memory_open) = (*open_streams, *memory_open);
    let ttft_open = added(via_open.first_token_p99, direct_open.first_token_p99);
    row(
        &format!("{open_streams} open streams: lost, stalled"),
        format!("{}, {}", via_open.lost, via_open.stalled),
        format!("{}, {}", direct_open.lost, direct_open.stalled),
        "0, 0",
        via_open.lost + via_open.stalled == 0,
    );
    row(
        "  their time to first token p99",
        format!("+{ttft_open:.1} ms"),
        format!("{:.1} ms", ms(direct_open.first_token_p99)),
        "<= +5 ms",
        ttft_open <= 5.0,
    );
    row(
        "  resident memory with all open",
        format!("{memory_open:.1} MB"),
        String::new(),
        "<= 300 MB",
        memory_open <= 300.0,
    );
    if open_streams < MAX_OPEN_STREAMS {
        println!(
            "\n({open_streams} streams, not {MAX_OPEN_STREAMS}: the open-files limit is {open_files}, and each stream takes two files in the server and two here)"
        );
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
