//! Live step output: what a running step writes to stdout and stderr, sent as `step_output`
//! events while it runs. `process` hands each pipe's bytes to a [`StreamTap`] (through the
//! [`OutputSink`] trait); the tap cuts them into whole lines (a line that grows past
//! [`MAX_LINE_BYTES`] goes without waiting for its end), masks the run's secrets through the [`Emitter`], and
//! never cuts where a secret could go on in the next write, so a secret split over two writes
//! is masked whole. It sends at most one event per stream every [`MIN_EVENT_GAP`], within a
//! byte budget per step ([`LiveBudget`]: a burst, then a steady rate), so a step printing
//! megabytes a second cannot flood its clients: what does not fit is counted and said in the
//! next chunk. The step's whole output (capped) still arrives with its final event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::event::OutputStream;
use super::local::context::Emitter;
use super::process::OutputSink;

/// A line that grows past this is sent without waiting for its end.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// The shortest time between two `step_output` events of one stream.
pub const MIN_EVENT_GAP: Duration = Duration::from_millis(100);
/// Bytes a step may send live at once before the steady rate applies.
pub const LIVE_BURST_BYTES: usize = 64 * 1024;
/// Bytes per second a step may send live in the long run.
pub const LIVE_BYTES_PER_SEC: usize = 32 * 1024;

/// The live-output allowance of one step, shared by its stdout and stderr: a token bucket
/// holding at most [`LIVE_BURST_BYTES`], refilled at [`LIVE_BYTES_PER_SEC`].
#[derive(Debug)]
pub struct LiveBudget {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    bytes: f64,
    at: Instant,
}

impl LiveBudget {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            bucket: Mutex::new(Bucket {
                bytes: LIVE_BURST_BYTES as f64,
                at: Instant::now(),
            }),
        })
    }

    /// Takes up to `wanted` bytes of the allowance; answers how many it got.
    pub fn take(&self, wanted: usize) -> usize {
        let Ok(mut bucket) = self.bucket.lock() else {
            return 0;
        };
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * LIVE_BYTES_PER_SEC as f64;
        bucket.bytes = (bucket.bytes + refill).min(LIVE_BURST_BYTES as f64);
        bucket.at = now;
        // Whole bytes only: the fraction stays for the next call.
        let granted = (bucket.bytes.floor() as usize).min(wanted);
        bucket.bytes -= granted as f64;
        granted
    }
}

/// One output stream of one running step.
pub(crate) struct StreamTap {
    step: String,
    stream: OutputStream,
    emitter: Emitter,
    budget: Arc<LiveBudget>,
    /// Bytes read but not yet cut off as lines.
    raw: Vec<u8>,
    /// Text cut off, within the budget, waiting for its event.
    pending: String,
    /// Bytes the budget refused since the last event.
    skipped: usize,
    last_sent: Option<Instant>,
}

impl StreamTap {
    pub(crate) fn new(
        step: &str,
        stream: OutputStream,
        emitter: &Emitter,
        budget: Arc<LiveBudget>,
    ) -> Self {
        Self {
            step: step.to_owned(),
            stream,
            emitter: emitter.clone(),
            budget,
            raw: Vec::new(),
            pending: String::new(),
            skipped: 0,
            last_sent: None,
        }
    }

    /// Moves the first `cut` raw bytes to the pending text, as far as the budget allows.
    fn accept(&mut self, cut: usize) {
        if cut == 0 {
            return;
        }
        let piece: Vec<u8> = self.raw.drain(..cut).collect();
        let text = String::from_utf8_lossy(&piece);
        let mut granted = self.budget.take(text.len());
        if granted < text.len() {
            while !text.is_char_boundary(granted) {
                granted -= 1;
            }
            self.skipped += text.len() - granted;
        }
        self.pending.push_str(&text[..granted]);
    }

    fn send(&mut self, now: Instant) {
        if self.pending.is_empty() && self.skipped == 0 {
            return;
        }
        let mut text = std::mem::take(&mut self.pending);
        if self.skipped > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[{} bytes not shown live: the step writes faster than its output is streamed; its whole output comes when it ends]\n",
                self.skipped
            ));
            self.skipped = 0;
        }
        self.emitter.output(&self.step, self.stream, &text);
        self.last_sent = Some(now);
    }

    fn send_if_due(&mut self, now: Instant) {
        let waiting = !self.pending.is_empty() || self.skipped > 0;
        if waiting
            && self
                .last_sent
                .is_none_or(|last| last + MIN_EVENT_GAP <= now)
        {
            self.send(now);
        }
    }
}

impl OutputSink for StreamTap {
    fn write(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        let after_last_line = self
            .raw
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |newline| newline + 1);
        let wanted = if self.raw.len() - after_last_line >= MAX_LINE_BYTES {
            self.raw.len()
        } else {
            after_last_line
        };
        let cut = safe_cut(&self.raw, wanted, self.emitter.secrets());
        self.accept(cut);
        self.send_if_due(Instant::now());
    }

    fn due(&self) -> Option<Instant> {
        if self.pending.is_empty() && self.skipped == 0 {
            return None;
        }
        Some(
            self.last_sent
                .map_or_else(Instant::now, |last| last + MIN_EVENT_GAP),
        )
    }

    fn tick(&mut self) {
        self.send_if_due(Instant::now());
    }

    fn end(&mut self) {
        // Nothing follows: whatever is left is whole, secrets included.
        self.accept(self.raw.len());
        self.send(Instant::now());
    }
}

