//! Forced takeover: the operator has confirmed that the host still
//! answering for the group's IPs is a zombie (alive on the network, dead
//! to its service, not speaking CARP) and runs `ipfail takeover GROUP
//! --despite-answers` on the master. The rules, argued in docs/safety.md
//! ("Forced takeover"):
//!
//! - only a MASTER forces, and only for its current mastership: losing
//!   it, or stopping, ends the force (the IPs are released as always);
//! - every IP not held yet is added without the probe; a lost one is
//!   taken back the same way while the force lasts;
//! - the IPs are defended: every [`DEFEND_EVERY`] the driver looks for
//!   another host that still claims them (ARP / neighbour solicitation,
//!   `Op::Defend`) and each claimed IP is announced again at once; the
//!   driver also reports ARP frames for the IPs ([`Planner::arp_seen`]),
//!   answered with an announcement (at most one per IP every
//!   [`REACT_GAP`]), so a client that just believed the zombie is
//!   corrected within one frame;
//! - the force ends on its own once the other host has been silent for
//!   [`SILENT_ROUNDS`] looks in a row (it finally died or was fixed),
//!   and `--undo` ends it by giving back the IPs that were still claimed
//!   at the last look (they return to conflict and are re-probed).

use super::{entry, IpState, Mode, Note, Op, Planner};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often a forced master looks for the zombie's claims.
pub const DEFEND_EVERY: Duration = Duration::from_secs(1);
/// Looks in a row without a claim after which the zombie is taken as gone.
pub const SILENT_ROUNDS: u32 = 3;
/// Reactive announcements of one IP at most this often (a flood of ARP
/// requests must not become a flood of ours).
pub const REACT_GAP: Duration = Duration::from_millis(50);

pub(super) struct Force {
    pub(super) since: Instant,
    pub(super) defend_at: Instant,
    /// The look in flight.
    token: Option<u64>,
    silent_rounds: u32,
    /// The IPs another host claimed at the last look (at the start: the
    /// ones in conflict).
    contested: BTreeSet<IpAddr>,
    last_claim: Option<Instant>,
    claims: u64,
    /// Last reactive announcement per IP, for requests and for claims
    /// apart: a claim seen just before a client's request must not
    /// silence the answer to that request.
    reacted: BTreeMap<(IpAddr, bool), Instant>,
}

/// Why a forced takeover ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForceEnd {
    /// `ipfail takeover GROUP --undo`.
    Undone,
    /// Nobody else claimed the IPs for [`SILENT_ROUNDS`] looks.
    ZombieSilent,
    /// This host stopped being master (or the daemon stops).
    MastershipEnded,
}

/// Why a force (or its undo) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForceRefused {
    #[error("this host is not MASTER of the group: a forced takeover applies only to the master's own IPs")]
    NotMaster,
    #[error("a forced takeover of the group is already running")]
    Already,
    #[error("every IP of the group is already held here: nothing to force")]
    NothingToTake,
    #[error("no forced takeover of the group is running: nothing to undo")]
    NotForced,
}

/// A forced takeover as `ipfail status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForceView {
    pub since: Instant,
    /// Claimed by another host at the last look.
    pub contested: Vec<IpAddr>,
    pub last_claim: Option<Instant>,
    /// Claims seen since the force began (looks and ARP frames).
    pub claims: u64,
}

impl Planner {
    /// Takes every IP not held yet without probing, and defends them.
    /// Returns the IPs being taken.
    pub fn force(&mut self, now: Instant) -> Result<Vec<IpAddr>, ForceRefused> {
        if self.mode != Mode::Master {
            return Err(ForceRefused::NotMaster);
        }
        if self.force.is_some() {
            return Err(ForceRefused::Already);
        }
        let take = self.in_state(|s| *s != IpState::Held);
        if take.is_empty() {
            return Err(ForceRefused::NothingToTake);
        }
        let contested = self.in_state(|s| matches!(s, IpState::Conflict(_)));
        // A probe or re-probe in flight is superseded: its answer is moot.
        self.probing = None;
        self.reprobe_at = None;
        self.acquire_at = None;
        self.force = Some(Force {
            since: now,
            defend_at: now + DEFEND_EVERY,
            token: None,
            silent_rounds: 0,
            contested: contested.into_iter().collect(),
            last_claim: None,
            claims: 0,
            reacted: BTreeMap::new(),
        });
        self.take(now, take.clone());
        Ok(take)
    }

