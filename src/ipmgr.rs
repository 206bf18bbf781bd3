//! The daemon's per-group IP task: carries out what the IP planner
//! (`ipplan`, shared with `ipfail hook`) decides, with netlink and the
//! probe, and feeds the results back. All decisions live in the planner;
//! this file only moves bytes, timers and events.
//!
//! Inputs: the election's wish (a `watch`, so a newer wish replaces an
//! older one and the election never waits for address work), reloads of
//! the address list, address events from the kernel (RTNLGRP_*_IFADDR),
//! the planner's timers, and the probe running beside them. A probe in
//! flight never delays a release: its answer is simply ignored when the
//! wish changed (stale token).
//!
//! After handling a "not master" wish the task reports the wish's epoch on
//! its `released` channel, so the daemon sends a bow-out or demotion
//! advert only once the addresses are really gone (peers must find them
//! silent; docs/safety.md).

use crate::config::IpNet;
use crate::ipplan::{Lease, Note, Op, Planner, Policy, Wish};
use crate::ipwork::{self, seen, Nic};
use crate::sys::linux::{AddrChange, ArpSocket, Lifetime, NetEvent, NetListener, Netlink};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use crate::ipplan::IpState;

/// What the election wants from this group's addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// The election has seen the group's links once. Until then the task
    /// only reads the interface: its first wish decides between the
    /// start-up reconcile and resuming on our own leased IPs.
    pub started: bool,
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

/// What `ipfail status` shows of the group's addresses.
#[derive(Clone, Debug, Default)]
pub struct GroupIpStatus {
    pub ips: BTreeMap<IpAddr, IpState>,
    pub garps_sent: u64,
    pub conflicts: u64,
    /// Held IPs that disappeared from the interface (removed by someone,
    /// or a lease that ran out).
    pub lost: u64,
    /// The last such event in words, and when.
    pub last_event: Option<(String, SystemTime)>,
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
    /// The kernel lease: follows advbase/advskew, which a reload changes
    /// in place (docs/safety.md §4).
    pub lease: Lease,
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
    /// The kernel lease of the addresses (from the group's CARP timers).
    pub lease: Lease,
    pub netlink: Netlink,
    pub events: NetListener,
    pub arp: Arc<ArpSocket>,
    pub status: Arc<Mutex<GroupIpStatus>>,
}

/// The daemon's planner policy: probe, keep re-probing, leased addresses,
/// start-up reconcile of our own marks only.
pub fn daemon_policy(timing: &IpTiming, lease: Lease) -> Policy {
    Policy {
        probe: true,
        reprobe: true,
        reprobe_interval: timing.reprobe_interval,
        lease: Some(lease),
        garp_count: timing.garp_count,
        garp_interval: timing.garp_interval,
        startup_only_ours: true,
    }
}

type ProbeFuture =
    Pin<Box<dyn Future<Output = (u64, Result<BTreeMap<IpAddr, String>, String>)> + Send>>;

/// The per-group task. Ends after a `stop` wish, once the IPs are removed.
pub async fn run(g: GroupIps, mut desired: watch::Receiver<Desired>, links: TaskLinks) {
    let TaskLinks { mut plan, released } = links;
    let mut plan_open = true;
    let mut events_open = true;
    let mut t = Task {
        planner: Planner::new(&g.ips, daemon_policy(&g.timing, g.lease)),
        timing: g.timing,
        conflicts: BTreeMap::new(),
        g,
    };
    // The probe in flight (outside `Task`: a future is Send but not Sync).
    let mut probe: Option<ProbeFuture> = None;
    // What is on the interface before the first wish: the start-up
    // reconcile and adoption of our own leased IPs depend on it.
    t.read().await;
    let mut announce_seen = 0;
    loop {
        let want = *desired.borrow_and_update();
        let now = Instant::now().into_std();
        if want.started || want.stop {
            t.planner.want(
                now,
                Wish {
                    master: want.master,
                    epoch: want.epoch,
                    settle: want.settle,
                    stop: want.stop,
                },
            );
        }
        if want.announce != announce_seen {
            announce_seen = want.announce;
            t.planner.reannounce();
        }
        t.run_ops(&released, &mut probe).await;
        if want.stop {
            return;
        }
        let deadline = t.planner.next_deadline().map(Instant::from_std);
        tokio::select! {
            r = desired.changed() => {
                if r.is_err() {
                    // The daemon is gone without a stop wish: leave nothing behind.
                    t.planner.want(Instant::now().into_std(), Wish { stop: true, ..Wish::default() });
                    t.run_ops(&released, &mut probe).await;
                    return;
                }
            }
            r = plan.changed(), if plan_open => match r {
                Ok(()) => {
                    let new = plan.borrow_and_update().clone();
                    t.replan(new);
                }
                Err(_) => plan_open = false,
            },
            (token, result) = async { probe.as_mut().expect("guarded by the select condition").await }, if probe.is_some() => {
                probe = None;
                t.probed(token, result);
            }
            ev = t.g.events.next(), if events_open => match ev {
                Some(NetEvent::Addr { added, info, by }) if info.ifindex == t.g.ifindex => {
                    t.planner.addr_event(added, seen(&info), by);
                }
                Some(NetEvent::Overrun) => t.planner.resync(),
                Some(NetEvent::Link(_) | NetEvent::LinkGone { .. } | NetEvent::Addr { .. }) => {}
                Some(NetEvent::Closed) | None => {
                    error!(group = %t.g.group, "address events stopped: a removed IP is noticed only at the next lease refresh");
                    events_open = false;
                }
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                t.planner.timeout(Instant::now().into_std());
            }
        }
    }
}

