//! Rate limit for warnings that repeat while a condition lasts (an advert
//! that cannot be sent every second, a lease that cannot be renewed, a
//! probe that keeps failing): the first occurrence of each distinct line
//! is logged at once, repeats at most once per [`REPEAT_EVERY`], each with
//! the number left out since the one before.
//!
//! The key is the call site plus the line's own text (group, address,
//! error), so a different error or another group is a first occurrence of
//! its own and is never hidden behind an older one.
//!
//! The table is per thread: the event loop and the IP tasks share the main
//! thread, so nothing here takes a lock (docs/design.md §3.5).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most one line per key in this period.
pub const REPEAT_EVERY: Duration = Duration::from_secs(60);
/// Keys remembered at most; past it, keys not seen for a period are forgotten.
const MAX_KEYS: usize = 4096;

#[derive(Debug)]
struct Seen {
    logged: Instant,
    left_out: u64,
}

/// The decision table (one per thread behind [`due`]; its own in tests).
#[derive(Debug, Default)]
pub struct Limiter {
    seen: HashMap<String, Seen>,
}

impl Limiter {
    /// Whether a line with `key` may be logged at `now`: `Some(n)` with the
    /// `n` lines left out since the last one logged, `None` to leave it out.
    pub fn check(&mut self, key: &str, now: Instant, every: Duration) -> Option<u64> {
        if let Some(s) = self.seen.get_mut(key) {
            if now.saturating_duration_since(s.logged) < every {
                s.left_out += 1;
                return None;
            }
            let left_out = s.left_out;
            *s = Seen {
                logged: now,
                left_out: 0,
            };
            return Some(left_out);
        }
        if self.seen.len() >= MAX_KEYS {
            self.seen
                .retain(|_, s| now.saturating_duration_since(s.logged) < every);
        }
        if self.seen.len() < MAX_KEYS {
            self.seen.insert(
                key.to_string(),
                Seen {
                    logged: now,
                    left_out: 0,
                },
            );
        }
        Some(0)
    }
}

thread_local! {
    static LIMITER: RefCell<Limiter> = RefCell::new(Limiter::default());
}

/// [`Limiter::check`] on this thread's table with [`REPEAT_EVERY`]:
/// `Some(n)` to log (with `n` left out before it), `None` to skip.
pub fn due(key: &str) -> Option<u64> {
    LIMITER.with(|l| {
        l.try_borrow_mut()
            .map_or(Some(0), |mut l| l.check(key, Instant::now(), REPEAT_EVERY))
    })
}

/// The note appended to a logged repeat: empty for a first occurrence.
pub fn note(left_out: u64) -> String {
    if left_out == 0 {
        String::new()
    } else {
        format!(
            " ({left_out} more like this in the last {} s not logged)",
            REPEAT_EVERY.as_secs()
        )
    }
}

/// `warn!` at most once per [`REPEAT_EVERY`] for the same call site and
/// text; the first occurrence always. Takes `warn!`'s fields, then the
/// format string and its arguments.
#[macro_export]
macro_rules! warn_limited {
    ({ $($field:tt)* }, $($fmt:tt)+) => {{
        let text = format!($($fmt)+);
        let key = format!("{}:{}:{}", file!(), line!(), text);
        if let Some(left_out) = $crate::lograte::due(&key) {
            tracing::warn!($($field)* "{}{}", text, $crate::lograte::note(left_out));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_occurrence_is_logged_and_repeats_are_counted() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0, 60 * S), Some(0));
        for i in 1..=34 {
            assert_eq!(l.check("a", t0 + S * i / 3, 60 * S), None);
        }
        // Another key is a first occurrence of its own.
        assert_eq!(l.check("b", t0 + 2 * S, 60 * S), Some(0));
        // After the period: logged again, saying how many were left out.
        assert_eq!(l.check("a", t0 + 60 * S, 60 * S), Some(34));
        assert_eq!(l.check("a", t0 + 61 * S, 60 * S), None);
        assert_eq!(l.check("a", t0 + 121 * S, 60 * S), Some(1));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_KEYS + 10 {
            assert_eq!(l.check(&i.to_string(), t0, 60 * S), Some(0));
        }
        assert!(l.seen.len() <= MAX_KEYS);
        // Old keys are dropped once the table is full.
        assert_eq!(l.check("late", t0 + 61 * S, 60 * S), Some(0));
        assert!(l.seen.len() <= MAX_KEYS);
    }

    #[test]
    fn notes() {
        assert_eq!(note(0), "");
        assert_eq!(note(3), " (3 more like this in the last 60 s not logged)");
    }

    #[test]
    fn the_macro_logs_a_repeated_line_once() {
        let sub = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish();
        let mut logged = 0;
        tracing::subscriber::with_default(sub, || {
            for _ in 0..5 {
                let key = format!("{}:{}", file!(), "macro-test");
                if due(&key).is_some() {
                    logged += 1;
                }
            }
            // Through the macro itself: no panic, fields accepted.
            for _ in 0..3 {
                crate::warn_limited!({ group = "web", }, "sending advert: {}", "ENOBUFS");
            }
        });
        assert_eq!(logged, 1);
    }
}
