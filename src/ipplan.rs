//! The IP planner: what to do with one group's floating IPs, as a pure
//! state machine shared by the daemon (`ipmgr`) and `ipfail hook`.
//!
//! Time, wishes and the results of the work go in (`want`, `probed`,
//! `added`, `removed`, `refreshed`, `observed`, `addr_event`, `timeout`);
//! [`Op`]s come out ([`Planner::poll_op`]) for the driver to carry out
//! with netlink and the probe, feeding each result back. Nothing here
//! waits, so every rule below is unit-tested with a virtual clock.
//!
//! The rules (argued in docs/safety.md):
//! - an IP is added only after a probe found nobody answering for it
//!   (unless the caller disabled probing: `ipfail hook --force`), or when
//!   it is already on our NIC with our mark (then it is ours: kept);
//! - an IP that answered is a conflict, re-probed with backoff (daemon) or
//!   reported and left alone (hook);
//! - a held IP carries a kernel lease (daemon): refreshed every
//!   `refresh_every`, and only after a fresh read of the interface showed
//!   it still there with time left, so a refresh can never re-create an
//!   address that expired or was removed meanwhile ("Kernel leases");
//! - a held IP that disappears (removed by anyone, or an expired lease) is
//!   noticed from the address event, confirmed by reading the interface,
//!   and taken again through the probe;
//! - on release every configured IP found on the NIC is removed, except at
//!   start-up, where only addresses with our mark are ("Only our own
//!   addresses"); [`Op::Released`] follows once the removals are done;
//! - an operator's forced takeover (`ipfail takeover --despite-answers`,
//!   `force.rs`) takes the master's IPs without the probe and defends them
//!   until it is undone, the other host falls silent, or mastership ends.

use crate::config::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// First re-probe of a conflicting IP after taking a group: a previous
/// master usually removes its IPs within milliseconds of our advert.
pub const FIRST_REPROBE: Duration = Duration::from_millis(50);

/// A lease is refreshed only while the kernel says at least this many
/// seconds are left, so it cannot expire between the read and the refresh.
const MIN_LEFT_TO_REFRESH: u32 = 2;

/// How long after reading the interface a refresh may still be sent; the
/// driver drops a refresh that waited longer (the process was frozen).
pub const REFRESH_FRESH_FOR: Duration = Duration::from_millis(500);

/// Where one IP stands on this host, for logs and `ipfail status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpState {
    Absent,
    Probing,
    Held,
    Conflict(String),
    Failed(String),
}

/// Kernel lease of the daemon's addresses (docs/safety.md, "Kernel leases").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// valid_lft = preferred_lft, seconds.
    pub secs: u32,
    pub refresh_every: Duration,
}

impl Lease {
    /// The lease of a group with these CARP timers: a refresh every
    /// advert interval, and a lifetime of the master-down interval rounded
    /// up to whole seconds plus one refresh period, so that a stall shorter
    /// than our own master-down interval never expires it.
    pub fn for_timers(advbase: u8, advskew: u8) -> Lease {
        let down = crate::carp::fsm::master_down_interval(advbase, advskew);
        let down_secs = down.as_secs() + u64::from(down.subsec_nanos() > 0);
        let every = u64::from(advbase.max(1));
        Lease {
            secs: u32::try_from(down_secs + every).unwrap_or(u32::MAX),
            refresh_every: Duration::from_secs(every),
        }
    }
}

/// How one user of the planner wants it to behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Probe before adding (false: `ipfail hook --force`).
    pub probe: bool,
    /// How long a probe listens for answers.
    pub probe_timeout: Duration,
    /// Keep re-probing conflicts (daemon) or report them once (hook).
    pub reprobe: bool,
    pub reprobe_interval: Duration,
    /// `None`: addresses live until removed (hook).
    pub lease: Option<Lease>,
    /// Announcement rounds after adding, `garp_interval` apart.
    pub garp_count: u32,
    pub garp_interval: Duration,
    /// The first release (start-up reconcile) removes only addresses with
    /// our mark (daemon); otherwise every configured address found (hook).
    pub startup_only_ours: bool,
}

