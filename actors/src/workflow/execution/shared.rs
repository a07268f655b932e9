//! [`SharedExecutions`]: executions shared between replicas through Redis, so that any
//! replica can read, follow, resume and cancel an execution another one runs.
//!
//! Per execution, under `{prefix}:exec:{tenant}:{id}:` (the tenant in the key is what keeps
//! one tenant from reading another's execution):
//! - `events`: a stream holding each event as JSON under the explicit id `0-{seq}`, so a
//!   reader resumes exactly after any seq and the stream itself refuses a duplicate;
//! - `snapshot`: the latest [`ExecutionSnapshot`] as JSON, written in the same script as the
//!   events it reflects, so `snapshot.last_seq` is always the stream's last id;
//! - `heartbeat`: set with a TTL of `lost_after` by the owning replica and renewed every
//!   `heartbeat`; once it has lapsed on an execution whose stream has no `workflow_complete`,
//!   the first reader to notice appends `workflow_complete {status: "lost"}` (a Lua script
//!   checks the heartbeat and the stream's last id atomically, so exactly one does);
//! - `cancel`: a cancel request from another replica, which the owner takes at its next
//!   renewal.
//!
//! Every key expires: while running, `lost_after + finished_ttl` after the last write or
//! renewal; once finished, after `finished_ttl`. The `ExecutionWatcher` uses this through its
//! per-execution [`ExecutionPublisher`](super::publisher) (writes) and
//! [`follower`](super::follower) (reads); nothing here is an actor, and every call is async
//! and bounded by a timeout. The Redis URL, which may hold a password, is never logged: only
//! `host:port/db`.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Script};

use crate::store::RedisEndpoint;

use super::state::{ExecutionEvent, ExecutionSnapshot};
use crate::workflow::run::event::now_millis;

/// What replaces an execution's end when the replica running it stopped.
pub const LOST_REASON: &str = "the replica running it stopped";

/// At most this many events per read of a stream.
const READ_BATCH: usize = 256;

/// Where the shared executions live and how liveness is judged.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// Where Redis is (URL and TLS certificates).
    pub endpoint: RedisEndpoint,
    /// Prefix of every key, so deployments can share one Redis.
    pub key_prefix: String,
    /// How often the owning replica renews a running execution's heartbeat.
    pub heartbeat: Duration,
    /// A running execution whose heartbeat is older than this is lost.
    pub lost_after: Duration,
    /// Bound on each Redis command and connection attempt.
    pub timeout: Duration,
}

/// Why Redis could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SharedError(String);

/// A cheap handle; clones share the connection.
#[derive(Clone)]
pub(crate) struct SharedExecutions {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Multiplexes every non-blocking command over one self-reconnecting connection.
    manager: ConnectionManager,
    /// `host:port/db`, for logs and messages; never the password.
    address: String,
    key_prefix: String,
    heartbeat: Duration,
    lost_after: Duration,
    finished_ttl: Duration,
    timeout: Duration,
    /// Written into heartbeats, to tell which replica owns an execution when debugging.
    replica: String,
    append: Script,
    renew: Script,
    declare_lost: Script,
}

/// The keys of one execution.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionKeys {
    events: String,
    snapshot: String,
    heartbeat: String,
    cancel: String,
}

/// An owner's write: events numbered from `after_seq + 1` and the snapshot that follows them.
pub(crate) struct Append<'a> {
    pub after_seq: u64,
    pub events: &'a [ExecutionEvent],
    pub snapshot: &'a ExecutionSnapshot,
}

/// What happened to an owner's write or renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// Written; still ours.
    Held,
    /// Another replica declared the execution lost: the stream has moved on without us.
    TakenOver,
}

/// What an owner's renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Renewal {
    pub ownership: Ownership,
    /// Another replica asked for the execution to be cancelled.
    pub cancel_requested: bool,
}

/// The last seq in the stream (0 when empty) and, for a retried append, its event.
const LAST_SEQ_LUA: &str = r"
local function last_entry(stream)
  local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #top == 0 then return 0, nil end
  return tonumber(string.match(top[1][1], '^0%-(%d+)$')), top[1][2][2]
end
";

