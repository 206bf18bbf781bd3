//! Fast takeovers without skipping the probe (docs/safety.md §2.5, §2.6;
//! issue 9): the probe's cost is its timeout, the time it must listen to
//! conclude "silent". Two ways to stop clients paying it:
//!
//! - **Dead master (master-down):** a BACKUP knows when the election will
//!   declare the master down. The probe runs during the last
//!   `probe_timeout` of that wait ([`Planner::master_down_at`]), so its
//!   verdict is ready when the wait ends; an IP found silent is added at
//!   once if the verdict ended at most [`PREPROBE_FRESH`] before. An advert
//!   in the meantime moves the deadline and the verdict is dropped: nothing
//!   is taken. A pre-probe still running when mastership comes is adopted
//!   as the mastership's probe.
//! - **Handover (the master bowed out, or we preempted it):** the previous
//!   master is alive and releasing, and its IPs fall silent within
//!   milliseconds. For [`QUICK_WINDOW`] probes listen [`QUICK_PROBE`] and
//!   conflicts are re-probed every [`QUICK_REPROBE`]; every IP added on
//!   such a quick verdict then gets a full-length look for claims
//!   (`Op::Defend`), and an IP another host answers for then is given back
//!   and re-probed as any conflict ([`Note::LateClaim`]).

use super::{IpState, Mode, Note, Op, Planner, Wish};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a quick (handover) probe listens: kernels answer ARP and
/// neighbour solicitations within a millisecond on a LAN.
pub const QUICK_PROBE: Duration = Duration::from_millis(10);
/// Re-probe cadence of a conflict during a handover: the previous master
/// is removing its IPs right now.
pub const QUICK_REPROBE: Duration = Duration::from_millis(5);
/// How long after a handover its probes are quick.
pub const QUICK_WINDOW: Duration = Duration::from_secs(1);
/// A pre-probe verdict is used only if it ended at most this long before
/// mastership came (it covers the wait's last `probe_timeout`).
pub const PREPROBE_FRESH: Duration = Duration::from_millis(50);
/// The pre-probe starts this much before `master_down - probe_timeout`,
/// so that it has ended when the wait does.
const PREPROBE_LEAD: Duration = Duration::from_millis(10);

/// A probe run by a BACKUP during the end of its master-down wait.
pub(super) struct PreProbe {
    token: u64,
    ips: Vec<IpAddr>,
    /// When it ended and who answered (`None`: still running).
    done: Option<(Instant, BTreeMap<IpAddr, String>)>,
    /// The master-down deadline it was run for.
    deadline: Instant,
}

impl Planner {
    /// A new mastership: quick probes if it is a handover.
    pub(super) fn start_mastership(&mut self, now: Instant, wish: &Wish) {
        self.quick_until = wish.handover.then_some(now + QUICK_WINDOW);
    }

    pub(super) fn quick(&self, now: Instant) -> bool {
        self.quick_until.is_some_and(|t| now < t)
    }

    pub(super) fn probe_timeout(&self, now: Instant) -> Duration {
        if self.quick(now) {
            QUICK_PROBE.min(self.policy.probe_timeout)
        } else {
            self.policy.probe_timeout
        }
    }

    pub(super) fn reprobe_after(&self, now: Instant) -> Duration {
        if self.quick(now) {
            QUICK_REPROBE
        } else {
            self.reprobe_delay
        }
    }

    /// BACKUP: the election declares the master down at `at` unless an
    /// advert comes first. Schedules the pre-probe; a moved deadline (an
    /// advert came) drops an earlier verdict.
    pub(super) fn master_down_at(&mut self, now: Instant, at: Option<Instant>) {
        if !self.policy.probe || !self.policy.reprobe {
            return; // the hook takes no part in elections
        }
        let scheduled_for = self
            .preprobe
            .as_ref()
            .map(|p| p.deadline)
            .or(self.preprobe_deadline);
        if at == scheduled_for {
            return;
        }
        self.preprobe = None;
        self.preprobe_deadline = at;
        self.preprobe_at = at.map(|t| {
            t.checked_sub(self.policy.probe_timeout + PREPROBE_LEAD)
                .map_or(now, |start| start.max(now))
        });
    }