/// What the election wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wish {
    pub master: bool,
    /// A new mastership has a new epoch, so stale results are recognised.
    pub epoch: u64,
    /// Wait this long before probing (a preempted master is releasing).
    pub settle: Duration,
    /// Remove everything and finish.
    pub stop: bool,
    /// The previous master handed the group over (its bow-out, or we
    /// preempted it): a quick probe, then a full look (`handover.rs`).
    pub handover: bool,
    /// BACKUP: when the election will declare the master down unless an
    /// advert comes first; the probe runs during the end of that wait.
    pub master_down_at: Option<Instant>,
}

/// An address as read from the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub addr: IpAddr,
    pub prefix: u8,
    /// Carries ipfail's mark.
    pub ours: bool,
    /// Seconds of lease left; `None`: permanent.
    pub valid_left: Option<u32>,
}

/// Work for the driver, in the order it comes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Probe these IPs for `timeout`; answer with [`Planner::probed`] and
    /// this token.
    Probe {
        token: u64,
        ips: Vec<IpAddr>,
        timeout: Duration,
    },
    /// Add these (with the policy's lease); answer with [`Planner::added`].
    Add { nets: Vec<IpNet> },
    /// Set the lease again; skip it if it is not sent before `not_after`.
    /// Answer with [`Planner::refreshed`].
    Refresh {
        nets: Vec<IpNet>,
        not_after: Instant,
    },
    /// Remove these exact entries; answer with [`Planner::removed`].
    Remove { nets: Vec<IpNet>, why: &'static str },
    /// One round of gratuitous ARP / unsolicited NA.
    Announce { ips: Vec<IpAddr> },
    /// Read the interface's addresses; answer with [`Planner::observed`].
    ReadAddrs,
    /// The release of mastership `epoch` is done: nothing of ours is left.
    Released { epoch: u64 },
    /// Look for another host that still claims these held IPs (ARP /
    /// neighbour solicitation only: we hold them, so ping would answer
    /// itself), for the full probe timeout: a forced takeover's defence,
    /// or the confirmation after a quick handover probe. Answer with
    /// [`Planner::defended`].
    Defend { token: u64, ips: Vec<IpAddr> },
    /// Worth a log line.
    Note(Note),
}

/// Things the driver logs; the planner decides, the driver words them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A held IP is gone from the interface: someone removed it, or its
    /// lease ran out (`by`: netlink port of the remover, 0 = the kernel).
    Lost { ip: IpAddr, by: Option<u32> },
    /// A held IP's lease was too close to its end to refresh safely.
    LeaseRunningOut { ip: IpAddr, left: u32 },
    /// Found our own leased IPs at start: kept, not probed.
    Adopted { ips: Vec<IpAddr> },
    /// A configured IP is on the NIC without our mark at start-up: left alone.
    NotOurs { ip: IpAddr },
    /// The forced takeover ended (the operator's command has its own reply).
    ForceEnded { why: ForceEnd },
    /// After a quick handover probe, the full look found another host
    /// claiming these IPs: given back, re-probed as conflicts.
    LateClaim { ips: Vec<IpAddr> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No wish yet: nothing is done (the first wish reconciles).
    Idle,
    Master,
    Backup,
    Stopped,
}

struct Slot {
    net: IpNet,
    state: IpState,
    /// What the interface last said about this address.
    seen: Option<Seen>,
    /// A del event arrived that a read has not confirmed yet.
    lost_by: Option<u32>,
    /// When the lease we last set runs out, by our clock.
    lease_end: Option<Instant>,
}