/// KEYS: events, snapshot, heartbeat. ARGV: after_seq, snapshot, ttl_ms, heartbeat_ms (0 drops
/// the heartbeat: the run has ended), replica, events... Answers 1 when written (or when an
/// earlier attempt of this same write got through), 0 when the stream moved on without us.
const APPEND_LUA: &str = r"
local after = tonumber(ARGV[1])
local count = #ARGV - 5
local last, top = last_entry(KEYS[1])
if last ~= after then
  if count > 0 and last == after + count and top == ARGV[#ARGV] then return 1 end
  return 0
end
for i = 1, count do
  redis.call('XADD', KEYS[1], '0-' .. (after + i), 'event', ARGV[5 + i])
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '0' then
  redis.call('DEL', KEYS[3])
else
  redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[4])
end
return 1
";

/// KEYS: events, snapshot, heartbeat, cancel. ARGV: last_seq, ttl_ms, heartbeat_ms, replica.
/// Answers -1 when the stream moved on without us, else whether a cancel was requested
/// (the request is taken).
const RENEW_LUA: &str = r"
local last = last_entry(KEYS[1])
if last ~= tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('DEL', KEYS[4])
";

/// KEYS: events, snapshot, heartbeat. ARGV: last_seq the reader saw, the lost event, the lost
/// snapshot, ttl_ms. Appends only while the heartbeat is still missing and nothing was
/// appended since the reader looked; answers 1 when it did.
const DECLARE_LOST_LUA: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local last = last_entry(KEYS[1])
if last ~= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '0-' .. (last + 1), 'event', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

fn script(body: &str) -> Script {
    Script::new(&format!("{LAST_SEQ_LUA}{body}"))
}

/// A stream entry as Redis returns it: the id and the flat field/value list.
type StreamEntry = (String, Vec<String>);