    pub(super) fn start_preprobe(&mut self) {
        self.preprobe_at = None;
        let Some(deadline) = self.preprobe_deadline else {
            return;
        };
        let ips: Vec<IpAddr> = self.slots.keys().copied().collect();
        if ips.is_empty() {
            return;
        }
        self.next_token += 1;
        self.preprobe = Some(PreProbe {
            token: self.next_token,
            ips: ips.clone(),
            done: None,
            deadline,
        });
        self.ops.push(Op::Probe {
            token: self.next_token,
            ips,
            timeout: self.policy.probe_timeout,
        });
    }

    /// A probe answer that belongs to the pre-probe: kept while BACKUP.
    /// Returns true when nothing else is to be done with it.
    pub(super) fn preprobed(
        &mut self,
        now: Instant,
        token: u64,
        result: &Result<BTreeMap<IpAddr, String>, String>,
    ) -> bool {
        let Some(pp) = self.preprobe.as_mut().filter(|p| p.token == token) else {
            return false;
        };
        match self.mode {
            Mode::Backup => {
                // A probe that could not be done proves nothing.
                pp.done = result.as_ref().ok().map(|r| (now, r.clone()));
                true
            }
            // Adopted by this mastership (`use_preprobe`): a normal answer.
            Mode::Master => {
                self.preprobe = None;
                false
            }
            Mode::Idle | Mode::Stopped => {
                self.preprobe = None;
                true
            }
        }
    }

    /// Mastership came: use the pre-probe for `probe` (the IPs to take)
    /// if it covers them and is fresh or still running. Returns whether
    /// it did (otherwise the caller probes).
    pub(super) fn use_preprobe(&mut self, now: Instant, probe: &[IpAddr]) -> bool {
        let Some(pp) = self.preprobe.take() else {
            return false;
        };
        if probe.is_empty() || !probe.iter().all(|ip| pp.ips.contains(ip)) {
            return false;
        }
        for ip in probe {
            if let Some(s) = self.slots.get_mut(ip) {
                s.state = IpState::Probing;
            }
        }
        // A full-length probe: no confirmation look needed.
        self.probe_was_quick = false;
        match pp.done {
            None => {
                // Still listening: its answer is this mastership's probe.
                self.probing = Some(pp.token);
                self.preprobe = Some(pp);
                true
            }
            Some((ended, answered)) if now.saturating_duration_since(ended) <= PREPROBE_FRESH => {
                self.next_token += 1;
                self.probing = Some(self.next_token);
                self.probed(now, self.next_token, Ok(answered));
                true
            }
            Some(_) => {
                for ip in probe {
                    if let Some(s) = self.slots.get_mut(ip) {
                        s.state = IpState::Absent;
                    }
                }
                false
            }
        }
    }

    /// IPs added on a quick verdict get a full-length look for claims,
    /// one look at a time.
    pub(super) fn confirm(&mut self) {
        if self.mode != Mode::Master || self.confirming.is_some() {
            return;
        }
        let ips: Vec<IpAddr> = std::mem::take(&mut self.unconfirmed)
            .into_iter()
            .filter(|ip| self.slots.get(ip).is_some_and(|s| s.state == IpState::Held))
            .collect();
        if ips.is_empty() {
            return;
        }
        self.next_token += 1;
        self.confirming = Some(self.next_token);
        self.ops.push(Op::Defend {
            token: self.next_token,
            ips,
        });
    }

    /// The full look after a quick verdict: an IP another host claims is
    /// given back and re-probed as a conflict.
    pub(super) fn confirmed(
        &mut self,
        now: Instant,
        result: Result<BTreeMap<IpAddr, String>, String>,
    ) {
        self.confirming = None;
        if let Ok(claims) = result {
            let mut nets = Vec::new();
            let mut ips = Vec::new();
            for (ip, who) in claims {
                let Some(s) = self.slots.get_mut(&ip).filter(|s| s.state == IpState::Held) else {
                    continue;
                };
                nets.push(s.seen.as_ref().map_or(s.net, super::entry));
                s.state = IpState::Conflict(format!("{who} (after the quick handover probe)"));
                ips.push(ip);
            }
            if !ips.is_empty() {
                self.ops.push(Op::Note(Note::LateClaim { ips }));
                self.ops.push(Op::Remove {
                    nets,
                    why: "another host answered for it after the quick handover probe",
                });
                if self.policy.reprobe && self.reprobe_at.is_none() {
                    self.reprobe_at = Some(now + self.reprobe_delay);
                }
            }
        }
        self.confirm();
    }
}
