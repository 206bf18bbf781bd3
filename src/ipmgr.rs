//! Moves one group's floating IPs on and off its interface.
//!
//! One task per group follows a *desired* state that the election loop sets
//! (a `watch` channel, so a newer wish always replaces an older one and the
//! election never waits for address work):
//! - master: probe every IP concurrently under one deadline, add the silent
//!   ones, announce each with gratuitous ARP (repeated), and keep re-probing
//!   the ones that answered until they fall silent (DESIGN.md §3), after
//!   50 ms first, then at doubling intervals up to `reprobe_interval`;
//! - not master: remove every IP of the group at once.
//!
//! A probe in flight is abandoned as soon as the wish changes, so a release
//! never waits for a probe and an acquire that lost mastership adds nothing.
//!
//! A reload replaces the group's [`IpPlan`] (addresses and timing) without
//! touching the election: the master probes, adds and announces new
//! addresses and removes dropped ones; a backup removes both if present.
//! After handling a "not master" wish the task reports the wish's epoch on
//! its `released` channel, so the daemon can send a bow-out advert only
//! once the addresses are really gone (peers must find them silent).

use crate::config::IpNet;
use crate::probe::{probe_all, Responder};
use crate::sys::linux::{announce_v6, AddrChange, ArpSocket, Netlink};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

/// First re-probe of a conflicting IP after taking a group.
const FIRST_REPROBE: Duration = Duration::from_millis(50);

/// What the election wants from this group's addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub master: bool,
    /// Bumped on every new mastership, so a stale probe result is recognised.
    pub epoch: u64,
    /// Bumped when the master must announce its IPs again.
    pub announce: u64,
    /// Remove everything and end the task.
    pub stop: bool,
    /// Wait this long before probing a new mastership: the previous master
    /// is alive and releasing (preemption).
    pub settle: Duration,
}

/// Where one IP stands on this host, for logs and `ipfail status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpState {
    Absent,
    Probing,
    Held,
    Conflict(String),
    Failed(String),
}

#[derive(Clone, Debug, Default)]
pub struct GroupIpStatus {
    pub ips: BTreeMap<IpAddr, IpState>,
    pub garps_sent: u64,
    pub conflicts: u64,
}

/// Timing knobs from the `[ipfail]` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpTiming {
    pub probe_timeout: Duration,
    pub garp_count: u32,
    pub garp_interval: Duration,
    pub reprobe_interval: Duration,
}

/// What a reload may change without restarting the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPlan {
    pub ips: Vec<IpNet>,
    pub timing: IpTiming,
}

/// The task's channels besides the wish: plan updates in, release reports out.
pub struct TaskLinks {
    pub plan: watch::Receiver<IpPlan>,
    /// The epoch of the last "not master" wish fully handled (IPs removed).
    pub released: watch::Sender<u64>,
}

/// Everything the task needs about its group.
pub struct GroupIps {
    pub group: String,
    pub ifname: String,
    pub ifindex: u32,
    /// MAC of `ifname`, announced as the owner of IPv6 addresses.
    pub mac: [u8; 6],
    pub ips: Vec<IpNet>,
    pub timing: IpTiming,
    pub netlink: Netlink,
    pub arp: Arc<ArpSocket>,
    pub status: Arc<Mutex<GroupIpStatus>>,
}

impl GroupIps {
    fn set(&self, ip: IpAddr, state: IpState) {
        if let Ok(mut s) = self.status.lock() {
            s.ips.insert(ip, state);
        }
    }

    fn count_conflict(&self) {
        if let Ok(mut s) = self.status.lock() {
            s.conflicts += 1;
        }
    }

    /// Remove every IP of the group; absent ones are fine (idempotent).
    pub async fn remove_all(&self, why: &str) {
        self.remove(&self.ips, why).await;
    }

    /// Remove `nets` from the interface; absent ones are fine (idempotent).
    async fn remove(&self, nets: &[IpNet], why: &str) {
        for net in nets {
            match self
                .netlink
                .del_addr(self.ifindex, net.addr, net.prefix)
                .await
            {
                Ok(AddrChange::Done) => {
                    info!(group = %self.group, ip = %net, dev = %self.ifname, "removed ({why})");
                    self.set(net.addr, IpState::Absent);
                }
                Ok(AddrChange::AlreadyDone) => self.set(net.addr, IpState::Absent),
                Err(e) => {
                    warn!(group = %self.group, ip = %net, dev = %self.ifname, "could not remove: {e}");
                    self.set(net.addr, IpState::Failed(e.to_string()));
                }
            }
        }
    }

