//! Turn logs shared between replicas through Redis: each chat's running turn is a stream
//! under `{prefix}:turnlog:{tenant}:{user}:{chat}` whose entries have the explicit ids
//! `0-{n}` (chunk `n`, counted from 1), so a reader resumes exactly after any chunk. The
//! replica running the turn writes it through a task of its own, in order, what queued up
//! in one round trip (the turn never waits on Redis), and ends it with an `end` entry; a reader on another replica polls for
//! new entries until it reads that one. Every log expires: `running_ttl` after its last
//! write while running, `finished_ttl` once ended.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;

use crate::session::SessionKey;
use crate::store::{RedisConnection, StoreError, key_part};

/// Chunks a writer may queue ahead of Redis before the mirror gives up.
const QUEUE: usize = 4096;
/// How often a reader on another replica looks for new chunks.
const POLL: Duration = Duration::from_millis(50);
/// Entries per read, and chunks per write.
const READ_BATCH: usize = 256;
const WRITE_BATCH: usize = 256;

/// A stream entry as Redis returns it: the id and the flat field/value list.
type StreamEntry = (String, Vec<String>);

#[derive(Clone)]
pub struct SharedTurnLogs {
    redis: RedisConnection,
    key_prefix: String,
    running_ttl: Duration,
    finished_ttl: Duration,
}

enum Write {
    Chunk(Bytes),
    End,
}

/// The running turn's side: hands chunks to the writing task.
pub(super) struct SharedWriter {
    queue: Option<mpsc::Sender<Write>>,
}

impl SharedTurnLogs {
    pub fn new(redis: RedisConnection, key_prefix: String, running_ttl: Duration) -> Self {
        Self {
            redis,
            key_prefix,
            running_ttl,
            finished_ttl: Duration::from_secs(60),
        }
    }

    fn key(&self, key: &SessionKey) -> String {
        format!(
            "{}:turnlog:{}:{}:{}",
            self.key_prefix,
            key_part(&key.tenant),
            key_part(&key.user),
            key_part(&key.id)
        )
    }

    pub(super) fn writer(&self, key: &SessionKey) -> SharedWriter {
        let (queue, writes) = mpsc::channel(QUEUE);
        tokio::spawn(write_log(self.clone(), self.key(key), writes));
        SharedWriter { queue: Some(queue) }
    }

    /// `None` when the chat has no log, or its turn has ended.
    pub(super) async fn follow(
        &self,
        key: &SessionKey,
        after: u64,
    ) -> Result<Option<BoxStream<'static, Bytes>>, StoreError> {
        let key = self.key(key);
        let mut last = redis::cmd("XREVRANGE");
        last.arg(&key).arg("+").arg("-").arg("COUNT").arg(1);
        let last: Vec<StreamEntry> = self.redis.query(last).await?;
        match last.first() {
            None => return Ok(None),
            Some((_, fields)) if is_end(fields) => return Ok(None),
            Some(_) => {}
        }
        let reader = Reader {
            redis: self.redis.clone(),
            key,
            next: after + 1,
            buffered: VecDeque::new(),
            ended: false,
        };
        Ok(Some(stream::unfold(reader, Reader::next_chunk).boxed()))
    }
}

fn is_end(fields: &[String]) -> bool {
    fields.first().is_some_and(|field| field == "end")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Writes one turn's log in order. A write that fails gives the mirror up: a log with a gap
/// would resume wrongly, and one left without its end expires after `running_ttl`.
async fn write_log(logs: SharedTurnLogs, key: String, mut writes: mpsc::Receiver<Write>) {
    let mut del = redis::cmd("DEL");
    del.arg(&key);
    if let Err(err) = logs.redis.query::<()>(del).await {
        tracing::warn!(error = %err, "the turn's stream is not shared: resuming works on this replica only");
        return;
    }
    let mut seq = 0u64;
    let mut batch = Vec::with_capacity(64);
    while writes.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        // One round trip for what queued up while the last one was in flight.
        let mut pipeline = redis::pipe();
        let mut ended = false;
        for write in batch.drain(..) {
            seq += 1;
            let add = pipeline.cmd("XADD").arg(&key).arg(format!("0-{seq}"));
            match write {
                Write::Chunk(chunk) => add.arg("c").arg(chunk.as_ref()).ignore(),
                Write::End => {
                    ended = true;
                    add.arg("end").arg(1).ignore()
                }
            };
        }
        let ttl = if ended {
            logs.finished_ttl
        } else {
            logs.running_ttl
        };
        pipeline.cmd("PEXPIRE").arg(&key).arg(millis(ttl)).ignore();
        if let Err(err) = logs.redis.pipeline::<()>(pipeline).await {
            tracing::warn!(error = %err, "sharing the turn's stream failed: resuming works on this replica only");
            return;
        }
        if ended {
            return;
        }
    }
}

impl SharedWriter {
    pub(super) fn append(&mut self, chunk: Bytes) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(Write::Chunk(chunk)).is_err() {
            tracing::warn!(
                "Redis is behind the turn's stream: resuming works on this replica only"
            );
            self.queue = None;
        }
    }

    pub(super) fn finish(mut self) {
        if let Some(queue) = self.queue.take() {
            let _ = queue.try_send(Write::End);
        }
    }
}

struct Reader {
    redis: RedisConnection,
    key: String,
    /// The id of the next chunk to read.
    next: u64,
    buffered: VecDeque<Bytes>,
    ended: bool,
}

impl Reader {
    async fn next_chunk(mut self) -> Option<(Bytes, Self)> {
        loop {
            if let Some(chunk) = self.buffered.pop_front() {
                return Some((chunk, self));
            }
            if self.ended {
                return None;
            }
            let mut range = redis::cmd("XRANGE");
            range
                .arg(&self.key)
                .arg(format!("0-{}", self.next))
                .arg("+")
                .arg("COUNT")
                .arg(READ_BATCH);
            let entries: Vec<StreamEntry> = match self.redis.query(range).await {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::debug!(error = %err, "reading a shared turn stream failed; the client may resume again");
                    return None;
                }
            };
            if entries.is_empty() {
                let mut exists = redis::cmd("EXISTS");
                exists.arg(&self.key);
                if !matches!(self.redis.query::<i64>(exists).await, Ok(1)) {
                    return None;
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            for (_, fields) in entries {
                self.next += 1;
                if is_end(&fields) {
                    self.ended = true;
                    break;
                }
                if let Some(chunk) = fields.get(1) {
                    self.buffered.push_back(Bytes::from(chunk.clone()));
                }
            }
        }
    }
}