impl SharedExecutions {
    /// Prepares the connection; connecting is lazy, so a replica starts while Redis is down
    /// (writes are retried, reads answer "unavailable"). Must run inside a tokio runtime, the
    /// one every later call runs on.
    pub fn open(config: &SharedConfig, finished_ttl: Duration) -> Result<Self, SharedError> {
        let client = config
            .endpoint
            .client()
            .map_err(|err| SharedError(format!("invalid Redis settings: {err}")))?;
        let info = client.get_connection_info();
        let address = format!("{}/{}", info.addr(), info.redis_settings().db());
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|err| SharedError(format!("Redis at {address}: {err}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                address,
                key_prefix: config.key_prefix.clone(),
                heartbeat: config.heartbeat,
                lost_after: config.lost_after,
                finished_ttl,
                timeout: config.timeout,
                replica: format!("replica_{}", uuid::Uuid::new_v4().simple()),
                append: script(APPEND_LUA),
                renew: script(RENEW_LUA),
                declare_lost: script(DECLARE_LOST_LUA),
            }),
        })
    }

    pub fn address(&self) -> &str {
        &self.inner.address
    }

    pub fn heartbeat(&self) -> Duration {
        self.inner.heartbeat
    }

    /// The keys of `tenant`'s execution `id`; `None` for an id no execution can have (ids
    /// are `exec_` and hex), so a crafted id cannot reach another tenant's keys.
    pub fn keys(&self, tenant: &str, id: &str) -> Option<ExecutionKeys> {
        let plain = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        plain.then(|| {
            let base = format!("{}:exec:{tenant}:{id}", self.inner.key_prefix);
            ExecutionKeys {
                events: format!("{base}:events"),
                snapshot: format!("{base}:snapshot"),
                heartbeat: format!("{base}:heartbeat"),
                cancel: format!("{base}:cancel"),
            }
        })
    }

    /// Keys of a running execution outlive a dead owner by the finished retention, so a
    /// reader still finds it (and declares it lost).
    pub fn running_ttl(&self) -> Duration {
        self.inner.lost_after + self.inner.finished_ttl
    }

    /// Writes an owner's events and snapshot, and renews (or, after the final event, drops)
    /// the heartbeat.
    pub async fn append(
        &self,
        keys: &ExecutionKeys,
        append: Append<'_>,
    ) -> Result<Ownership, SharedError> {
        let finished = append.snapshot.status.is_finished();
        let (ttl, heartbeat) = if finished {
            (self.inner.finished_ttl, Duration::ZERO)
        } else {
            (self.running_ttl(), self.inner.lost_after)
        };
        let mut invocation = self.inner.append.prepare_invoke();
        invocation
            .key(&keys.events)
            .key(&keys.snapshot)
            .key(&keys.heartbeat)
            .arg(append.after_seq)
            .arg(to_json(append.snapshot))
            .arg(millis(ttl))
            .arg(millis(heartbeat))
            .arg(&self.inner.replica);
        for event in append.events {
            invocation.arg(to_json(event));
        }
        let mut connection = self.inner.manager.clone();
        let written: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(if written == 1 {
            Ownership::Held
        } else {
            Ownership::TakenOver
        })
    }

    /// Renews a running execution's heartbeat and keys, and takes any cancel request.
    pub async fn renew(&self, keys: &ExecutionKeys, last_seq: u64) -> Result<Renewal, SharedError> {
        let mut invocation = self.inner.renew.prepare_invoke();
        invocation
            .key(&keys.events)
            .key(&keys.snapshot)
            .key(&keys.heartbeat)
            .key(&keys.cancel)
            .arg(last_seq)
            .arg(millis(self.running_ttl()))
            .arg(millis(self.inner.lost_after))
            .arg(&self.inner.replica);
        let mut connection = self.inner.manager.clone();
        let answer: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(Renewal {
            ownership: if answer < 0 {
                Ownership::TakenOver
            } else {
                Ownership::Held
            },
            cancel_requested: answer > 0,
        })
    }

    /// The execution's snapshot as last written, if it exists.
    async fn stored_snapshot(
        &self,
        keys: &ExecutionKeys,
    ) -> Result<Option<ExecutionSnapshot>, SharedError> {
        let mut connection = self.inner.manager.clone();
        let json: Option<String> = self
            .bounded(
                redis::cmd("GET")
                    .arg(&keys.snapshot)
                    .query_async(&mut connection),
            )
            .await?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map_err(|err| SharedError(format!("a stored snapshot is not readable: {err}")))
        })
        .transpose()
    }

    /// The execution's state; a running one whose heartbeat has lapsed is declared lost
    /// first, so no reader ever sees it running forever.
    pub async fn snapshot(
        &self,
        keys: &ExecutionKeys,
    ) -> Result<Option<ExecutionSnapshot>, SharedError> {
        let Some(snapshot) = self.stored_snapshot(keys).await? else {
            return Ok(None);
        };
        if snapshot.status.is_finished() {
            return Ok(Some(snapshot));
        }
        let mut connection = self.inner.manager.clone();
        let alive: bool = self
            .bounded(
                redis::cmd("EXISTS")
                    .arg(&keys.heartbeat)
                    .query_async(&mut connection),
            )
            .await?;
        if alive {
            return Ok(Some(snapshot));
        }
        let mut lost = snapshot.clone();
        let event = lost.lose(LOST_REASON, now_millis());
        let mut invocation = self.inner.declare_lost.prepare_invoke();
        invocation
            .key(&keys.events)
            .key(&keys.snapshot)
            .key(&keys.heartbeat)
            .arg(snapshot.last_seq)
            .arg(to_json(&event))
            .arg(to_json(&lost))
            .arg(millis(self.inner.finished_ttl));
        let declared: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        if declared == 1 {
            tracing::warn!(
                execution = %lost.execution_id,
                lost_after_ms = millis(self.inner.lost_after),
                "execution lost: the replica running it stopped renewing its heartbeat"
            );
            return Ok(Some(lost));
        }
        // Another reader declared it first, or its owner wrote again: read what is there now.
        self.stored_snapshot(keys).await
    }

    /// The events after `after_seq` as they are now, without waiting for more.
    pub async fn events_after(
        &self,
        keys: &ExecutionKeys,
        after_seq: u64,
    ) -> Result<Vec<ExecutionEvent>, SharedError> {
        let mut connection = self.inner.manager.clone();
        let entries: Vec<StreamEntry> = self
            .bounded(
                redis::cmd("XRANGE")
                    .arg(&keys.events)
                    .arg(format!("0-{}", after_seq + 1))
                    .arg("+")
                    .query_async(&mut connection),
            )
            .await?;
        entries.iter().map(parse_entry).collect()
    }

    /// Asks the owner to cancel the execution; it acts at its next renewal.
    pub async fn request_cancel(&self, keys: &ExecutionKeys) -> Result<(), SharedError> {
        let mut connection = self.inner.manager.clone();
        let () = self
            .bounded(
                redis::cmd("SET")
                    .arg(&keys.cancel)
                    .arg(1)
                    .arg("PX")
                    .arg(millis(self.running_ttl()))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    /// A connection of its own for one follower: a blocking read would hold up every other
    /// command on the shared one.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection, SharedError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(Some(self.follow_block() + self.inner.timeout));
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|err| self.failed(&err))
    }

    /// How long one blocking read waits before the follower checks its subscriber and the
    /// owner's heartbeat.
    pub fn follow_block(&self) -> Duration {
        self.inner
            .heartbeat
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// Waits up to [`Self::follow_block`] for events after `after_seq` on a follower's own
    /// connection; empty when none came.
    pub async fn wait_events_after(
        &self,
        connection: &mut MultiplexedConnection,
        keys: &ExecutionKeys,
        after_seq: u64,
    ) -> Result<Vec<ExecutionEvent>, SharedError> {
        let reply: Option<Vec<(String, Vec<StreamEntry>)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(millis(self.follow_block()))
            .arg("STREAMS")
            .arg(&keys.events)
            .arg(format!("0-{after_seq}"))
            .query_async(connection)
            .await
            .map_err(|err| self.failed(&err))?;
        reply
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .map(|entry| parse_entry(&entry))
            .collect()
    }

    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedError> {
        match tokio::time::timeout(self.inner.timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.failed(&err)),
            Err(_) => Err(SharedError(format!(
                "Redis at {} did not answer within {:?}",
                self.inner.address, self.inner.timeout
            ))),
        }
    }

    fn failed(&self, err: &redis::RedisError) -> SharedError {
        SharedError(format!("Redis at {}: {err}", self.inner.address))
    }
}

