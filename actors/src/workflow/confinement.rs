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
//! the sandbox and its process limit counts the server's user as a whole.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::limits::StepLimits;

/// A range of host ids no one else uses, lent out one at a time.
#[derive(Debug, Clone)]
pub struct HostIds {
    free: Arc<Mutex<Vec<u32>>>,
}

impl HostIds {
    /// Ids `first .. first + count`.
    pub fn new(first: u32, count: u32) -> Self {
        let last = first.saturating_add(count);
        Self {
            free: Arc::new(Mutex::new((first..last).rev().collect())),
        }
    }

    /// Borrows a free id, given back when the lease drops; `None` when all are in use.
    pub fn lease(&self) -> Option<IdLease> {
        let id = self.free.lock().ok()?.pop()?;
        Some(IdLease {
            id,
            pool: self.free.clone(),
        })
    }
}

/// One borrowed id.
#[derive(Debug)]
pub struct IdLease {
    id: u32,
    pool: Arc<Mutex<Vec<u32>>>,
}

impl IdLease {
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for IdLease {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.lock() {
            free.push(self.id);
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
        let ids = HostIds::new(10, 2);
        let first = ids.lease().expect("free");
        let second = ids.lease().expect("free");
        assert_eq!((first.id(), second.id()), (10, 11));
        assert!(ids.lease().is_none(), "all in use");
        drop(first);
        assert_eq!(ids.lease().expect("given back").id(), 10);
    }
}
