//! Whether a check, and a group, is healthy: consecutive results against
//! `fall` and `rise`, without I/O (results and time go in).

use std::time::{Duration, Instant};

/// One run of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub latency: Duration,
    /// Why it failed, or what answered (status line, exit code).
    pub detail: String,
}

/// A check's verdict. It starts *pending* (not healthy): a host whose
/// service is dead at boot must never take the group from a healthy peer,
/// so health is earned with `rise` consecutive successes
/// (docs/design.md §6.12).
#[derive(Clone, Debug)]
pub struct Judge {
    fall: u32,
    rise: u32,
    healthy: bool,
    /// No verdict yet: fewer than `rise` successes since start.
    pending: bool,
    ok_streak: u32,
    fail_streak: u32,
    last: Option<(Outcome, Instant)>,
    changed_at: Instant,
}

impl Judge {
    pub fn new(fall: u32, rise: u32, now: Instant) -> Judge {
        Judge {
            fall: fall.max(1),
            rise: rise.max(1),
            healthy: false,
            pending: true,
            ok_streak: 0,
            fail_streak: 0,
            last: None,
            changed_at: now,
        }
    }

    /// Starts healthy (a restart that resumes on its own leased IPs: the
    /// service was serving a moment ago); `fall` failures still demote.
    pub fn assume_healthy(&mut self, now: Instant) {
        if self.pending {
            self.healthy = true;
            self.pending = false;
            self.changed_at = now;
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }
    pub fn pending(&self) -> bool {
        self.pending
    }
    pub fn last(&self) -> Option<&(Outcome, Instant)> {
        self.last.as_ref()
    }
    /// When the verdict last changed (or the judge was made).
    pub fn changed_at(&self) -> Instant {
        self.changed_at
    }

    /// Records a run; returns the new verdict if it changed.
    pub fn record(&mut self, now: Instant, outcome: Outcome) -> Option<bool> {
        if outcome.ok {
            self.ok_streak = self.ok_streak.saturating_add(1);
            self.fail_streak = 0;
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.ok_streak = 0;
        }
        self.last = Some((outcome, now));
        let verdict = if self.healthy {
            self.fail_streak < self.fall
        } else {
            self.ok_streak >= self.rise
        };
        // A pending check that fails `fall` times is a verdict too: down.
        let decided = self.pending && (verdict || self.fail_streak >= self.fall);
        if verdict != self.healthy || decided {
            let changed = verdict != self.healthy;
            self.healthy = verdict;
            self.pending = false;
            self.changed_at = now;
            return changed.then_some(verdict);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ok: bool) -> Outcome {
        Outcome {
            ok,
            latency: Duration::from_millis(3),
            detail: String::new(),
        }
    }

    #[test]
    fn health_is_earned_with_rise_successes_and_lost_with_fall_failures() {
        let t = Instant::now();
        let mut j = Judge::new(3, 2, t);
        assert!(!j.healthy() && j.pending(), "pending is not healthy");
        assert_eq!(j.record(t, run(true)), None);
        assert_eq!(j.record(t, run(true)), Some(true), "rise = 2");
        assert!(!j.pending());
        assert_eq!(j.record(t, run(false)), None);
        assert_eq!(j.record(t, run(false)), None);
        assert_eq!(
            j.record(t, run(true)),
            None,
            "a success resets the fall count"
        );
        for _ in 0..2 {
            assert_eq!(j.record(t, run(false)), None);
        }
        assert_eq!(j.record(t, run(false)), Some(false), "fall = 3");
        assert_eq!(j.record(t, run(true)), None);
        assert_eq!(
            j.record(t, run(false)),
            None,
            "a failure resets the rise count"
        );
        assert_eq!(j.record(t, run(true)), None);
        assert_eq!(j.record(t, run(true)), Some(true));
    }

    #[test]
    fn a_service_dead_at_start_is_never_healthy_and_stops_being_pending() {
        let t = Instant::now();
        let mut j = Judge::new(2, 2, t);
        assert_eq!(j.record(t, run(false)), None);
        assert!(j.pending());
        assert_eq!(
            j.record(t, run(false)),
            None,
            "no change: it was never healthy"
        );
        assert!(!j.pending() && !j.healthy(), "a verdict: down");
    }

    #[test]
    fn a_resumed_group_starts_healthy_until_fall_failures() {
        let t = Instant::now();
        let mut j = Judge::new(2, 5, t);
        j.assume_healthy(t);
        assert!(j.healthy());
        assert_eq!(j.record(t, run(false)), None);
        assert_eq!(j.record(t, run(false)), Some(false));
    }
}
