//! Health checks (issue 8): the service behind a group's IPs decides
//! whether this host may hold them.
//!
//! - `judge`: consecutive results against `fall`/`rise`, pure;
//! - `run`: one check run (TCP, HTTP, program) and the task that repeats it;
//! - [`Checks`]: the daemon's running checks, identical ones shared by
//!   every group that lists them;
//! - [`GroupHealth`]: one group's judges; healthy when all of them are.
//!
//! An unhealthy group advertises itself as least preferred (as `ipfail
//! demote`, not persisted), so a healthy peer takes over at once; it still
//! becomes master when nobody else advertises (docs/design.md §6.12).

pub mod judge;
pub mod run;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::health::{CheckKind, Health};
pub use judge::{Judge, Outcome};

/// What makes two checks the same (and so run once).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    kind: CheckKind,
    interval: Duration,
    timeout: Duration,
}

/// The daemon's running checks. Ids are stable for a check's life.
pub struct Checks {
    running: Vec<Option<(Spec, JoinHandle<()>)>>,
    tx: mpsc::UnboundedSender<(usize, Outcome)>,
}

impl Checks {
    /// Outcomes go to `tx` as `(id, outcome)`.
    pub fn new(tx: mpsc::UnboundedSender<(usize, Outcome)>) -> Checks {
        Checks {
            running: Vec::new(),
            tx,
        }
    }

    /// The id of the check, started now if nothing runs it yet.
    pub fn ensure(&mut self, kind: &CheckKind, interval: Duration, timeout: Duration) -> usize {
        let spec = Spec {
            kind: kind.clone(),
            interval,
            timeout,
        };
        if let Some(id) = self
            .running
            .iter()
            .position(|r| r.as_ref().is_some_and(|(s, _)| *s == spec))
        {
            return id;
        }
        let task = tokio::spawn(run::every(
            self.running.len(),
            spec.kind.clone(),
            interval,
            timeout,
            self.tx.clone(),
        ));
        self.running.push(Some((spec, task)));
        self.running.len() - 1
    }

    /// Stops the checks no group uses any more.
    pub fn retain(&mut self, used: &BTreeSet<usize>) {
        for (id, slot) in self.running.iter_mut().enumerate() {
            if !used.contains(&id) {
                if let Some((_, task)) = slot.take() {
                    task.abort();
                }
            }
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for (_, task) in self.running.iter().flatten() {
            task.abort();
        }
    }
}

/// One check of a group: its id in [`Checks`], its text, its judge.
#[derive(Clone, Debug)]
pub struct GroupCheck {
    pub id: usize,
    pub name: String,
    pub judge: Judge,
}

/// A group's health: healthy when every check is.
#[derive(Clone, Debug)]
pub struct GroupHealth {
    pub checks: Vec<GroupCheck>,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
}

impl GroupHealth {
    /// Starts (or joins) the group's checks; every judge starts pending,
    /// except those of `old` for the same check, which keep their state
    /// (a reload that keeps a check keeps its verdict).
    pub fn start(
        health: &Health,
        checks: &mut Checks,
        old: Option<&GroupHealth>,
        now: Instant,
    ) -> GroupHealth {
        let same_rules = old.is_some_and(|o| o.fall == health.fall && o.rise == health.rise);
        let checks = health
            .checks
            .iter()
            .map(|c| {
                let id = checks.ensure(&c.kind, health.interval, health.timeout);
                let judge = old
                    .filter(|_| same_rules)
                    .and_then(|o| o.checks.iter().find(|g| g.id == id))
                    .map(|g| g.judge.clone())
                    .unwrap_or_else(|| Judge::new(health.fall, health.rise, now));
                GroupCheck {
                    id,
                    name: c.kind.describe(),
                    judge,
                }
            })
            .collect();
        GroupHealth {
            checks,
            interval: health.interval,
            timeout: health.timeout,
            fall: health.fall,
            rise: health.rise,
        }
    }

    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.judge.healthy())
    }

    /// No verdict yet for some check.
    pub fn pending(&self) -> bool {
        self.checks.iter().any(|c| c.judge.pending())
    }

    pub fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.checks.iter().map(|c| c.id)
    }

    /// Every judge starts healthy (a restart resuming on its own IPs).
    pub fn assume_healthy(&mut self, now: Instant) {
        for c in &mut self.checks {
            c.judge.assume_healthy(now);
        }
    }

    /// Records an outcome of check `id`; returns `(check name, new group
    /// verdict)` when the group's verdict changed.
    pub fn record(&mut self, now: Instant, id: usize, outcome: &Outcome) -> Option<(String, bool)> {
        let before = self.healthy();
        let mut name = None;
        for c in self.checks.iter_mut().filter(|c| c.id == id) {
            c.judge.record(now, outcome.clone());
            name = Some(c.name.clone());
        }
        let after = self.healthy();
        (after != before).then(|| (name.unwrap_or_default(), after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            ok,
            latency: Duration::from_millis(1),
            detail: String::new(),
        }
    }

    fn group(ids: &[usize], t: Instant) -> GroupHealth {
        GroupHealth {
            checks: ids
                .iter()
                .map(|&id| GroupCheck {
                    id,
                    name: format!("check {id}"),
                    judge: Judge::new(2, 2, t),
                })
                .collect(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            fall: 2,
            rise: 2,
        }
    }

    #[test]
    fn a_group_is_healthy_only_when_every_check_is() {
        let t = Instant::now();
        let mut g = group(&[0, 1], t);
        assert!(!g.healthy() && g.pending());
        assert_eq!(g.record(t, 0, &outcome(true)), None);
        assert_eq!(
            g.record(t, 0, &outcome(true)),
            None,
            "check 1 still pending"
        );
        assert_eq!(g.record(t, 1, &outcome(true)), None);
        assert_eq!(
            g.record(t, 1, &outcome(true)),
            Some(("check 1".into(), true))
        );
        assert!(!g.pending());
        assert_eq!(g.record(t, 0, &outcome(false)), None);
        assert_eq!(
            g.record(t, 0, &outcome(false)),
            Some(("check 0".into(), false))
        );
        assert_eq!(g.record(t, 7, &outcome(true)), None, "not ours");
    }
}
