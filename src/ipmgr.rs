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
use crate::conflict::{Answerer, ConflictLine, ConflictLog};
use crate::ipplan::{ForceEnd, Lease, Note, Op, Planner, Policy, Wish, DEFEND_EVERY};
use crate::ipwork::{self, seen, Nic};
use crate::probe::Responder;
use crate::sys::linux::{AddrChange, ArpSocket, ArpView, Lifetime, NetEvent, NetListener, Netlink};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use crate::ipplan::IpState;

/// How long a name found for an answering MAC is trusted.
const IDENTITY_FOR: Duration = Duration::from_secs(60);

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
    /// The previous master handed over (bow-out, preempted): quick probes
    /// with a full look after (`ipplan/handover.rs`).
    pub handover: bool,
    /// BACKUP: when the master will be declared down unless it advertises;
    /// the probe runs during the end of that wait.
    pub master_down_at: Option<std::time::Instant>,
}

/// What `ipfail status` shows of the group's addresses.
#[derive(Clone, Debug, Default)]
pub struct GroupIpStatus {
    /// Probe verdicts per IP (`silent`, `answered`) and failed probes.
    pub probes: BTreeMap<&'static str, u64>,
    /// Where probe durations go (the group's histogram in the metrics'
    /// family, `metrics::probe_histogram_of`).
    pub probe_seconds: Option<prometheus_client::metrics::histogram::Histogram>,
    pub ips: BTreeMap<IpAddr, IpState>,
    pub garps_sent: u64,
    pub conflicts: u64,
    /// Held IPs that disappeared from the interface (removed by someone,
    /// or a lease that ran out).
    pub lost: u64,
    /// The last such event in words, and when.
    pub last_event: Option<(String, SystemTime)>,
    /// Who answers for each IP in conflict now, and since when.
    pub answers: BTreeMap<IpAddr, (Answerer, SystemTime)>,
    /// The operator's forced takeover, while it lasts.
    pub force: Option<ForceStatus>,
}

/// A forced takeover as `ipfail status` shows it.
#[derive(Clone, Debug)]
pub struct ForceStatus {
    pub since: SystemTime,
    /// Claimed by another host at the last look.
    pub contested: Vec<IpAddr>,
    pub last_claim: Option<SystemTime>,
    pub claims: u64,
}

/// An operator's request for the group's IPs (`ipfail takeover`); the
/// reply is the line for the operator, or why nothing was done.
pub struct IpCmd {
    pub undo: bool,
    pub reply: oneshot::Sender<Result<String, String>>,
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
    /// Operator requests (forced takeover).
    pub cmds: mpsc::Receiver<IpCmd>,
    /// Source addresses of the CARP speakers heard on the group's CARP
    /// interface, to name who answers for a conflicting IP.
    pub peers: watch::Receiver<Vec<IpAddr>>,
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
        probe_timeout: timing.probe_timeout,
        reprobe: true,
        reprobe_interval: timing.reprobe_interval,
        lease: Some(lease),
        garp_count: timing.garp_count,
        garp_interval: timing.garp_interval,
        startup_only_ours: true,
    }
}

type ProbeFuture =
    Pin<Box<dyn Future<Output = (u64, Result<BTreeMap<IpAddr, Responder>, String>)> + Send>>;
type IdentifyFuture = Pin<Box<dyn Future<Output = BTreeMap<[u8; 6], Answerer>> + Send>>;

/// Work in flight beside the loop (outside `Task`: a future is Send but
/// not Sync).
#[derive(Default)]
struct InFlight {
    probe: Option<ProbeFuture>,
    /// A forced master's look for claims.
    defend: Option<ProbeFuture>,
    /// Naming the hosts that answer for conflicting IPs.
    identify: Option<IdentifyFuture>,
}

