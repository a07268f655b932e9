//! The sliding-window counter behind requests-per-minute limits. Requests are counted in fixed
//! windows; a request is admitted when the previous window's count, weighted by how much of it
//! still overlaps the sliding window ending now, plus the current window's count stays within
//! the limit. That bounds any 60-second span closely, without a boundary where the count
//! resets and a burst of twice the limit gets through, in O(1) state per tenant. The same
//! arithmetic runs in Lua for the Redis limiter ([`super::shared`]); this is the local one's.

/// Below this, differences are float noise, not time or requests.
const TOLERANCE: f64 = 1e-6;

/// Requests counted in the current fixed window and the one before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Which window `current` counts: `now_ms / window_ms`.
    pub index: u64,
    pub current: u64,
    pub previous: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted,
    /// Refused; one more request would be admitted after this long.
    Refused {
        retry_after_ms: u64,
    },
}

/// Admits one request at `now_ms` (and counts it) or says how long to wait.
pub fn admit(counts: &mut WindowCounts, now_ms: u64, limit: u64, window_ms: u64) -> Decision {
    let index = now_ms / window_ms;
    if counts.index != index {
        let previous = if counts.index + 1 == index {
            counts.current
        } else {
            0
        };
        *counts = WindowCounts {
            index,
            current: 0,
            previous,
        };
    }
    let elapsed = now_ms - index * window_ms;
    let (window, elapsed_f) = (window_ms as f64, elapsed as f64);
    let estimate = counts.previous as f64 * (window - elapsed_f) / window + counts.current as f64;
    // The tolerance keeps float rounding from refusing a request at its exact retry time.
    if estimate + 1.0 <= limit as f64 + TOLERANCE {
        counts.current += 1;
        return Decision::Admitted;
    }
    Decision::Refused {
        retry_after_ms: retry_after(counts, elapsed_f, limit as f64, window),
    }
}

/// When the estimate will have dropped enough for one more request, with no more arriving.
fn retry_after(counts: &WindowCounts, elapsed: f64, limit: f64, window: f64) -> u64 {
    let (current, previous) = (counts.current as f64, counts.previous as f64);
    // Later in this window, once enough of the previous window has slid out.
    if current + 1.0 <= limit && previous > 0.0 {
        let at = window * (1.0 - (limit - 1.0 - current) / previous);
        if at < window {
            return whole_ms(at - elapsed);
        }
    }
    // In the next window, where this window's count is the one sliding out.
    let at_next = if current > 0.0 {
        (window * (1.0 - (limit - 1.0) / current)).max(0.0)
    } else {
        0.0
    };
    whole_ms(window - elapsed + at_next)
}

/// Rounds up to whole milliseconds, at least one, ignoring float noise below the tolerance.
fn whole_ms(wait: f64) -> u64 {
    (wait - TOLERANCE).ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    fn run(counts: &mut WindowCounts, at: u64, limit: u64) -> Decision {
        admit(counts, at, limit, MINUTE)
    }

    #[test]
    fn admits_up_to_the_limit_then_says_when_to_retry() {
        let mut counts = WindowCounts::default();
        let start = 100 * MINUTE;
        for _ in 0..3 {
            assert_eq!(run(&mut counts, start, 3), Decision::Admitted);
        }
        // Nothing in the previous window: the next request fits once this window is over
        // and a third of it has slid out (3 * (1 - t) + 1 <= 3 at t = 2/3 of a window).
        assert_eq!(
            run(&mut counts, start, 3),
            Decision::Refused {
                retry_after_ms: MINUTE + MINUTE / 3
            }
        );
    }

    #[test]
    fn a_window_boundary_does_not_reset_the_count() {
        let mut counts = WindowCounts::default();
        let late = 101 * MINUTE - 1_000;
        for _ in 0..2 {
            assert_eq!(run(&mut counts, late, 2), Decision::Admitted);
        }
        // Just after the boundary the previous window still weighs almost fully.
        let Decision::Refused { retry_after_ms } = run(&mut counts, 101 * MINUTE + 1_000, 2) else {
            panic!("admitted right after the boundary");
        };
        assert_eq!(retry_after_ms, 29_000);
        // Once half of the previous window has slid out, one more fits.
        assert_eq!(
            run(&mut counts, 101 * MINUTE + 30_000, 2),
            Decision::Admitted
        );
        assert!(matches!(
            run(&mut counts, 101 * MINUTE + 30_000, 2),
            Decision::Refused { .. }
        ));
    }

    #[test]
    fn a_long_pause_forgets_everything() {
        let mut counts = WindowCounts::default();
        assert_eq!(run(&mut counts, 5 * MINUTE, 1), Decision::Admitted);
        assert!(matches!(
            run(&mut counts, 5 * MINUTE, 1),
            Decision::Refused { .. }
        ));
        assert_eq!(run(&mut counts, 8 * MINUTE, 1), Decision::Admitted);
    }

    #[test]
    fn the_retry_time_is_when_a_request_is_admitted_again() {
        for limit in [1, 2, 5, 60] {
            let mut counts = WindowCounts::default();
            let mut now = 7 * MINUTE + 12_345;
            // Fill the limit, move on a little, and fill again as far as it goes.
            while run(&mut counts, now, limit) == Decision::Admitted {}
            now += 20_000;
            while run(&mut counts, now, limit) == Decision::Admitted {}
            let Decision::Refused { retry_after_ms } = run(&mut counts, now, limit) else {
                unreachable!()
            };
            let mut before = counts;
            assert!(
                matches!(
                    run(&mut before, now + retry_after_ms - 1, limit),
                    Decision::Refused { .. }
                ),
                "limit {limit}: admitted before the retry time"
            );
            assert_eq!(
                run(&mut counts, now + retry_after_ms, limit),
                Decision::Admitted,
                "limit {limit}: still refused at the retry time"
            );
        }
    }
}
