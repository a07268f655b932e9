//! `make bench`: the budgets of DESIGN.md §10, measured. It starts a fast mock OpenAI upstream
//! in this process and the release `kubiya` binary in front of it, then measures, on loopback:
//! added latency at one request in flight (p50, p99) against calling the mock directly,
//! throughput at 16 in flight, resident memory under that load, added time to first token
//! (p99) for streams, and memory with thousands of streams held open. It prints each number
//! next to its budget. `cargo test` only builds it; `cargo bench` runs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::StreamExt;

const REQUEST: &str =
    r#"{"model":"kubiya-workflow-agent","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM_REQUEST: &str = r#"{"model":"kubiya-workflow-agent","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const HOLD_REQUEST: &str = r#"{"model":"kubiya-workflow-agent","stream":true,"messages":[{"role":"user","content":"hold"}]}"#;
/// Open streams this machine can hold: each costs the server a client and an upstream socket,
/// and the file limit here is 20,000 for every process.
const OPEN_STREAMS: usize = 4_000;

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    actix_rt::System::new().block_on(run());
}

/// A chat answer in OpenAI's streaming format, prepared once.
fn stream_body() -> Bytes {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let mut body = chunk(r#"{"role":"assistant","content":""}"#, "null");
    body.push_str(&chunk(r#"{"content":"ok"}"#, "null"));
    body.push_str(&chunk("{}", r#""stop""#));
    body.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\ndata: [DONE]\n\n");
    Bytes::from(body)
}

const WHOLE_BODY: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

async fn mock(body: Bytes, stream_body: web::Data<Bytes>) -> HttpResponse {
    let text = std::str::from_utf8(&body).unwrap_or("");
    if text.contains("\"hold\"") {
        // The role and the first token, then nothing until the client goes away.
        let first_two = stream_body
            .windows(2)
            .enumerate()
            .filter(|(_, pair)| *pair == b"\n\n")
            .nth(1)
            .map_or(0, |(at, _)| at + 2);
        let first = stream_body.slice(..first_two);
        let held = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) })
            .chain(futures_util::stream::pending());
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .streaming(held);
    }
    if text.contains("\"stream\":true") {
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(stream_body.get_ref().clone());
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(WHOLE_BODY)
}

fn start_mock() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let body = web::Data::new(stream_body());
            HttpServer::new(move || {
                App::new()
                    .app_data(body.clone())
                    .default_service(web::to(mock))
            })
            .workers(1)
            .backlog(8192)
            .max_connections(50_000)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    port
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kubiya"))
        .args([
            "mcp",
            "agent",
            "--provider",
            "openai",
            "--api-key",
            "sk-bench",
            "--host",
            "127.0.0.1",
        ])
        .args([
            "--base-url",
            &format!("http://127.0.0.1:{mock_port}/v1"),
            "--port",
            &port.to_string(),
        ])
        // One log line per request would measure the terminal, not the server.
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the kubiya binary starts");
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

fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(60))
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

/// Time to the first body chunk that carries content.
async fn first_token(client: &awc::Client, url: &str) -> Duration {
    let started = Instant::now();
    let mut response = client
        .post(url)
        .insert_header(("content-type", "application/json"))
        .send_body(STREAM_REQUEST)
        .await
        .expect("request");
    let mut seen = Vec::new();
    while let Some(chunk) = response.next().await {
        seen.extend_from_slice(&chunk.expect("chunk"));
        if seen.windows(14).any(|w| w == b"\"content\":\"ok\"") {
            let elapsed = started.elapsed();
            while response.next().await.is_some() {}
            return elapsed;
        }
    }
    panic!("no token in the stream");
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn row(name: &str, measured: String, budget: &str, met: bool) {
    let mark = if met { "ok  " } else { "OVER" };
    println!("{mark} {name:<44} {measured:>14}   budget {budget}");
}

async fn run() {
    let mock_port = start_mock();
    let server = start_server(mock_port);
    let direct = format!("http://127.0.0.1:{mock_port}/v1/chat/completions");
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
    let added_p50 =
        percentile(&mut via_samples, 0.5).saturating_sub(percentile(&mut direct_samples, 0.5));
    let added_p99 =
        percentile(&mut via_samples, 0.99).saturating_sub(percentile(&mut direct_samples, 0.99));

    // Time to first token, direct and through us.
    let (mut direct_ttft, mut via_ttft) = (Vec::new(), Vec::new());
    for _ in 0..1_000 {
        direct_ttft.push(first_token(&client, &direct).await);
        via_ttft.push(first_token(&client, &via).await);
    }
    let added_ttft =
        percentile(&mut via_ttft, 0.99).saturating_sub(percentile(&mut direct_ttft, 0.99));

    // Throughput at 16 in flight for 10 s, and the server's memory under that load.
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, via, done) = (client.clone(), via.clone(), done.clone());
            actix_rt::spawn(async move {
                while Instant::now() < deadline {
                    post(&client, &via, REQUEST).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let rss_under_load = rss_mb(server.child.id());
    for worker in workers {
        worker.await.expect("worker");
    }
    let throughput = done.load(Ordering::Relaxed) as f64 / 10.0;

    // Streams held open at once.
    let before = rss_mb(server.child.id());
    let mut open = Vec::with_capacity(OPEN_STREAMS);
    for batch in 0..OPEN_STREAMS / 250 {
        let started: Vec<_> = (0..250)
            .map(|_| {
                let (client, via) = (client.clone(), via.clone());
                async move {
                    let mut response = client
                        .post(&via)
                        .insert_header(("content-type", "application/json"))
                        .send_body(HOLD_REQUEST)
                        .await
                        .unwrap_or_else(|err| panic!("stream in batch {batch}: {err}"));
                    response.next().await;
                    response
                }
            })
            .collect();
        open.extend(futures_util::future::join_all(started).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_streams = rss_mb(server.child.id());
    let per_stream_kb = (with_streams - before) * 1024.0 / OPEN_STREAMS as f64;
    let at_10k = before + per_stream_kb * 10_000.0 / 1024.0;
    drop(open);

    println!(
        "\nkubiya bench: the release binary in front of a mock upstream on loopback ({} cores)\n",
        num_cpus()
    );
    row(
        "added latency p50, 1 in flight",
        format!("{:.3} ms", ms(added_p50)),
        "<= 0.15 ms",
        ms(added_p50) <= 0.15,
    );
    row(
        "added latency p99, 1 in flight",
        format!("{:.3} ms", ms(added_p99)),
        "<= 0.5 ms",
        ms(added_p99) <= 0.5,
    );
    row(
        "throughput, 16 in flight",
        format!("{throughput:.0} req/s"),
        ">= 10680 req/s (1.2 x 8900)",
        throughput >= 10_680.0,
    );
    row(
        "resident memory under that load",
        format!("{rss_under_load:.1} MB"),
        "<= 34 MB",
        rss_under_load <= 34.0,
    );
    row(
        "added time to first token p99",
        format!("{:.3} ms", ms(added_ttft)),
        "<= 0.5 ms",
        ms(added_ttft) <= 0.5,
    );
    row(
        &format!("memory with {OPEN_STREAMS} open streams"),
        format!("{with_streams:.1} MB"),
        "",
        true,
    );
    row(
        "  extrapolated to 10,000 open streams",
        format!("{at_10k:.1} MB"),
        "<= 300 MB",
        at_10k <= 300.0,
    );
    println!(
        "\n(each open stream holds a client and an upstream socket; this machine allows 20,000 files a process)"
    );
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