    /// Ends the force: the IPs still claimed at the last look are removed
    /// and go back to conflict (re-probed as usual); the others stay held.
    /// Returns the IPs given back.
    pub fn unforce(&mut self, now: Instant) -> Result<Vec<IpAddr>, ForceRefused> {
        let Some(f) = self.force.take() else {
            return Err(ForceRefused::NotForced);
        };
        let mut nets = Vec::new();
        let mut back = Vec::new();
        for ip in &f.contested {
            let Some(s) = self.slots.get_mut(ip) else {
                continue;
            };
            if s.state == IpState::Held {
                nets.push(s.seen.as_ref().map_or(s.net, entry));
                back.push(*ip);
            }
            s.state = IpState::Conflict(
                "still claimed by another host when the forced takeover was undone".into(),
            );
        }
        if !nets.is_empty() {
            self.ops.push(Op::Remove {
                nets,
                why: "forced takeover undone: another host still claims it",
            });
        }
        if self.policy.reprobe && !f.contested.is_empty() {
            self.reprobe_at = Some(now + self.policy.reprobe_interval);
        }
        self.ops.push(Op::Note(Note::ForceEnded {
            why: ForceEnd::Undone,
        }));
        Ok(back)
    }

    pub fn is_forced(&self) -> bool {
        self.force.is_some()
    }

    pub fn force_view(&self) -> Option<ForceView> {
        self.force.as_ref().map(|f| ForceView {
            since: f.since,
            contested: f.contested.iter().copied().collect(),
            last_claim: f.last_claim,
            claims: f.claims,
        })
    }

    pub(super) fn end_force(&mut self, why: ForceEnd) {
        if self.force.take().is_some() {
            self.ops.push(Op::Note(Note::ForceEnded { why }));
        }
    }

    /// Timer: time for the next look for claims.
    pub(super) fn defend_due(&mut self, now: Instant) {
        let held = self.held();
        let token = self.next_token + 1;
        let Some(f) = self.force.as_mut() else {
            return;
        };
        if f.defend_at > now {
            return;
        }
        f.defend_at = now + DEFEND_EVERY;
        if held.is_empty() {
            return;
        }
        // A look still out is superseded (its answer is ignored).
        self.next_token = token;
        f.token = Some(token);
        self.ops.push(Op::Defend { token, ips: held });
    }

    /// The look with `token` found these IPs claimed by another host
    /// (`Err`: the look could not be done, which proves nothing).
    pub fn defended(
        &mut self,
        now: Instant,
        token: u64,
        result: Result<BTreeMap<IpAddr, String>, String>,
    ) {
        if self.confirming == Some(token) {
            self.confirmed(now, result);
            return;
        }
        let held: BTreeSet<IpAddr> = self.held().into_iter().collect();
        let Some(f) = self.force.as_mut() else {
            return;
        };
        if f.token != Some(token) {
            return;
        }
        f.token = None;
        let Ok(answered) = result else {
            return;
        };
        let claimed: Vec<IpAddr> = answered
            .keys()
            .filter(|ip| held.contains(ip))
            .copied()
            .collect();
        if claimed.is_empty() {
            f.silent_rounds += 1;
            f.contested.clear();
            if f.silent_rounds >= SILENT_ROUNDS {
                self.end_force(ForceEnd::ZombieSilent);
            }
            return;
        }
        f.silent_rounds = 0;
        f.last_claim = Some(now);
        f.claims += claimed.len() as u64;
        f.contested = claimed.iter().copied().collect();
        self.ops.push(Op::Announce { ips: claimed });
    }

    /// The driver saw an ARP frame about forced IP `ip` from another host:
    /// a claim (its sender address is `ip`: the zombie speaks for it) or a
    /// request for it (someone is about to hear the zombie's answer).
    /// Either way it is announced again, at most once per [`REACT_GAP`].
    pub fn arp_seen(&mut self, now: Instant, ip: IpAddr, claim: bool) {
        let held = self
            .slots
            .get(&ip)
            .is_some_and(|s| s.state == IpState::Held);
        let Some(f) = self.force.as_mut() else {
            return;
        };
        if !held {
            return;
        }
        if claim {
            f.silent_rounds = 0;
            f.last_claim = Some(now);
            f.claims += 1;
            f.contested.insert(ip);
        }
        if f.reacted
            .get(&(ip, claim))
            .is_some_and(|t| now.saturating_duration_since(*t) < REACT_GAP)
        {
            return;
        }
        f.reacted.insert((ip, claim), now);
        self.ops.push(Op::Announce { ips: vec![ip] });
    }
}
