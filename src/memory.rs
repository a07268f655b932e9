//! How the process gives memory back. Clients send bodies of up to a megabyte, and steps
//! print as much; glibc's allocator raises its mmap threshold each time such a block is
//! freed, so later large blocks come from heaps that fragment and are never returned, and
//! resident memory stays at its peak long after the data is gone. Fixing the threshold at
//! 128 KiB keeps every large block in its own mapping, unmapped the moment it is freed: the
//! byte budgets of sessions and executions then bound resident memory too.

/// Call once at start-up, before any thread starts.
pub fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