pub struct Planner {
    policy: Policy,
    slots: BTreeMap<IpAddr, Slot>,
    mode: Mode,
    epoch: u64,
    ops: Vec<Op>,
    /// The probe in flight and its token.
    probing: Option<u64>,
    next_token: u64,
    /// Start acquiring at this time (settle after preemption).
    acquire_at: Option<Instant>,
    reprobe_at: Option<Instant>,
    reprobe_delay: Duration,
    /// Announcement repeats: next round and rounds left.
    garp: Option<(Instant, u32)>,
    refresh_at: Option<Instant>,
    /// A read is out; its answer decides refreshes when `refresh_pending`.
    reading: bool,
    refresh_pending: bool,
    /// Release of this epoch waits for the removals to be answered.
    release_pending: Option<u64>,
    /// The first release is the start-up reconcile: only our marks go.
    reconciled: bool,
    /// The operator's forced takeover of this mastership, if any.
    force: Option<force::Force>,
    /// Probing during the end of the master-down wait (`handover.rs`).
    preprobe_at: Option<Instant>,
    /// The master-down deadline `preprobe_at` is scheduled for.
    preprobe_deadline: Option<Instant>,
    preprobe: Option<handover::PreProbe>,
    /// This mastership began as a handover: quick probes until then.
    quick_until: Option<Instant>,
    /// IPs added on a quick probe, waiting for their full look, and the
    /// look in flight.
    unconfirmed: Vec<IpAddr>,
    confirming: Option<u64>,
    /// The probe in flight listens less than `probe_timeout`.
    probe_was_quick: bool,
}