struct Task {
    g: GroupIps,
    planner: Planner,
    timing: IpTiming,
    /// Who answered for each conflicting IP, as last logged: a conflict is
    /// logged when it starts or its answerer changes, not at every re-probe.
    conflicts: BTreeMap<IpAddr, String>,
}

impl Task {
    /// Carries out every op the planner has, feeding results back, then
    /// publishes the IPs' states.
    async fn run_ops(&mut self, released: &watch::Sender<u64>, probe: &mut Option<ProbeFuture>) {
        while let Some(op) = self.planner.poll_op() {
            match op {
                // A newer probe replaces the one in flight (its token is dead).
                Op::Probe { token, ips } => *probe = Some(self.probe(token, ips)),
                Op::Add { nets } => {
                    let lease = self
                        .planner
                        .policy()
                        .lease
                        .map_or(Lifetime::Forever, |l| Lifetime::Lease(l.secs));
                    let done = self.nic().add(&nets, lease).await;
                    let results = done
                        .into_iter()
                        .map(|(net, r)| (net, self.log_add(net, r)))
                        .collect();
                    self.planner.added(Instant::now().into_std(), results);
                }
                Op::Refresh { nets, not_after } => {
                    let mut results = Vec::new();
                    let lease = self.planner.policy().lease.map_or(0, |l| l.secs);
                    for net in nets {
                        // Frozen between the read and now: the read proves
                        // nothing any more (docs/safety.md, "Kernel leases").
                        let r = if std::time::Instant::now() > not_after {
                            Err("the read is too old to refresh on".to_string())
                        } else {
                            self.g
                                .netlink
                                .refresh_addr(
                                    self.g.ifindex,
                                    net.addr,
                                    net.prefix,
                                    Lifetime::Lease(lease),
                                )
                                .await
                                .map_err(|e| e.to_string())
                        };
                        if let Err(e) = &r {
                            warn!(group = %self.g.group, ip = %net, "lease not renewed: {e}");
                        }
                        results.push((net, r));
                    }
                    self.planner.refreshed(Instant::now().into_std(), results);
                }
                Op::Remove { nets, why } => {
                    let done = self.nic().remove(&nets).await;
                    let g = &self.g;
                    let results = done
                        .into_iter()
                        .map(|(net, r)| {
                            let r = match r {
                                Ok(AddrChange::Done) => {
                                    info!(group = %g.group, ip = %net, dev = %g.ifname, "removed ({why})");
                                    Ok(())
                                }
                                Ok(AddrChange::AlreadyDone) => Ok(()),
                                Err(e) => {
                                    warn!(group = %g.group, ip = %net, dev = %g.ifname, "could not remove: {e}");
                                    Err(e.to_string())
                                }
                            };
                            (net, r)
                        })
                        .collect();
                    self.planner.removed(results);
                }
                Op::Announce { ips } => self.announce(&ips).await,
                Op::ReadAddrs => self.read().await,
                Op::Released { epoch } => {
                    released.send_if_modified(|e| {
                        let newer = *e < epoch;
                        if newer {
                            *e = epoch;
                        }
                        newer
                    });
                }
                Op::Note(note) => self.note(note),
            }
        }
        if let Ok(mut s) = self.g.status.lock() {
            s.ips = self.planner.states();
        }
    }