/// Waits for `f` if there is one (the select guards make sure there is).
async fn next<T>(f: &mut Option<Pin<Box<dyn Future<Output = T> + Send>>>) -> T {
    match f.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// The per-group task. Ends after a `stop` wish, once the IPs are removed.
pub async fn run(g: GroupIps, mut desired: watch::Receiver<Desired>, links: TaskLinks) {
    let TaskLinks {
        mut plan,
        released,
        mut cmds,
        peers,
    } = links;
    let mut plan_open = true;
    let mut events_open = true;
    let mut cmds_open = true;
    let mut t = Task {
        planner: Planner::new(&g.ips, daemon_policy(&g.timing, g.lease)),
        timing: g.timing,
        conflict_log: ConflictLog::default(),
        answers: BTreeMap::new(),
        identities: BTreeMap::new(),
        peers,
        watcher: None,
        watch_failed: false,
        probe_sizes: BTreeMap::new(),
        g,
    };
    let mut work = InFlight::default();
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
                    handover: want.handover,
                    master_down_at: want.master_down_at,
                },
            );
        }
        if want.announce != announce_seen {
            announce_seen = want.announce;
            t.planner.reannounce();
        }
        t.run_ops(&released, &mut work).await;
        if want.stop {
            return;
        }
        t.watch_arp();
        let deadline = t.planner.next_deadline().map(Instant::from_std);
        tokio::select! {
            r = desired.changed() => {
                if r.is_err() {
                    // The daemon is gone without a stop wish: leave nothing behind.
                    t.planner.want(Instant::now().into_std(), Wish { stop: true, ..Wish::default() });
                    t.run_ops(&released, &mut work).await;
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
            (token, result) = next(&mut work.probe), if work.probe.is_some() => {
                work.probe = None;
                t.probed(token, result, &mut work);
            }
            (token, result) = next(&mut work.defend), if work.defend.is_some() => {
                work.defend = None;
                t.defended(token, result);
            }
            names = next(&mut work.identify), if work.identify.is_some() => {
                work.identify = None;
                let now = Instant::now();
                for (mac, who) in names {
                    t.identities.insert(mac, (who, now));
                }
                t.publish_answers();
            }
            cmd = cmds.recv(), if cmds_open => match cmd {
                Some(cmd) => t.command(cmd),
                None => cmds_open = false,
            },
            frame = watch_next(&t.watcher), if t.watcher.is_some() => match frame {
                Ok(view) => t.arp_frame(&view),
                Err(e) => {
                    warn!(group = %t.g.group, "watching ARP for the forced takeover stopped: {e}; still defending every {} s", DEFEND_EVERY.as_secs());
                    t.watcher = None;
                }
            },
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

/// The next foreign ARP frame of the forced takeover's watcher.
async fn watch_next(w: &Option<Arc<ArpSocket>>) -> Result<ArpView, crate::sys::SysError> {
    match w {
        Some(w) => w.next_foreign().await,
        None => std::future::pending().await,
    }
}

struct Task {
    g: GroupIps,
    planner: Planner,
    timing: IpTiming,
    /// One log line per group while IPs stay in conflict (rate-limited).
    conflict_log: ConflictLog,
    /// Who answered for each conflicting IP, and since when.
    answers: BTreeMap<IpAddr, (Responder, SystemTime)>,
    /// Names found for answering MACs (peer or address), and when.
    identities: BTreeMap<[u8; 6], (Answerer, Instant)>,
    peers: watch::Receiver<Vec<IpAddr>>,
    /// A socket of its own that watches ARP while a takeover is forced.
    watcher: Option<Arc<ArpSocket>>,
    /// It could not be opened for this force (not retried at every turn).
    watch_failed: bool,
    /// How many IPs each probe in flight asked about (for the metrics).
    probe_sizes: BTreeMap<u64, u64>,
}

impl Task {
    /// Carries out every op the planner has, feeding results back, then
    /// publishes the IPs' states.
    async fn run_ops(&mut self, released: &watch::Sender<u64>, work: &mut InFlight) {
        while let Some(op) = self.planner.poll_op() {
            match op {
                // A newer probe replaces the one in flight (its token is dead).
                Op::Probe {
                    token,
                    ips,
                    timeout,
                } => {
                    // Newer probes replace older ones: keep only the last few sizes.
                    if self.probe_sizes.len() > 8 {
                        self.probe_sizes.pop_first();
                    }
                    self.probe_sizes.insert(token, ips.len() as u64);
                    work.probe = Some(self.probe(token, ips, timeout, false));
                }
                Op::Defend { token, ips } => {
                    let timeout = self.timing.probe_timeout;
                    work.defend = Some(self.probe(token, ips, timeout, true));
                }
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
                            crate::warn_limited!({ group = %self.g.group, ip = %net, }, "lease not renewed: {e}");
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
                                    crate::warn_limited!({ group = %g.group, ip = %net, dev = %g.ifname, }, "could not remove: {e}");
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
            s.force = self.planner.force_view().map(|f| {
                let wall = |t: std::time::Instant| {
                    SystemTime::now() - std::time::Instant::now().saturating_duration_since(t)
                };
                ForceStatus {
                    since: wall(f.since),
                    contested: f.contested,
                    last_claim: f.last_claim.map(wall),
                    claims: f.claims,
                }
            });
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
                crate::warn_limited!({ group = %g.group, ip = %net, dev = %g.ifname, }, "could not add: {e}");
                Err(e.to_string())
            }
        }
    }

    /// The probe before taking IPs, or (`claims`) a forced master's look
    /// for hosts that still claim the IPs it holds.
    fn probe(&self, token: u64, ips: Vec<IpAddr>, timeout: Duration, claims: bool) -> ProbeFuture {
        let arp = self.g.arp.clone();
        let ifname = self.g.ifname.clone();
        let ifindex = self.g.ifindex;
        let took = self
            .g
            .status
            .lock()
            .ok()
            .and_then(|s| s.probe_seconds.clone());
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = if claims {
                ipwork::claims(&arp, &ifname, ifindex, &ips, timeout).await
            } else {
                ipwork::probe_who(&arp, &ifname, ifindex, &ips, timeout).await
            };
            if let (Some(h), false) = (took, claims) {
                h.observe(started.elapsed().as_secs_f64());
            }
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

    fn probed(
        &mut self,
        token: u64,
        result: Result<BTreeMap<IpAddr, Responder>, String>,
        work: &mut InFlight,
    ) {
        let now = Instant::now().into_std();
        match &result {
            Ok(answered) => {
                let wall = SystemTime::now();
                for (ip, who) in answered {
                    let since = match self.answers.get(ip) {
                        Some((old, since)) if old == who => *since,
                        _ => wall,
                    };
                    self.answers.insert(*ip, (*who, since));
                }
                if let Ok(mut s) = self.g.status.lock() {
                    s.conflicts += answered.len() as u64;
                    *s.probes.entry("answered").or_default() += answered.len() as u64;
                }
            }
            Err(e) => {
                crate::warn_limited!({ group = %self.g.group, }, "probe failed: {e}; not adding, will retry");
                if let Ok(mut s) = self.g.status.lock() {
                    *s.probes.entry("failed").or_default() += 1;
                }
            }
        }
        let asked = self.probe_sizes.remove(&token).unwrap_or(0);
        let answered = result.as_ref().map_or(0, |a| a.len() as u64);
        let answered_ok = result.is_ok();
        self.planner
            .probed(now, token, result.map(ipwork::in_words));
        if let Ok(mut s) = self.g.status.lock() {
            if answered_ok {
                *s.probes.entry("silent").or_default() += asked.saturating_sub(answered);
            }
        }
        // The conflicts as the planner now sees them: logged per group, rate-limited.
        let current: BTreeMap<IpAddr, String> = self
            .planner
            .states()
            .into_iter()
            .filter_map(|(ip, s)| match s {
                IpState::Conflict(who) => Some((ip, who)),
                _ => None,
            })
            .collect();
        self.answers.retain(|ip, _| current.contains_key(ip));
        match self.conflict_log.observe(now, &current) {
            Some(ConflictLine::Warn(line)) => warn!(group = %self.g.group, "{line}"),
            Some(ConflictLine::Cleared(line)) => info!(group = %self.g.group, "{line}"),
            None => {}
        }
        self.identify(work);
        self.publish_answers();
    }

    /// Starts naming the MACs that answer for our IPs, unless they all
    /// have a recent name or a naming is running.
    fn identify(&mut self, work: &mut InFlight) {
        if work.identify.is_some() {
            return;
        }
        let now = Instant::now();
        let mut macs: Vec<[u8; 6]> = self
            .answers
            .values()
            .filter_map(|(r, _)| match r {
                Responder::Arp { mac } | Responder::Nd { mac } => Some(*mac),
                Responder::Icmp { .. } => None,
            })
            .filter(|mac| {
                self.identities
                    .get(mac)
                    .is_none_or(|(_, at)| now.saturating_duration_since(*at) >= IDENTITY_FOR)
            })
            .collect();
        macs.sort();
        macs.dedup();
        if macs.is_empty() {
            return;
        }
        let arp = self.g.arp.clone();
        let ifname = self.g.ifname.clone();
        let peers = self.peers.borrow().clone();
        let skip: Vec<IpAddr> = self.g.ips.iter().map(|n| n.addr).collect();
        let timeout = self.timing.probe_timeout;
        work.identify = Some(Box::pin(async move {
            ipwork::identify(&arp, &ifname, &macs, &peers, &skip, timeout).await
        }));
    }

    /// Who answers for each conflicting IP, as far as known, for `status`.
    fn publish_answers(&self) {
        let peers = self.peers.borrow();
        let answers = self
            .answers
            .iter()
            .map(|(ip, (r, since))| {
                let who = match r {
                    Responder::Arp { mac } | Responder::Nd { mac } => self
                        .identities
                        .get(mac)
                        .map(|(a, _)| a.clone())
                        .unwrap_or(Answerer {
                            mac: Some(*mac),
                            ip: None,
                            peer: None,
                        }),
                    Responder::Icmp { from } => Answerer {
                        mac: None,
                        ip: Some(*from),
                        peer: peers.contains(from).then_some(*from),
                    },
                };
                (*ip, (who, *since))
            })
            .collect();
        if let Ok(mut s) = self.g.status.lock() {
            s.answers = answers;
        }
    }

    fn defended(&mut self, token: u64, result: Result<BTreeMap<IpAddr, Responder>, String>) {
        let now = Instant::now().into_std();
        match &result {
            Ok(claims) if !claims.is_empty() => {
                let who: Vec<String> = claims.iter().map(|(ip, r)| format!("{ip} ({r})")).collect();
                // At most once a second, and only while another host claims the IPs.
                warn!(group = %self.g.group, "forced takeover: still claimed by another host: {}; announced again", who.join(", "));
            }
            Ok(_) => {}
            Err(e) => warn!(group = %self.g.group, "forced takeover: cannot look for claims: {e}"),
        }
        self.planner
            .defended(now, token, result.map(ipwork::in_words));
    }

    /// An operator's `ipfail takeover`.
    fn command(&mut self, cmd: IpCmd) {
        let now = Instant::now().into_std();
        let g = &self.g;
        let reply = if cmd.undo {
            self.planner.unforce(now).map(|back| {
                let line = if back.is_empty() {
                    format!("{}: forced takeover undone; nobody else claimed its IPs at the last look, so they stay here", g.group)
                } else {
                    format!("{}: forced takeover undone; gave back {} IP(s) another host still claims: {}; they are re-probed and taken when it falls silent",
                        g.group, back.len(), list(&back))
                };
                warn!(group = %g.group, "{line}");
                line
            })
        } else {
            self.planner.force(now).map(|taken| {
                let who: Vec<String> = taken
                    .iter()
                    .map(|ip| match self.answers.get(ip) {
                        Some((r, _)) => format!("{ip} ({r})"),
                        None => ip.to_string(),
                    })
                    .collect();
                let line = format!(
                    "{}: FORCED TAKEOVER by the operator: taking {} IP(s) without the probe although another host may still answer: {}; \
                     announcing them and defending them with gratuitous ARP every {} s and on every ARP request, \
                     until `ipfail takeover {} --undo` or the other host is silent for {} looks",
                    g.group, taken.len(), who.join(", "), DEFEND_EVERY.as_secs(), g.group, crate::ipplan::SILENT_ROUNDS
                );
                error!(group = %g.group, "{line}");
                line
            })
        };
        let _ = cmd
            .reply
            .send(reply.map_err(|e| format!("{}: {e}", g.group)));
        // Watch ARP before the IPs are added and announced: a client that
        // asks right after the announcement must get our answer too.
        self.watch_arp();
    }

    /// Opens (or closes) the ARP watcher as a forced takeover starts (or ends).
    fn watch_arp(&mut self) {
        if !self.planner.is_forced() {
            self.watcher = None;
            self.watch_failed = false;
            return;
        }
        if self.watcher.is_some() || self.watch_failed {
            return;
        }
        match ArpSocket::open(self.g.ifindex, self.g.mac) {
            Ok(sock) => self.watcher = Some(Arc::new(sock)),
            Err(e) => {
                warn!(group = %self.g.group, "forced takeover: cannot watch ARP ({e}); defending every {} s only", DEFEND_EVERY.as_secs());
                self.watch_failed = true;
            }
        }
    }

    /// A foreign ARP frame while forced: a request for one of our IPs, or
    /// another host speaking for one.
    fn arp_frame(&mut self, view: &ArpView) {
        let now = Instant::now().into_std();
        let claim = IpAddr::V4(view.sender_ip);
        if self.g.ips.iter().any(|n| n.addr == claim) {
            self.planner.arp_seen(now, claim, true);
        }
        let asked = IpAddr::V4(view.target_ip);
        if view.is_request() && asked != claim && self.g.ips.iter().any(|n| n.addr == asked) {
            self.planner.arp_seen(now, asked, false);
        }
    }

    /// Reads the interface's addresses into the planner.
    async fn read(&mut self) {
        match self.nic().read().await {
            Ok(seen) => self.planner.observed(Instant::now().into_std(), &seen),
            Err(e) => {
                // Nothing learnt; the planner asks again at its next step.
                crate::warn_limited!({ group = %self.g.group, dev = %self.g.ifname, }, "cannot read the addresses: {e}");
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
        self.g.ips = plan.ips.clone();
        self.planner.set_ips(now, &plan.ips);
    }

    /// One round of announcements (gratuitous ARP, unsolicited NA).
    async fn announce(&self, ips: &[IpAddr]) {
        let mut sent = 0;
        for (ip, r) in self.nic().announce(&self.g.arp, ips).await {
            match r {
                Ok(()) => sent += 1,
                Err(e) => {
                    crate::warn_limited!({ group = %self.g.group, ip = %ip, }, "announcement failed: {e}")
                }
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
            Note::ForceEnded {
                why: ForceEnd::ZombieSilent,
            } => warn!(group = %g.group,
                "forced takeover over: no other host claimed the IPs for {} looks; back to normal", crate::ipplan::SILENT_ROUNDS),
            Note::ForceEnded {
                why: ForceEnd::MastershipEnded,
            } => warn!(group = %g.group,
                "forced takeover over: this host is no longer master"),
            // The operator's command answers for itself.
            Note::ForceEnded {
                why: ForceEnd::Undone,
            } => {}
            Note::LateClaim { ips } => warn!(group = %g.group,
                "another host answered for {} after the quick handover probe: given back, re-probing",
                list(&ips)),
        }
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