fn parse_entry((id, fields): &StreamEntry) -> Result<ExecutionEvent, SharedError> {
    let json = fields
        .chunks(2)
        .find(|pair| pair[0] == "event")
        .and_then(|pair| pair.get(1))
        .ok_or_else(|| SharedError(format!("stream entry {id} has no event")))?;
    serde_json::from_str(json)
        .map_err(|err| SharedError(format!("stream entry {id} is not an event: {err}")))
}

fn to_json(value: &impl serde::Serialize) -> String {
    // Events and snapshots have string keys only: serializing cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ExecutionId;

    fn shared() -> SharedExecutions {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            SharedExecutions::open(
                &SharedConfig {
                    endpoint: RedisEndpoint {
                        url: "redis://:secret@127.0.0.1:1/2".to_owned(),
                        ..RedisEndpoint::default()
                    },
                    key_prefix: "kubiya".to_owned(),
                    heartbeat: Duration::from_millis(200),
                    lost_after: Duration::from_secs(1),
                    timeout: Duration::from_secs(1),
                },
                Duration::from_secs(60),
            )
            .expect("opens lazily")
        })
    }

    #[test]
    fn keys_carry_the_tenant_and_refuse_ids_no_execution_has() {
        let shared = shared();
        let keys = shared.keys("t1", "exec_ab12").expect("a plain id");
        assert_eq!(keys.events, "kubiya:exec:t1:exec_ab12:events");
        assert_eq!(keys.heartbeat, "kubiya:exec:t1:exec_ab12:heartbeat");
        assert!(shared.keys("t1", "exec_1:events").is_none());
        assert!(shared.keys("t1", "").is_none());
        assert!(shared.keys("t1", "../exec").is_none());
    }

    #[test]
    fn the_address_never_holds_the_password() {
        let shared = shared();
        assert_eq!(shared.address(), "127.0.0.1:1/2");
    }

    #[test]
    fn stream_entries_parse_back_into_events() {
        let event = ExecutionEvent {
            execution_id: ExecutionId::parse("exec_1").unwrap(),
            seq: 3,
            event: crate::workflow::run::event::StepEvent::StepRunning {
                step: "a".to_owned(),
                message: "running".to_owned(),
                timestamp: 1,
            },
        };
        let entry = ("0-3".to_owned(), vec!["event".to_owned(), to_json(&event)]);
        assert_eq!(parse_entry(&entry), Ok(event));
        let broken = ("0-4".to_owned(), vec!["other".to_owned(), "x".to_owned()]);
        assert!(parse_entry(&broken).is_err());
    }
}