impl Planner {
    pub fn new(ips: &[IpNet], policy: Policy) -> Planner {
        let mut p = Planner {
            reprobe_delay: FIRST_REPROBE.min(policy.reprobe_interval),
            policy,
            slots: BTreeMap::new(),
            mode: Mode::Idle,
            epoch: 0,
            ops: Vec::new(),
            probing: None,
            next_token: 0,
            acquire_at: None,
            reprobe_at: None,
            garp: None,
            refresh_at: None,
            reading: false,
            refresh_pending: false,
            release_pending: None,
            reconciled: false,
            force: None,
            preprobe_at: None,
            preprobe_deadline: None,
            preprobe: None,
            quick_until: None,
            unconfirmed: Vec::new(),
            confirming: None,
            probe_was_quick: false,
        };
        for net in ips {
            p.slots.insert(
                net.addr,
                Slot {
                    net: *net,
                    state: IpState::Absent,
                    seen: None,
                    lost_by: None,
                    lease_end: None,
                },
            );
        }
        p
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The next op for the driver, oldest first.
    pub fn poll_op(&mut self) -> Option<Op> {
        if self.ops.is_empty() {
            None
        } else {
            Some(self.ops.remove(0))
        }
    }

    /// When [`Planner::timeout`] wants to be called next.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.acquire_at,
            self.reprobe_at,
            self.garp.map(|g| g.0),
            self.refresh_at,
            self.force.as_ref().map(|f| f.defend_at),
            self.preprobe_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Every IP's state, for `ipfail status`.
    pub fn states(&self) -> BTreeMap<IpAddr, IpState> {
        self.slots
            .iter()
            .map(|(ip, s)| (*ip, s.state.clone()))
            .collect()
    }

    pub fn held(&self) -> Vec<IpAddr> {
        self.in_state(|s| *s == IpState::Held)
    }

    /// Done with everything asked: no probe, read or timer outstanding
    /// (the hook runs until this is true).
    pub fn is_quiet(&self) -> bool {
        self.ops.is_empty()
            && self.probing.is_none()
            && !self.reading
            && self.acquire_at.is_none()
            && self.reprobe_at.is_none()
            && self.garp.is_none()
            && self.release_pending.is_none()
    }

    fn in_state(&self, f: impl Fn(&IpState) -> bool) -> Vec<IpAddr> {
        self.slots
            .iter()
            .filter(|(_, s)| f(&s.state))
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// The group's address list (at start and on reload). Dropped IPs are
    /// removed if the interface has them; added ones are acquired by a
    /// master on the next step.
    pub fn set_ips(&mut self, now: Instant, ips: &[IpNet]) {
        let wanted: BTreeMap<IpAddr, IpNet> = ips.iter().map(|n| (n.addr, *n)).collect();
        let dropped: Vec<IpNet> = self
            .slots
            .iter()
            .filter(|(ip, _)| !wanted.contains_key(ip))
            .filter_map(|(_, s)| s.seen.map(|seen| entry(&seen)))
            .collect();
        self.slots.retain(|ip, _| wanted.contains_key(ip));
        let mut added = false;
        for (ip, net) in wanted {
            let slot = self.slots.entry(ip).or_insert_with(|| {
                added = true;
                Slot {
                    net,
                    state: IpState::Absent,
                    seen: None,
                    lost_by: None,
                    lease_end: None,
                }
            });
            slot.net = net;
        }
        if !dropped.is_empty() {
            self.ops.push(Op::Remove {
                nets: dropped,
                why: "dropped from the group",
            });
        }
        if added && self.mode == Mode::Master && self.acquire_at.is_none() {
            self.acquire_at = Some(now);
        }
    }

    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The election's wish.
    pub fn want(&mut self, now: Instant, wish: Wish) {
        if self.mode == Mode::Stopped {
            return;
        }
        if wish.stop {
            self.end_force(ForceEnd::MastershipEnded);
            self.mode = Mode::Stopped;
            self.clear_timers();
            self.release(wish.epoch, "stopping");
            return;
        }
        if wish.master {
            if self.mode == Mode::Master && wish.epoch == self.epoch {
                return;
            }
            self.end_force(ForceEnd::MastershipEnded);
            self.mode = Mode::Master;
            self.epoch = wish.epoch;
            self.clear_timers();
            self.reconciled = true;
            self.release_pending = None;
            self.start_mastership(now, &wish);
            if wish.settle.is_zero() {
                self.acquire(now);
            } else {
                self.acquire_at = Some(now + wish.settle);
            }
        } else {
            if self.mode == Mode::Backup {
                self.master_down_at(now, wish.master_down_at);
                return;
            }
            let first = self.mode == Mode::Idle;
            self.end_force(ForceEnd::MastershipEnded);
            self.mode = Mode::Backup;
            self.epoch = wish.epoch;
            self.clear_timers();
            self.release(
                wish.epoch,
                if first {
                    "start-up reconcile: not master"
                } else {
                    "not master"
                },
            );
            self.preprobe = None;
            self.master_down_at(now, wish.master_down_at);
        }
    }

    /// Announce every held IP again (a peer claimed the group).
    pub fn reannounce(&mut self) {
        if self.mode == Mode::Master {
            let held = self.held();
            if !held.is_empty() {
                self.ops.push(Op::Announce { ips: held });
            }
        }
    }

    fn clear_timers(&mut self) {
        self.acquire_at = None;
        self.reprobe_at = None;
        self.garp = None;
        self.refresh_at = None;
        self.probing = None;
        self.refresh_pending = false;
        self.preprobe_at = None;
        self.preprobe_deadline = None;
        self.quick_until = None;
        self.unconfirmed.clear();
        self.confirming = None;
    }

    /// Take the group: keep what is already ours on the NIC, probe the rest.
    fn acquire(&mut self, now: Instant) {
        self.acquire_at = None;
        let mut keep = Vec::new();
        let mut probe = Vec::new();
        for (ip, s) in &mut self.slots {
            if s.state == IpState::Held {
                continue;
            }
            match s.seen {
                // Ours, or (hook) any address already there: nothing to take.
                Some(seen) if seen.ours || self.policy.lease.is_none() => {
                    s.state = IpState::Held;
                    keep.push(*ip);
                }
                _ => probe.push(*ip),
            }
        }
        if !keep.is_empty() && self.policy.lease.is_some() {
            self.ops.push(Op::Note(Note::Adopted { ips: keep.clone() }));
            // Their leases were set by an earlier run: renew them now.
            self.refresh_pending = true;
            self.read();
        }
        self.announce(now, keep);
        self.schedule_refresh(now);
        if !self.use_preprobe(now, &probe) {
            self.take(now, probe);
        }
    }

    /// First announcement of `ips` now, the repeats on the timer.
    fn announce(&mut self, now: Instant, ips: Vec<IpAddr>) {
        if ips.is_empty() {
            return;
        }
        self.ops.push(Op::Announce { ips });
        if self.policy.garp_count > 1 {
            self.garp = Some((now + self.policy.garp_interval, self.policy.garp_count - 1));
        }
    }

    /// Probe `ips` (or add them straight away without probing).
    fn take(&mut self, now: Instant, ips: Vec<IpAddr>) {
        if ips.is_empty() {
            return;
        }
        // Forced: the operator confirmed the other host is a zombie.
        if !self.policy.probe || self.force.is_some() {
            let nets = self.nets(&ips);
            self.ops.push(Op::Add { nets });
            return;
        }
        // One probe at a time: a newer one replaces the token, so the old
        // answer is ignored and its IPs are probed again here.
        let mut all = ips;
        if self.probing.is_some() {
            all.extend(self.in_state(|s| *s == IpState::Probing));
            all.sort();
            all.dedup();
        }
        for ip in &all {
            if let Some(s) = self.slots.get_mut(ip) {
                s.state = IpState::Probing;
            }
        }
        self.next_token += 1;
        self.probing = Some(self.next_token);
        let timeout = self.probe_timeout(now);
        self.probe_was_quick = timeout < self.policy.probe_timeout;
        self.ops.push(Op::Probe {
            token: self.next_token,
            ips: all,
            timeout,
        });
    }

    fn nets(&self, ips: &[IpAddr]) -> Vec<IpNet> {
        ips.iter()
            .filter_map(|ip| self.slots.get(ip).map(|s| s.net))
            .collect()
    }

    /// The probe with `token` finished: `answered` maps each IP that
    /// somebody answered for to who it was. `Err`: the probe could not be
    /// done, which proves nothing (never take an IP on it).
    pub fn probed(
        &mut self,
        now: Instant,
        token: u64,
        result: Result<BTreeMap<IpAddr, String>, String>,
    ) {
        if self.preprobed(now, token, &result) {
            return;
        }
        if self.probing != Some(token) {
            return; // superseded or the wish changed meanwhile
        }
        self.probing = None;
        if self.mode != Mode::Master {
            return;
        }
        let probed = self.in_state(|s| *s == IpState::Probing);
        let mut free = Vec::new();
        let mut busy = false;
        for ip in probed {
            let Some(s) = self.slots.get_mut(&ip) else {
                continue;
            };
            match &result {
                Err(e) => {
                    s.state = IpState::Failed(format!("probe failed: {e}"));
                    busy = true;
                }
                Ok(answered) => match answered.get(&ip) {
                    Some(who) => {
                        s.state = IpState::Conflict(who.clone());
                        busy = true;
                    }
                    None => free.push(s.net),
                },
            }
        }
        if !free.is_empty() {
            if std::mem::take(&mut self.probe_was_quick) {
                // Added on a quick probe: a full look follows (handover.rs).
                self.unconfirmed.extend(free.iter().map(|n| n.addr));
            }
            self.ops.push(Op::Add { nets: free });
        }
        if busy && self.policy.reprobe {
            if self.reprobe_at.is_none() {
                self.reprobe_at = Some(now + self.reprobe_after(now));
            }
        } else if !busy {
            self.reprobe_delay = FIRST_REPROBE.min(self.policy.reprobe_interval);
        }
    }

    /// Results of an [`Op::Add`]: `Ok(())` means the address is on the NIC.
    pub fn added(&mut self, now: Instant, results: Vec<(IpNet, Result<(), String>)>) {
        let mut announce = Vec::new();
        let mut undo = Vec::new();
        for (net, r) in results {
            let Some(s) = self.slots.get_mut(&net.addr) else {
                undo.extend(r.is_ok().then_some(net));
                continue;
            };
            if self.mode != Mode::Master {
                // No longer wanted (cannot happen with a driver that feeds
                // results before the next wish, but never leave it behind).
                undo.extend(r.is_ok().then_some(net));
                continue;
            }
            match r {
                Ok(()) => {
                    s.state = IpState::Held;
                    s.seen = Some(Seen {
                        addr: net.addr,
                        prefix: net.prefix,
                        ours: true,
                        valid_left: self.policy.lease.map(|l| l.secs),
                    });
                    s.lost_by = None;
                    s.lease_end = self.policy.lease.map(|l| now + secs(l));
                    announce.push(net.addr);
                }
                Err(e) => s.state = IpState::Failed(e),
            }
        }
        if !undo.is_empty() {
            self.ops.push(Op::Remove {
                nets: undo,
                why: "added after the wish changed",
            });
        }
        self.announce(now, announce);
        self.confirm();
        if self.mode == Mode::Master
            && self.policy.reprobe
            && self.reprobe_at.is_none()
            && !self
                .in_state(|s| matches!(s, IpState::Failed(_)))
                .is_empty()
        {
            self.reprobe_at = Some(now + self.reprobe_delay);
        }
    }

    /// Results of an [`Op::Remove`].
    pub fn removed(&mut self, results: Vec<(IpNet, Result<(), String>)>) {
        for (net, r) in results {
            if let Some(s) = self.slots.get_mut(&net.addr) {
                match r {
                    Ok(()) => {
                        // An undone forced takeover leaves a conflict to re-probe.
                        if !matches!(s.state, IpState::Conflict(_)) {
                            s.state = IpState::Absent;
                        }
                        s.seen = None;
                    }
                    Err(e) => s.state = IpState::Failed(e),
                }
            }
        }
        if let Some(epoch) = self.release_pending.take() {
            self.ops.push(Op::Released { epoch });
        }
    }

    /// Results of an [`Op::Refresh`]; `Err` for each one not refreshed.
    pub fn refreshed(&mut self, now: Instant, results: Vec<(IpNet, Result<(), String>)>) {
        let mut lost = false;
        let lease = self.policy.lease;
        for (net, r) in results {
            let Some(s) = self.slots.get_mut(&net.addr) else {
                continue;
            };
            if r.is_ok() {
                s.lease_end = lease.map(|l| now + secs(l));
                continue;
            }
            {
                // Unknown state: read the interface again before anything.
                s.lost_by = s.lost_by.or(Some(u32::MAX));
                s.state = IpState::Absent;
                lost = true;
            }
        }
        if lost {
            self.read();
        }
    }

    /// The interface's addresses, as just read ([`Op::ReadAddrs`]).
    pub fn observed(&mut self, now: Instant, addrs: &[Seen]) {
        self.reading = false;
        for (ip, s) in &mut self.slots {
            s.seen = addrs.iter().find(|a| a.addr == *ip).copied();
        }
        match self.mode {
            Mode::Master => self.check_held(now),
            Mode::Idle | Mode::Backup | Mode::Stopped => {
                for s in self.slots.values_mut() {
                    s.lost_by = None;
                }
            }
        }
    }

    /// After a read as master: held IPs that are gone are taken again;
    /// the others get their lease renewed if a refresh is due.
    fn check_held(&mut self, now: Instant) {
        let mut lost = Vec::new();
        let mut renew = Vec::new();
        let mut expiring = Vec::new();
        let leased = self.policy.lease.is_some();
        let refresh = std::mem::take(&mut self.refresh_pending);
        for (ip, s) in &mut self.slots {
            let by = s.lost_by.take();
            // Held, or held until an event said it went (not yet confirmed).
            if s.state != IpState::Held && by.is_none() {
                continue;
            }
            if s.state == IpState::Absent && s.seen.is_some() {
                s.state = IpState::Held; // a stale event: it is still there
            }
            match s.seen {
                None => {
                    s.state = IpState::Absent;
                    // No event named a remover yet, but our lease is over:
                    // the kernel removed it (we were frozen or starved).
                    let expired = s.lease_end.is_some_and(|end| end <= now);
                    let by = by.filter(|b| *b != u32::MAX).or(expired.then_some(0));
                    self.ops.push(Op::Note(Note::Lost { ip: *ip, by }));
                    lost.push(*ip);
                }
                Some(seen) if leased && refresh => match seen.valid_left {
                    Some(left) if left < MIN_LEFT_TO_REFRESH => {
                        self.ops
                            .push(Op::Note(Note::LeaseRunningOut { ip: *ip, left }));
                        expiring.push(entry(&seen));
                        s.state = IpState::Absent;
                        lost.push(*ip);
                    }
                    _ => renew.push(s.net),
                },
                Some(_) => {}
            }
        }
        if !expiring.is_empty() {
            self.ops.push(Op::Remove {
                nets: expiring,
                why: "lease too close to its end to renew",
            });
        }
        if !renew.is_empty() {
            self.ops.push(Op::Refresh {
                nets: renew,
                not_after: now + REFRESH_FRESH_FOR,
            });
        }
        self.take(now, lost);
    }

    /// A read ([`Op::ReadAddrs`]) could not be done: nothing is learnt;
    /// the next timer or event asks again.
    pub fn observed_failed(&mut self) {
        self.reading = false;
    }

    /// An address event from the kernel for the group's interface. Events
    /// only prompt a read of the interface: the read is the truth (events
    /// can be stale, e.g. our own earlier removal arriving late).
    pub fn addr_event(&mut self, added: bool, seen: Seen, by: u32) {
        let Some(s) = self.slots.get_mut(&seen.addr) else {
            return;
        };
        s.seen = added.then_some(seen);
        if !added && s.state == IpState::Held {
            // Not held until a read says otherwise: status never calls a
            // missing IP held.
            s.state = IpState::Absent;
            s.lost_by = Some(by);
            self.read();
        }
    }

    /// The driver missed events (channel overflow): read everything again.
    pub fn resync(&mut self) {
        self.read();
    }

    fn read(&mut self) {
        if !self.reading {
            self.reading = true;
            self.ops.push(Op::ReadAddrs);
        }
    }

    fn schedule_refresh(&mut self, now: Instant) {
        if let Some(lease) = self.policy.lease {
            self.refresh_at = Some(now + lease.refresh_every);
        }
    }

    /// Timers: settle over, re-probe due, announcement repeat, refresh.
    pub fn timeout(&mut self, now: Instant) {
        if self.acquire_at.is_some_and(|t| t <= now) {
            self.acquire(now);
        }
        if self.mode == Mode::Backup && self.preprobe_at.is_some_and(|t| t <= now) {
            self.start_preprobe();
        }
        if self.mode != Mode::Master {
            return;
        }
        if self.reprobe_at.is_some_and(|t| t <= now) {
            self.reprobe_at = None;
            let again = self.in_state(|s| matches!(s, IpState::Conflict(_) | IpState::Failed(_)));
            if !self.quick(now) {
                self.reprobe_delay = (self.reprobe_delay * 2).min(self.policy.reprobe_interval);
            }
            self.take(now, again);
        }
        if let Some((at, left)) = self.garp {
            if at <= now {
                let held = self.held();
                if !held.is_empty() {
                    self.ops.push(Op::Announce { ips: held });
                }
                self.garp = (left > 1).then_some((now + self.policy.garp_interval, left - 1));
            }
        }
        self.defend_due(now);
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.schedule_refresh(now);
            if !self.held().is_empty() {
                self.refresh_pending = true;
                self.read();
            }
        }
    }

    /// Remove what must go; [`Op::Released`] follows the removal.
    fn release(&mut self, epoch: u64, why: &'static str) {
        let startup = !self.reconciled && self.policy.startup_only_ours;
        self.reconciled = true;
        let mut nets = Vec::new();
        for (ip, s) in &mut self.slots {
            let held = s.state == IpState::Held;
            s.state = IpState::Absent;
            match s.seen {
                Some(seen) if startup && !seen.ours => {
                    self.ops.push(Op::Note(Note::NotOurs { ip: *ip }));
                }
                Some(seen) => nets.push(entry(&seen)),
                // Not seen on the NIC: remove it anyway if we thought we
                // held it (idempotent), never leave it behind.
                None if held => nets.push(s.net),
                None => {}
            }
        }
        if nets.is_empty() {
            self.ops.push(Op::Released { epoch });
        } else {
            self.release_pending = Some(epoch);
            self.ops.push(Op::Remove { nets, why });
        }
    }
}

fn secs(lease: Lease) -> Duration {
    Duration::from_secs(u64::from(lease.secs))
}

/// The exact entry an address has on the NIC (its prefix there).
fn entry(seen: &Seen) -> IpNet {
    IpNet {
        addr: seen.addr,
        prefix: seen.prefix,
    }
}

mod force;
mod handover;
pub use force::{ForceEnd, ForceRefused, ForceView, DEFEND_EVERY, SILENT_ROUNDS};
pub use handover::{PREPROBE_FRESH, QUICK_PROBE, QUICK_REPROBE, QUICK_WINDOW};

#[cfg(test)]
mod tests;
