//! A global allocator that counts, per thread, the bytes live and the peak since the last
//! [`measure`], so a property can say "parsing N bytes never held more than k·N bytes".
//! Counters are thread-local: the test harness runs properties on parallel threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(bytes);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters move.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size);
        shrink(layout.size());
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `work` and answers its result with the most bytes it held at once on this thread.
pub fn measure<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let result = work();
    let peak = PEAK.with(Cell::get).saturating_sub(base);
    (result, peak)
}

/// The bound a parser is held to: `factor` times its input and a constant. A linear bound
/// catches what matters (growth without end, or quadratic in the input); the factor is what
/// the parser's data structures take per input byte, measured.
pub fn assert_bounded(what: &str, input_len: usize, peak: usize, factor: usize) {
    let bound = factor * input_len + 1024 * 1024;
    assert!(
        peak <= bound,
        "{what}: {input_len} bytes of input held {peak} bytes at once (bound {bound})"
    );
}

#[test]
fn the_counter_sees_what_a_parser_holds() {
    let (len, peak) = measure(|| vec![7u8; 5_000_000].len());
    assert_eq!(len, 5_000_000);
    assert!(peak >= 5_000_000, "{peak}");
    let ((), peak) = measure(|| {});
    assert!(peak < 1024, "{peak}");
}