    fn log_add(
        &self,
        net: IpNet,
        r: Result<AddrChange, crate::sys::SysError>,
    ) -> Result<(), String> {
        let g = &self.g;
        match r {
            Ok(change) => {
                let note = match change {
                    AddrChange::Done => "added",
                    AddrChange::AlreadyDone => "already present",
                };
                info!(group = %g.group, ip = %net, dev = %g.ifname, "{note}");
                Ok(())
            }
            Err(e) => {
                warn!(group = %g.group, ip = %net, dev = %g.ifname, "could not add: {e}");
                Err(e.to_string())
            }
        }
    }

    fn probe(&self, token: u64, ips: Vec<IpAddr>) -> ProbeFuture {
        let arp = self.g.arp.clone();
        let ifname = self.g.ifname.clone();
        let ifindex = self.g.ifindex;
        let timeout = self.timing.probe_timeout;
        Box::pin(async move {
            let result = ipwork::probe(&arp, &ifname, ifindex, &ips, timeout).await;
            (token, result)
        })
    }

    fn nic(&self) -> Nic<'_> {
        Nic {
            netlink: &self.g.netlink,
            ifindex: self.g.ifindex,
            ifname: &self.g.ifname,
            mac: Some(self.g.mac),
        }
    }

    fn probed(&mut self, token: u64, result: Result<BTreeMap<IpAddr, String>, String>) {
        match &result {
            Ok(answered) => {
                self.conflicts.retain(|ip, _| answered.contains_key(ip));
                for (ip, who) in answered {
                    if self.conflicts.get(ip) != Some(who) {
                        warn!(group = %self.g.group, %ip, "conflict: {who}; not adding, will re-probe");
                        self.conflicts.insert(*ip, who.clone());
                    }
                }
                if let Ok(mut s) = self.g.status.lock() {
                    s.conflicts += answered.len() as u64;
                }
            }
            Err(e) => warn!(group = %self.g.group, "probe failed: {e}; not adding, will retry"),
        }
        self.planner
            .probed(Instant::now().into_std(), token, result);
    }

    /// Reads the interface's addresses into the planner.
    async fn read(&mut self) {
        match self.nic().read().await {
            Ok(seen) => self.planner.observed(Instant::now().into_std(), &seen),
            Err(e) => {
                // Nothing learnt; the planner asks again at its next step.
                warn!(group = %self.g.group, dev = %self.g.ifname, "cannot read the addresses: {e}");
                self.planner.observed_failed();
            }
        }
    }

    fn replan(&mut self, plan: IpPlan) {
        let now = Instant::now().into_std();
        if plan.timing != self.timing || plan.lease != self.g.lease {
            // A new lease applies from the next refresh, which comes
            // within the old period (docs/safety.md §4).
            self.timing = plan.timing;
            self.g.lease = plan.lease;
            self.planner
                .set_policy(daemon_policy(&self.timing, plan.lease));
        }
        info!(group = %self.g.group, ips = plan.ips.len(), "address list reloaded");
        self.planner.set_ips(now, &plan.ips);
    }

    /// One round of announcements (gratuitous ARP, unsolicited NA).
    async fn announce(&self, ips: &[IpAddr]) {
        let mut sent = 0;
        for (ip, r) in self.nic().announce(&self.g.arp, ips).await {
            match r {
                Ok(()) => sent += 1,
                Err(e) => warn!(group = %self.g.group, ip = %ip, "announcement failed: {e}"),
            }
        }
        if let Ok(mut s) = self.g.status.lock() {
            s.garps_sent += sent;
        }
    }

    fn note(&self, note: Note) {
        let g = &self.g;
        match note {
            Note::Lost { ip, by } => {
                let who = match by {
                    None => "by an unknown cause".to_string(),
                    Some(0) => {
                        "by the kernel: its lease ran out (was this daemon frozen or starved?)"
                            .to_string()
                    }
                    Some(port) => format!(
                        "by netlink port {port} (usually the PID of the tool, e.g. `ip addr del`)"
                    ),
                };
                let text = format!(
                    "{ip} disappeared from {} {who}; taking it back after a probe",
                    g.ifname
                );
                warn!(group = %g.group, %ip, "{text}");
                if let Ok(mut s) = g.status.lock() {
                    s.lost += 1;
                    s.last_event = Some((text, SystemTime::now()));
                }
            }
            Note::LeaseRunningOut { ip, left } => warn!(group = %g.group, %ip,
                "lease has only {left} s left (this daemon was stalled): removing it and taking it again after a probe"),
            Note::Adopted { ips } => info!(group = %g.group, count = ips.len(),
                "kept our own leased IPs found on {} (restart): renewing their leases", g.ifname),
            Note::NotOurs { ip } => warn!(group = %g.group, %ip,
                "is on {} without ipfail's mark: not ours, left alone", g.ifname),
        }
    }
}