    /// Probe `targets`, add the silent ones and announce them. Returns the
    /// ones that answered (to re-probe), or None if the wish changed meanwhile.
    async fn acquire(
        &self,
        targets: &[IpNet],
        desired: &mut watch::Receiver<Desired>,
        epoch: u64,
    ) -> Option<Vec<IpNet>> {
        for net in targets {
            self.set(net.addr, IpState::Probing);
        }
        let addrs: Vec<IpAddr> = targets.iter().map(|n| n.addr).collect();
        let outcomes = tokio::select! {
            o = probe_all(&self.arp, &self.ifname, self.ifindex, &addrs, self.timing.probe_timeout) => o,
            _ = desired.changed() => return None,
        };
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(e) => {
                // A failed probe proves nothing: never take an IP on it.
                warn!(group = %self.group, "probe failed: {e}; not adding, will retry");
                for net in targets {
                    self.set(net.addr, IpState::Failed(format!("probe failed: {e}")));
                }
                return Some(targets.to_vec());
            }
        };
        let now = *desired.borrow();
        if !now.master || now.epoch != epoch || now.stop {
            return None;
        }
        let answered: BTreeMap<IpAddr, Responder> = outcomes
            .into_iter()
            .filter_map(|o| o.responder.map(|r| (o.ip, r)))
            .collect();
        let mut conflicts = Vec::new();
        let mut added = Vec::new();
        for net in targets {
            if let Some(who) = answered.get(&net.addr) {
                warn!(group = %self.group, ip = %net, "conflict: {who}; not adding, will re-probe");
                self.set(net.addr, IpState::Conflict(who.to_string()));
                self.count_conflict();
                conflicts.push(*net);
                continue;
            }
            match self
                .netlink
                .add_addr(
                    self.ifindex,
                    net.addr,
                    net.prefix,
                    crate::sys::Lifetime::Forever,
                )
                .await
            {
                Ok(change) => {
                    let note = match change {
                        AddrChange::Done => "added",
                        AddrChange::AlreadyDone => "already present",
                    };
                    info!(group = %self.group, ip = %net, dev = %self.ifname, "{note}");
                    self.set(net.addr, IpState::Held);
                    added.push(net.addr);
                }
                Err(e) => {
                    warn!(group = %self.group, ip = %net, dev = %self.ifname, "could not add: {e}");
                    self.set(net.addr, IpState::Failed(e.to_string()));
                }
            }
        }
        self.announce(&added).await;
        Some(conflicts)
    }

    /// One round of announcements for `ips`: gratuitous ARP for IPv4, an
    /// unsolicited neighbour advertisement for IPv6 (RFC 4861 §7.2.6).
    async fn announce(&self, ips: &[IpAddr]) {
        let mut sent = 0;
        for ip in ips {
            let result = match ip {
                IpAddr::V4(v4) => self.arp.announce(*v4).await,
                IpAddr::V6(v6) => announce_v6(&self.ifname, *v6, self.mac).await,
            };
            match result {
                Ok(()) => sent += 1,
                Err(e) => warn!(group = %self.group, ip = %ip, "announcement failed: {e}"),
            }
        }
        if let Ok(mut s) = self.status.lock() {
            s.garps_sent += sent;
        }
    }

    /// Switches to `plan`: addresses dropped from the group leave the
    /// interface (whatever our role) and the status; returns the added ones,
    /// which the caller acquires (master) or makes sure are absent (backup).
    async fn replan(&mut self, plan: IpPlan) -> Vec<IpNet> {
        let old: BTreeSet<IpNet> = self.ips.iter().copied().collect();
        let new: BTreeSet<IpNet> = plan.ips.iter().copied().collect();
        let dropped: Vec<IpNet> = old.difference(&new).copied().collect();
        let added: Vec<IpNet> = new.difference(&old).copied().collect();
        self.timing = plan.timing;
        self.ips = plan.ips;
        if !dropped.is_empty() || !added.is_empty() {
            info!(group = %self.group, added = added.len(), dropped = dropped.len(), "address list changed by reload");
        }
        self.remove(&dropped, "dropped from the group by reload")
            .await;
        let kept: BTreeSet<IpAddr> = new.iter().map(|n| n.addr).collect();
        if let Ok(mut s) = self.status.lock() {
            s.ips.retain(|ip, _| kept.contains(ip));
        }
        for net in &added {
            self.set(net.addr, IpState::Absent);
        }
        added
    }

    fn held(&self) -> Vec<IpAddr> {
        self.status
            .lock()
            .map(|s| {
                s.ips
                    .iter()
                    .filter(|(_, st)| **st == IpState::Held)
                    .map(|(ip, _)| *ip)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The per-group task. Ends after a `stop` wish, once the IPs are removed.
pub async fn run(mut g: GroupIps, mut desired: watch::Receiver<Desired>, links: TaskLinks) {
    let TaskLinks { mut plan, released } = links;
    let mut plan_open = true;
    for net in &g.ips {
        g.set(net.addr, IpState::Absent);
    }
    let mut seen = Desired::default();
    let mut pending: Vec<IpNet> = Vec::new();
    let mut reprobe_at: Option<Instant> = None;
    // Conflicts right after taking over are often the old master that has
    // not removed its IPs yet (it does within milliseconds of our advert), so
    // the first re-probe is quick and the next ones back off to the
    // configured interval.
    let mut reprobe_delay = FIRST_REPROBE;
    // Repeats of the gratuitous ARP after the first one: (time, round left, epoch).
    let mut garp_repeat: Option<(Instant, u32, u64)> = None;
    loop {
        let want = *desired.borrow_and_update();
        if want.stop {
            g.remove_all("stopping").await;
            return;
        }
        if want.master && (want.epoch != seen.epoch || !seen.master) {
            pending.clear();
            reprobe_at = None;
            if !want.settle.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(want.settle) => {}
                    // A newer wish: look again from the top.
                    _ = desired.changed() => continue,
                }
            }
            match g.acquire(&g.ips, &mut desired, want.epoch).await {
                None => continue, // the wish changed while probing: look again
                Some(conflicts) => {
                    reprobe_delay = FIRST_REPROBE.min(g.timing.reprobe_interval);
                    if !conflicts.is_empty() {
                        reprobe_at = Some(Instant::now() + reprobe_delay);
                    }
                    pending = conflicts;
                    if g.timing.garp_count > 1 {
                        garp_repeat = Some((
                            Instant::now() + g.timing.garp_interval,
                            g.timing.garp_count - 1,
                            want.epoch,
                        ));
                    }
                }
            }
        } else if !want.master && (seen.master || seen == Desired::default()) {
            pending.clear();
            reprobe_at = None;
            garp_repeat = None;
            let first = seen == Desired::default();
            g.remove_all(if first {
                "start-up reconcile: not master"
            } else {
                "not master"
            })
            .await;
        } else if want.master && want.announce != seen.announce {
            let held = g.held();
            info!(group = %g.group, count = held.len(), "re-announcing");
            g.announce(&held).await;
        }
        if !want.master {
            released.send_if_modified(|e| {
                let newer = *e < want.epoch;
                if newer {
                    *e = want.epoch;
                }
                newer
            });
        }
        seen = want;

        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            r = desired.changed() => {
                if r.is_err() {
                    // The daemon is gone without a stop wish: leave nothing behind.
                    g.remove_all("daemon loop ended").await;
                    return;
                }
            }
            r = plan.changed(), if plan_open => match r {
                Ok(()) => {
                    let new = plan.borrow_and_update().clone();
                    let added = g.replan(new).await;
                    pending.retain(|n| g.ips.contains(n));
                    if pending.is_empty() {
                        reprobe_at = None;
                    }
                    if added.is_empty() {
                        continue;
                    }
                    if !seen.master {
                        g.remove(&added, "not master").await;
                        continue;
                    }
                    match g.acquire(&added, &mut desired, seen.epoch).await {
                        Some(conflicts) => pending.extend(conflicts),
                        // The wish changed mid-probe: retry them right away
                        // unless the top of the loop releases everything.
                        None => pending.extend(added),
                    }
                    if !pending.is_empty() && reprobe_at.is_none() {
                        reprobe_delay = FIRST_REPROBE.min(g.timing.reprobe_interval);
                        reprobe_at = Some(Instant::now() + reprobe_delay);
                    }
                    if g.timing.garp_count > 1 {
                        garp_repeat = Some((
                            Instant::now() + g.timing.garp_interval,
                            g.timing.garp_count - 1,
                            seen.epoch,
                        ));
                    }
                }
                Err(_) => plan_open = false,
            },
            _ = sleep_until(reprobe_at.unwrap_or(far)), if reprobe_at.is_some() => {
                let targets = pending.clone();
                match g.acquire(&targets, &mut desired, seen.epoch).await {
                    Some(still) => {
                        reprobe_delay = (reprobe_delay * 2).min(g.timing.reprobe_interval);
                        reprobe_at = (!still.is_empty()).then(|| Instant::now() + reprobe_delay);
                        pending = still;
                    }
                    // The wish changed mid-probe: the top of the loop decides
                    // whether these are still wanted (a release clears them).
                    None => reprobe_at = Some(Instant::now()),
                }
            }
            _ = sleep_until(garp_repeat.map_or(far, |r| r.0)), if garp_repeat.is_some() => {
                if let Some((_, left, epoch)) = garp_repeat.take() {
                    if seen.master && epoch == seen.epoch {
                        g.announce(&g.held()).await;
                        if left > 1 {
                            garp_repeat = Some((Instant::now() + g.timing.garp_interval, left - 1, epoch));
                        }
                    }
                }
            }
        }
    }
}