/// The largest cut at or before `wanted` that splits neither a UTF-8 character nor a
/// possible secret: no secret may start before the cut and go on after it, whether the
/// bytes after it are already in `raw` or still to come.
pub(crate) fn safe_cut(raw: &[u8], wanted: usize, secrets: &[String]) -> usize {
    let mut cut = wanted.min(raw.len());
    loop {
        let before = cut;
        while cut > 0 && cut < raw.len() && raw[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        for secret in secrets {
            if let Some(start) = straddling_start(raw, cut, secret.as_bytes()) {
                cut = start;
            }
        }
        if cut == before {
            return cut;
        }
    }
}

/// Where an occurrence of `secret` that could cross `cut` would start: its first `j` bytes
/// end `raw[..cut]` and the rest agrees with what `raw` holds after the cut.
fn straddling_start(raw: &[u8], cut: usize, secret: &[u8]) -> Option<usize> {
    let after = &raw[cut..];
    (1..secret.len()).rev().find_map(|before_cut| {
        let start = cut.checked_sub(before_cut)?;
        let (head, rest) = secret.split_at(before_cut);
        let known = rest.len().min(after.len());
        (raw[start..cut] == *head && rest[..known] == after[..known]).then_some(start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::run::event::StepEvent;
    use tokio::sync::mpsc::unbounded_channel;

    fn texts(receiver: &mut tokio::sync::mpsc::UnboundedReceiver<StepEvent>) -> Vec<String> {
        let mut texts = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            if let StepEvent::StepOutput { text, .. } = event {
                texts.push(text);
            }
        }
        texts
    }

    #[test]
    fn a_cut_never_splits_a_secret_or_a_character() {
        let secrets = vec!["hunter22".to_owned()];
        // The line ends with the secret's first bytes: they wait for what follows.
        assert_eq!(safe_cut(b"ok\npass=hun", 11, &secrets), 8);
        // The whole secret is there: cutting after it is safe.
        assert_eq!(safe_cut(b"pass=hunter22\n", 14, &secrets), 14);
        // A cut inside a secret that is already whole moves before it.
        assert_eq!(safe_cut(b"pass=hunter22", 9, &secrets), 5);
        // A secret holding a newline is not split at that newline.
        let multiline = vec!["BEGIN\nKEY".to_owned()];
        assert_eq!(safe_cut(b"x\nBEGIN\n", 8, &multiline), 2);
        // Never inside a UTF-8 character.
        let text = "añb".as_bytes();
        assert_eq!(safe_cut(text, 2, &[]), 1);
    }

    #[tokio::test]
    async fn a_secret_split_over_two_writes_never_appears() {
        let (events, mut receiver) = unbounded_channel();
        let emitter = Emitter::new(events, vec!["s3cr3t-value".to_owned()]);
        let mut tap = StreamTap::new("step", OutputStream::Stdout, &emitter, LiveBudget::new());
        tap.write(b"first line\ntoken=s3cr");
        tap.write(b"3t-value and more\n");
        tap.end();
        let all = texts(&mut receiver).concat();
        assert_eq!(all, "first line\ntoken=*** and more\n");
        // The same split at every byte position.
        let whole = b"a s3cr3t-value b s3cr3t-value\n";
        for split in 0..whole.len() {
            let (events, mut receiver) = unbounded_channel();
            let emitter = Emitter::new(events, vec!["s3cr3t-value".to_owned()]);
            let mut tap = StreamTap::new("step", OutputStream::Stderr, &emitter, LiveBudget::new());
            tap.write(&whole[..split]);
            tap.write(&whole[split..]);
            tap.end();
            let shown = texts(&mut receiver);
            assert_eq!(shown.concat(), "a *** b ***\n", "split at {split}");
            assert!(shown.iter().all(|text| !text.contains("s3cr")), "{shown:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_line_goes_at_once_and_the_rest_at_most_every_gap() {
        let (events, mut receiver) = unbounded_channel();
        let emitter = Emitter::new(events, Vec::new());
        let mut tap = StreamTap::new("step", OutputStream::Stdout, &emitter, LiveBudget::new());
        tap.write(b"one\n");
        assert_eq!(texts(&mut receiver), ["one\n"]);
        tap.write(b"two\n");
        tap.write(b"three\nfour");
        assert!(texts(&mut receiver).is_empty(), "within the gap: held");
        assert!(tap.due().is_some());
        tokio::time::sleep(MIN_EVENT_GAP).await;
        tap.tick();
        assert_eq!(texts(&mut receiver), ["two\nthree\n"]);
        tap.end();
        assert_eq!(texts(&mut receiver), ["four"]);
    }

    // Paused time: no refill while the flood is written, so the bounds are exact.
    #[tokio::test(start_paused = true)]
    async fn a_flood_is_cut_to_the_budget_and_says_so() {
        let (events, mut receiver) = unbounded_channel();
        let emitter = Emitter::new(events, Vec::new());
        let mut tap = StreamTap::new("step", OutputStream::Stdout, &emitter, LiveBudget::new());
        let line = format!("{}\n", "x".repeat(1023));
        let started = Instant::now();
        for _ in 0..2048 {
            tap.write(line.as_bytes());
        }
        tap.end();
        let elapsed = started.elapsed();
        let shown = texts(&mut receiver);
        let bytes: usize = shown.iter().map(String::len).sum();
        // 2 MiB written; the burst, what refilled meanwhile and a note per event shown.
        let gaps = usize::try_from(elapsed.as_millis() / MIN_EVENT_GAP.as_millis()).unwrap();
        let refilled = (elapsed.as_secs_f64() * LIVE_BYTES_PER_SEC as f64) as usize;
        assert!(
            shown.len() <= 2 + gaps,
            "{} events in {elapsed:?}",
            shown.len()
        );
        assert!(
            bytes <= LIVE_BURST_BYTES + refilled + shown.len() * 200,
            "{bytes} bytes in {elapsed:?}"
        );
        assert!(
            shown.last().unwrap().contains("bytes not shown live"),
            "{:?}",
            shown.last()
        );
    }
}
