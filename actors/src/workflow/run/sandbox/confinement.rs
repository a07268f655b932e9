//! Who a sandboxed step runs as and what it may consume, applied by the process layer to the
//! `bwrap` child between `fork` and `exec`: supplementary groups cleared, a dedicated host
//! gid and uid when the server is root, the step's rlimits, a umask that lets steps of one
//! execution share its work directory, and the seccomp filter's descriptor kept open across
//! `exec` so that bwrap can read it.
//!
//! Root outside must not be root inside, and `RLIMIT_NPROC` is not enforced for uid 0, so a
//! root server runs each step as a host uid of its own taken from [`HostIds`] (a configured
//! range), and each execution as a host gid of its own that owns its work directory. A
//! server that is not root runs steps as its own user: the kernel then maps that user into
//! the sandbox and its process limit counts the server's user as a whole. Ids are locked
//! across processes, so replicas on one host never hand out the same one.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::workflow::run::local::limits::StepLimits;

/// A range of host ids no one else uses, lent out one at a time. An id is held in this
/// process and, through an advisory lock on a file named after it, across every process on
/// the host that shares the lock directory (replicas, the CLI): two steps never share a uid,
/// so a step's process limit is its own. A lock dies with its process.
#[derive(Debug, Clone)]
pub struct HostIds {
    pool: Arc<Mutex<IdPool>>,
}

#[derive(Debug)]
struct IdPool {
    first: u32,
    count: u32,
    /// Where the next search starts, so that ids are spread rather than reused at once.
    cursor: u32,
    held: HashSet<u32>,
    lock_dir: Option<PathBuf>,
}

impl HostIds {
    /// Ids `first .. first + count`, locked in the default directory (under the temporary
    /// directory, made private to its owner).
    pub fn new(first: u32, count: u32) -> Self {
        Self::with_lock_dir(first, count, default_lock_dir())
    }

    fn with_lock_dir(first: u32, count: u32, lock_dir: Option<PathBuf>) -> Self {
        let count = count.min(u32::MAX - first);
        Self {
            pool: Arc::new(Mutex::new(IdPool {
                first,
                count,
                cursor: if count == 0 {
                    0
                } else {
                    fastrand::u32(..count)
                },
                held: HashSet::new(),
                lock_dir,
            })),
        }
    }

    /// Borrows a free id, given back when the lease drops; `None` when all are in use.
    pub fn lease(&self) -> Option<IdLease> {
        let mut pool = self.pool.lock().ok()?;
        for _ in 0..pool.count {
            let id = pool.first + pool.cursor;
            pool.cursor = (pool.cursor + 1) % pool.count;
            if pool.held.contains(&id) {
                continue;
            }
            let lock = match &pool.lock_dir {
                Some(dir) => match lock_id(dir, id) {
                    Some(lock) => Some(lock),
                    None => continue,
                },
                None => None,
            };
            pool.held.insert(id);
            return Some(IdLease {
                id,
                pool: self.pool.clone(),
                _lock: lock,
            });
        }
        None
    }
}

fn default_lock_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = std::env::temp_dir().join("kubiya-sandbox-ids");
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a directory of our own: anyone else could hold every lock.
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    (meta.is_dir() && meta.uid() == me && meta.mode() & 0o022 == 0).then_some(dir)
}

/// The lock on `id`, when no other process holds it.
fn lock_id(dir: &Path, id: u32) -> Option<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(id.to_string()))
        .ok()?;
    // SAFETY: flock on a descriptor we own; non-blocking.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

/// One borrowed id.
#[derive(Debug)]
pub struct IdLease {
    id: u32,
    pool: Arc<Mutex<IdPool>>,
    /// Holds the id for other processes; closing it unlocks.
    _lock: Option<File>,
}

impl IdLease {
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for IdLease {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.held.remove(&self.id);
        }
    }
}

/// Whether this process runs as root, and so must give steps other ids.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What is applied to a sandbox process before it starts.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// Host uid and gid to switch to (a root server only).
    pub ids: Option<(u32, u32)>,
    pub limits: StepLimits,
    /// A descriptor the program must inherit (bwrap's seccomp filter).
    pub inherited: Option<Arc<OwnedFd>>,
}

/// The rlimits of `limits`, as `(resource, value)` pairs.
fn rlimits(limits: &StepLimits) -> [(libc::__rlimit_resource_t, u64); 6] {
    [
        (libc::RLIMIT_AS, limits.memory_bytes),
        (libc::RLIMIT_NPROC, limits.max_processes),
        (libc::RLIMIT_CPU, limits.cpu_secs),
        (libc::RLIMIT_FSIZE, limits.file_size_bytes),
        (libc::RLIMIT_NOFILE, limits.open_files),
        (libc::RLIMIT_CORE, 0),
    ]
}

impl Confinement {
    /// Applies it to the current process. Runs in the child between `fork` and `exec`, so it
    /// makes raw system calls only: no allocation, no locks.
    pub fn apply_in_child(&self) -> io::Result<()> {
        fn check(result: libc::c_int) -> io::Result<()> {
            if result == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
        // SAFETY: plain system calls on this (single-threaded, forked) process; every pointer
        // passed is to a live local value.
        unsafe {
            if let Some((uid, gid)) = self.ids {
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setresgid(gid, gid, gid))?;
                check(libc::setresuid(uid, uid, uid))?;
            }
            for (resource, value) in rlimits(&self.limits) {
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                check(libc::setrlimit(resource, &limit))?;
            }
            // Files a step creates are shared with the other steps of its execution (same
            // group), never with anyone else.
            libc::umask(0o007);
            if let Some(fd) = &self.inherited {
                check(libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lent_once_and_come_back() {
        let ids = HostIds::with_lock_dir(10, 2, None);
        let first = ids.lease().expect("free");
        let second = ids.lease().expect("free");
        let mut lent = [first.id(), second.id()];
        lent.sort_unstable();
        assert_eq!(lent, [10, 11]);
        assert!(ids.lease().is_none(), "all in use");
        let given_back = first.id();
        drop(first);
        assert_eq!(ids.lease().expect("given back").id(), given_back);
    }

    #[test]
    fn an_id_locked_by_another_pool_is_not_lent() {
        let dir = std::env::temp_dir().join(format!("ids-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("creates");
        // Two pools stand for two processes sharing the lock directory.
        let one = HostIds::with_lock_dir(20, 2, Some(dir.clone()));
        let other = HostIds::with_lock_dir(20, 2, Some(dir.clone()));
        let held = one.lease().expect("free");
        let lent = other.lease().expect("the other id is free");
        assert_ne!(held.id(), lent.id());
        assert!(other.lease().is_none(), "the first pool's id is locked");
        drop(held);
        assert!(other.lease().is_some(), "unlocked when the lease dropped");
        std::fs::remove_dir_all(&dir).expect("removes");
    }
}
