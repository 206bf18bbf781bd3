//! Configuration -> running groups, at start (every group is new) and on
//! reload (`ipfail reload`, SIGHUP), where only what changed is touched:
//!
//! - same vhid, interfaces and source: the group keeps its state machine,
//!   its IP task and its IPs (no blip). New `advbase`, `advskew` or
//!   `preempt` go to the running machine (`Fsm::reconfigure`: a master
//!   stays master and advertises the new values, a backup re-arms its
//!   master-down timer) and the new lease to the IP task. A changed
//!   `pass` or `hmac_addrs` (which follows `ips` unless set) replaces the
//!   HMAC key; with the same `pass`, the previous address list stays
//!   accepted and signs our adverts for a while, so peers can be reloaded
//!   minutes apart (docs/safety.md §10). Changed `ips` or `[ipfail]`
//!   timings go to the IP task, where a master probes, adds and announces
//!   new IPs and removes dropped ones;
//! - other CARP settings (`vhid`, `interface`, `carp_interface`,
//!   `source`): the group restarts: it releases its IPs (a master bows out
//!   once they are gone) and a new machine starts INIT -> BACKUP;
//! - removed groups release and stop; added ones start.
//!
//! Everything that can fail (interface lookups, sockets) is prepared before
//! anything changes ([`prepare`]), so a failed reload leaves the daemon as
//! it was. On reload the preparation runs in a task of its own from a
//! copy of what is running ([`Running`]), so the loop never awaits its
//! netlink requests; the loop only commits the result ([`Daemon::commit`]).

use super::driver::{PREVIOUS_LIST_ACCEPTED, PREVIOUS_LIST_SIGNED};
use super::{
    flush, initial_counter, read_adverts, read_adverts6, wants_v6, Daemon, DaemonError,
    GroupDriver, GroupRt, Iface, Iface6, STOP_GRACE,
};
use crate::carp::fsm::{Fsm, FsmConfig};
use crate::carp::packet::AuthKey;
use crate::config::{Carp, Config, Global, Group};
use crate::health::GroupHealth;
use crate::ipmgr::{self, Desired, GroupIpStatus, GroupIps, IpPlan, IpTiming, TaskLinks};
use crate::ipplan::Lease;
use crate::sys::linux::{ArpSocket, CarpSocket, CarpSocket6, LinkInfo, Netlink};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// What the preparation of a configuration needs to know about the
/// running daemon: a copy, so it can run off the loop.
pub(super) struct Running {
    /// (id, name, configured source, has an IPv6 socket) of each CARP
    /// interface.
    ifaces: Vec<(u64, String, Option<Ipv4Addr>, bool)>,
    /// (section, interface id) of each running group, in `groups` order.
    groups: Vec<(Group, u64)>,
}

/// A configuration ready to commit: sockets open, links looked up.
pub(super) struct Prepared {
    new: Config,
    first: bool,
    new_ifaces: Vec<NewIface>,
    steps: Vec<Step>,
}

/// A CARP interface whose socket is open but not yet in use.
struct NewIface {
    link: LinkInfo,
    sock: CarpSocket,
    source: Ipv4Addr,
    configured_source: Option<Ipv4Addr>,
    /// The IPv6 socket and the link-local address it sends from, when a
    /// group on the interface has IPv6 addresses.
    v6: Option<(CarpSocket6, Ipv6Addr)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IfaceRef {
    Existing(u64),
    New(usize),
}

/// What to do with one group of the new configuration.
enum Step {
    /// Same election: update in place (`old` indexes the running groups).
    Keep {
        old: usize,
        group: Box<Group>,
    },
    Start(Box<Starting>),
}

/// A new machine to start, replacing `old` (with the reason) if given.
struct Starting {
    group: Group,
    carp: Carp,
    old: Option<(usize, String)>,
    ip_link: LinkInfo,
    arp: ArpSocket,
    iface: IfaceRef,
    /// Our own leased IPs of the group are on the NIC (daemon start only):
    /// the group resumes as master (docs/safety.md, "Restarts").
    adopt: bool,
}

fn timing(g: &Global) -> IpTiming {
    IpTiming {
        probe_timeout: g.probe_timeout,
        garp_count: g.garp_count,
        garp_interval: g.garp_interval,
        reprobe_interval: g.reprobe_interval,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Opens the CARP sockets of `carp.carp_interface`: IPv4 always, IPv6
/// too when `v6` (a group on it has IPv6 addresses), which needs a
/// link-local address on the interface to send from
/// (`docs/design.md` §4.7).
async fn open_iface(
    netlink: &Netlink,
    g: &Group,
    carp: &Carp,
    v6: bool,
) -> Result<NewIface, DaemonError> {
    let gerr = |source| DaemonError::Group {
        group: g.name.clone(),
        source,
    };
    let link = netlink.link(&carp.carp_interface).await.map_err(gerr)?;
    let source = match carp.source {
        Some(s) => s,
        None => super::first_ipv4(netlink, link.index)
            .await
            .map_err(gerr)?
            .ok_or_else(|| DaemonError::NoSource {
                group: g.name.clone(),
                iface: carp.carp_interface.clone(),
            })?,
    };
    let sock = CarpSocket::open_v4(&link.name, link.index, source).map_err(gerr)?;
    let v6 = if v6 {
        let link_local = netlink
            .addrs(link.index)
            .await
            .map_err(gerr)?
            .into_iter()
            .find_map(|(a, _)| match a {
                IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(v6),
                _ => None,
            })
            .ok_or_else(|| DaemonError::NoLinkLocal {
                group: g.name.clone(),
                iface: carp.carp_interface.clone(),
            })?;
        let sock6 = CarpSocket6::open_v6(&link.name, link.index).map_err(gerr)?;
        Some((sock6, link_local))
    } else {
        None
    };
    Ok(NewIface {
        link,
        sock,
        source,
        configured_source: carp.source,
        v6,
    })
}

/// Why a group running as `old` cannot keep running under `new`; `None`
/// if it can (only `ips`, `pass`, `hmac_addrs`, `advbase`, `advskew`,
/// `preempt` and the group's extras differ). `same_socket`: its CARP
/// interface keeps its socket and advert source.
fn restart_reason(old: &Group, new: &Group, same_socket: bool) -> Option<String> {
    let (Some(a), Some(b)) = (&old.carp, &new.carp) else {
        return Some("vhid added or removed".into());
    };
    let mut why = Vec::new();
    let mut differs = |what: &str, x: String, y: String| {
        if x != y {
            why.push(format!("{what} {x} -> {y}"));
        }
    };
    differs("vhid", a.vhid.to_string(), b.vhid.to_string());
    differs("interface", old.interface.clone(), new.interface.clone());
    differs(
        "carp_interface",
        a.carp_interface.clone(),
        b.carp_interface.clone(),
    );
    let src =
        |s: Option<Ipv4Addr>| s.map_or_else(|| "(first address)".to_string(), |s| s.to_string());
    differs("source", src(a.source), src(b.source));
    if why.is_empty() && !same_socket {
        why.push(format!(
            "the advert source of {} changed (set by the first group on it)",
            b.carp_interface
        ));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Phase 1: everything that can fail, without touching anything running.
/// `first`: the daemon is starting (only then are our own leased IPs
/// adopted).
pub(super) async fn prepare(
    netlink: &Netlink,
    running: &Running,
    new: Config,
    first: bool,
) -> Result<Prepared, DaemonError> {
    let wanted: Vec<(Group, Carp)> = new
        .carp_groups()
        .filter_map(|g| g.carp.clone().map(|c| (g.clone(), c)))
        .collect();
    if wanted.is_empty() {
        return Err(DaemonError::NoCarpGroups(new.path.display().to_string()));
    }
    let mut iface_of: BTreeMap<String, IfaceRef> = BTreeMap::new();
    let mut new_ifaces: Vec<NewIface> = Vec::new();
    for (g, carp) in &wanted {
        if iface_of.contains_key(&carp.carp_interface) {
            continue;
        }
        // The first group on an interface sets its advert source.
        let v6 = needs_v6(&wanted, &carp.carp_interface);
        let reuse = running.ifaces.iter().find(|(_, name, src, has_v6)| {
            *name == carp.carp_interface && *src == carp.source && (*has_v6 || !v6)
        });
        let r = match reuse {
            Some((id, ..)) => IfaceRef::Existing(*id),
            None => {
                new_ifaces.push(open_iface(netlink, g, carp, v6).await?);
                IfaceRef::New(new_ifaces.len() - 1)
            }
        };
        iface_of.insert(carp.carp_interface.clone(), r);
    }
    let mut steps = Vec::new();
    for (g, carp) in wanted {
        let iface = iface_of
            .get(&carp.carp_interface)
            .copied()
            .unwrap_or(IfaceRef::New(usize::MAX));
        let old = running.groups.iter().position(|(o, _)| o.name == g.name);
        let why = old.and_then(|o| {
            running
                .groups
                .get(o)
                .and_then(|(og, oi)| restart_reason(og, &g, iface == IfaceRef::Existing(*oi)))
                .map(|why| (o, why))
        });
        match (old, why) {
            (Some(old), None) => steps.push(Step::Keep {
                old,
                group: Box::new(g),
            }),
            (_, old) => {
                let gerr = |source| DaemonError::Group {
                    group: g.name.clone(),
                    source,
                };
                let ip_link = netlink.link(&g.interface).await.map_err(gerr)?;
                netlink.link(&carp.carp_interface).await.map_err(gerr)?;
                let arp =
                    ArpSocket::open(ip_link.index, ip_link.mac.unwrap_or([0; 6])).map_err(gerr)?;
                // Only at start: a group restarted by a reload has just
                // released its IPs and must not take them for its own.
                let adopt = first
                    && netlink
                        .addr_infos(ip_link.index)
                        .await
                        .map_err(gerr)?
                        .iter()
                        .any(|a| {
                            a.is_ours()
                                && a.valid_left.is_some()
                                && g.ips.iter().any(|n| n.addr == a.addr)
                        });
                steps.push(Step::Start(Box::new(Starting {
                    group: g,
                    carp,
                    old,
                    ip_link,
                    arp,
                    iface,
                    adopt,
                })));
            }
        }
    }
    Ok(Prepared {
        new,
        first,
        new_ifaces,
        steps,
    })
}

impl Daemon {
    /// Makes the running groups match `new` (at start; a reload prepares
    /// off the loop and commits). Returns one line per group (and per
    /// daemon-wide change) saying what happened.
    pub(super) async fn apply_config(&mut self, new: Config) -> Result<Vec<String>, DaemonError> {
        let first = self.groups.is_empty();
        let prepared = prepare(&self.netlink, &self.running(), new, first).await?;
        Ok(self.commit(prepared).await)
    }

    /// A copy of what [`prepare`] needs.
    pub(super) fn running(&self) -> Running {
        Running {
            ifaces: self
                .ifaces
                .iter()
                .map(|(id, i)| (*id, i.name.clone(), i.configured_source, i.v6.is_some()))
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|g| (g.cfg.clone(), g.iface))
                .collect(),
        }
    }

    /// Phase 2: apply a prepared configuration; nothing fails here. The
    /// running groups must be the ones it was prepared from (reloads are
    /// one at a time).
    pub(super) async fn commit(&mut self, prepared: Prepared) -> Vec<String> {
        let Prepared {
            new,
            first,
            new_ifaces,
            steps,
        } = prepared;
        let now = Instant::now();
        let timing = timing(&new.global);
        let mut report = Vec::new();
        let mut new_ids = Vec::new();
        for ni in new_ifaces {
            let id = self.next_id;
            self.next_id += 1;
            let sock = Arc::new(ni.sock);
            let tx = self.rx_tx.upgrade();
            if tx.is_none() {
                error!(dev = %ni.link.name, "the receive channel is closed; adverts on this interface are not read");
            }
            let reader = match &tx {
                Some(tx) => tokio::spawn(read_adverts(id, sock.clone(), tx.clone())),
                None => tokio::spawn(async {}),
            };
            let v6 = ni.v6.map(|(sock6, source)| {
                let sock6 = Arc::new(sock6);
                let reader = match tx {
                    Some(tx) => tokio::spawn(read_adverts6(id, sock6.clone(), tx)),
                    None => tokio::spawn(async {}),
                };
                Iface6 {
                    sock: sock6,
                    source,
                    reader,
                }
            });
            self.ifaces.insert(
                id,
                Iface {
                    name: ni.link.name,
                    sock,
                    v6,
                    source: ni.source,
                    configured_source: ni.configured_source,
                    groups: Vec::new(),
                    rejected: BTreeMap::new(),
                    last_reject_log: BTreeMap::new(),
                    peers: Default::default(),
                    peers_tx: watch::channel(Vec::new()).0,
                    reader,
                },
            );
            new_ids.push(id);
        }
        let mut old_groups: Vec<Option<GroupRt>> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(Some)
            .collect();
        let mut groups = Vec::new();
        for step in steps {
            match step {
                Step::Keep { old, group } => {
                    let Some(mut g) = old_groups.get_mut(old).and_then(Option::take) else {
                        continue;
                    };
                    report.push(self.update_kept(&mut g, *group, timing, now));
                    groups.push(g);
                }
                Step::Start(start) => {
                    let Starting {
                        group,
                        carp,
                        old,
                        ip_link,
                        arp,
                        iface,
                        adopt,
                    } = *start;
                    let replaced = old.and_then(|(o, why)| {
                        old_groups
                            .get_mut(o)
                            .and_then(Option::take)
                            .map(|g| (g, why))
                    });
                    match replaced {
                        Some((g, why)) => {
                            report.push(format!("{}: restarted ({why})", group.name));
                            self.retire(g, &format!("restarting it: {why}")).await;
                        }
                        None if !first => report.push(format!("{}: added", group.name)),
                        None => {}
                    }
                    let iface = match iface {
                        IfaceRef::Existing(id) => id,
                        IfaceRef::New(i) => new_ids.get(i).copied().unwrap_or(u64::MAX),
                    };
                    groups.push(
                        self.start_group(group, carp, ip_link, arp, iface, timing, now, adopt),
                    );
                }
            }
        }
        for g in old_groups.into_iter().flatten() {
            report.push(format!("{}: removed", g.cfg.name));
            self.retire(g, "it is no longer in the configuration").await;
        }
        self.groups = groups;
        let used = self
            .groups
            .iter()
            .filter_map(|g| g.driver.health())
            .flat_map(|h| h.ids())
            .collect();
        self.checks.retain(&used);
        // Interfaces no group uses any more close (dropping one stops its reader).
        let used: BTreeSet<u64> = self.groups.iter().map(|g| g.iface).collect();
        self.ifaces.retain(|id, _| used.contains(id));
        for i in self.ifaces.values_mut() {
            i.groups.clear();
        }
        for (gi, g) in self.groups.iter().enumerate() {
            if let Some(i) = self.ifaces.get_mut(&g.iface) {
                i.groups.push(gi);
            }
        }
        // Adverts a kept group queued (new values from a reload in place).
        for g in self.groups.iter_mut() {
            flush(&self.ifaces, g).await;
        }
        report.extend(global_changes(&self.config.global, &new.global));
        self.config = new;
        self.dirty = true;
        self.urgent = true;
        report
    }

    /// A group that keeps running: new election timers, preempt, key,
    /// addresses and timings take effect in place.
    fn update_kept(
        &mut self,
        g: &mut GroupRt,
        new: Group,
        timing: IpTiming,
        at: Instant,
    ) -> String {
        let mut what = Vec::new();
        if let (Some(a), Some(b)) = (&g.cfg.carp, &new.carp) {
            let mut changed = Vec::new();
            if a.advbase != b.advbase {
                changed.push(format!("advbase {} -> {}", a.advbase, b.advbase));
            }
            if a.advskew != b.advskew {
                changed.push(format!("advskew {} -> {}", a.advskew, b.advskew));
            }
            if a.preempt != b.preempt {
                changed.push(format!(
                    "preempt {} -> {}",
                    yes_no(a.preempt),
                    yes_no(b.preempt)
                ));
            }
            if !changed.is_empty() {
                // Sent by the flush at the end of the commit.
                g.driver.reconfigure(at, b.advbase, b.advskew, b.preempt);
                what.push(format!("{} (in place)", changed.join(", ")));
            }
        }
        let old: BTreeSet<_> = g.cfg.ips.iter().collect();
        let now: BTreeSet<_> = new.ips.iter().collect();
        let added = now.difference(&old).count();
        let dropped = old.difference(&now).count();
        if added + dropped > 0 {
            what.push(format!("ips +{added} -{dropped}"));
        }
        if let (Some(a), Some(b)) = (&g.cfg.carp, &new.carp) {
            if a.pass != b.pass || a.hmac_addrs != b.hmac_addrs {
                let grace = g.driver.set_key(at, AuthKey::new(&b.pass, &b.hmac_addrs));
                what.push(if grace {
                    format!(
                        "the advert HMAC covers a new address list (adverts keep the previous \
                         list for {} min and it is accepted for {} min: reload the peers \
                         within {} min)",
                        PREVIOUS_LIST_SIGNED.as_secs() / 60,
                        PREVIOUS_LIST_ACCEPTED.as_secs() / 60,
                        PREVIOUS_LIST_SIGNED.as_secs() / 60,
                    )
                } else {
                    format!(
                        "new pass (reload the peers too, within {:.0} s)",
                        3.0 * f64::from(b.advbase)
                    )
                });
            }
        }
        let plan = IpPlan {
            ips: new.ips.clone(),
            timing,
            lease: new.carp.as_ref().map_or(g.plan.borrow().lease, |c| {
                Lease::for_timers(c.advbase, c.advskew)
            }),
        };
        if let (Some(a), Some(b)) = (&g.cfg.carp, &new.carp) {
            if a.notify != b.notify {
                g.notifier = b.notify.clone().map(crate::notify::Notifier::start);
                what.push("notify script changed".to_string());
            }
            if a.health != b.health {
                // Checks kept keep their verdict; new ones start pending.
                let now = Instant::now();
                let health = b
                    .health
                    .as_ref()
                    .map(|h| GroupHealth::start(h, &mut self.checks, g.driver.health(), now));
                g.driver.set_health(now, health);
                what.push("health checks changed".to_string());
            }
        }
        g.plan.send_if_modified(|p| {
            let changed = *p != plan;
            if changed {
                *p = plan;
            }
            changed
        });
        let line = if what.is_empty() {
            format!("{}: unchanged", new.name)
        } else {
            format!(
                "{}: {}; still {}",
                new.name,
                what.join(", "),
                g.driver.fsm().state()
            )
        };
        g.cfg = new;
        line
    }

    /// A new group: its IP task and its machine (in INIT; the next link
    /// poll starts it).
    #[allow(clippy::too_many_arguments)]
    fn start_group(
        &mut self,
        g: Group,
        carp: Carp,
        ip_link: LinkInfo,
        arp: ArpSocket,
        iface: u64,
        timing: IpTiming,
        now: Instant,
        adopt: bool,
    ) -> GroupRt {
        let ip_status = Arc::new(Mutex::new(GroupIpStatus {
            probe_seconds: Some(crate::metrics::probe_histogram_of(
                &self.probe_seconds,
                &g.name,
            )),
            ..GroupIpStatus::default()
        }));
        let (desired, desired_rx) = watch::channel(Desired::default());
        let plan = IpPlan {
            ips: g.ips.clone(),
            timing,
            lease: Lease::for_timers(carp.advbase, carp.advskew),
        };
        let (plan_tx, plan_rx) = watch::channel(plan);
        let (released_tx, mut released_rx) = watch::channel(0u64);
        let (ip_cmds, cmds_rx) = tokio::sync::mpsc::channel(4);
        let peers = self
            .ifaces
            .get(&iface)
            .map_or_else(|| watch::channel(Vec::new()).1, |i| i.peers_tx.subscribe());
        self.next_id += 1;
        let id = self.next_id;
        // The IP task's release reports reach the loop by group id.
        let to_loop = self.released_tx.clone();
        let forward = tokio::spawn(async move {
            while released_rx.changed().await.is_ok() {
                let epoch = *released_rx.borrow_and_update();
                if to_loop.send((id, epoch)).is_err() {
                    return;
                }
            }
        });
        let task = tokio::spawn(ipmgr::run(
            GroupIps {
                group: g.name.clone(),
                ifname: ip_link.name.clone(),
                ifindex: ip_link.index,
                mac: ip_link.mac.unwrap_or([0; 6]),
                ips: g.ips.clone(),
                timing,
                lease: Lease::for_timers(carp.advbase, carp.advskew),
                netlink: self.netlink.clone(),
                events: self.events.listen(),
                arp: Arc::new(arp),
                status: ip_status.clone(),
            },
            desired_rx,
            TaskLinks {
                plan: plan_rx,
                released: released_tx,
                cmds: cmds_rx,
                peers,
            },
        ));
        let source = self
            .ifaces
            .get(&iface)
            .map_or(Ipv4Addr::UNSPECIFIED, |i| i.source);
        let fsm = Fsm::new(
            FsmConfig {
                vhid: carp.vhid,
                advbase: carp.advbase,
                advskew: carp.advskew,
                preempt: carp.preempt,
                local: IpAddr::V4(source),
            },
            now,
        );
        let mut driver = GroupDriver::new(
            fsm,
            AuthKey::new(&carp.pass, &carp.hmac_addrs),
            initial_counter(id as usize),
            adopt,
        );
        // In INIT these only set flags: no actions.
        let health = carp
            .health
            .as_ref()
            .map(|h| GroupHealth::start(h, &mut self.checks, None, now));
        driver.set_health(now, health);
        if self.demoted.contains(&g.name) {
            driver.set_demoted(now, true);
            warn!(group = %g.name, "demoted (listed in {}): advertising as least preferred until `ipfail promote {}`",
                crate::state::demoted_path(&self.state_dir).display(), g.name);
        }
        let mut links = vec![carp.carp_interface.clone()];
        if g.interface != carp.carp_interface {
            links.push(g.interface.clone());
        }
        info!(
            group = %g.name, vhid = carp.vhid, advbase = carp.advbase, advskew = carp.advskew,
            preempt = carp.preempt, dev = %carp.carp_interface, source = %source,
            ips = g.ips.len(), "group configured"
        );
        GroupRt {
            id,
            driver,
            iface,
            links,
            desired,
            plan: plan_tx,
            task: Some(task),
            forward,
            ip_status,
            ip_cmds,
            notifier: carp.notify.clone().map(crate::notify::Notifier::start),
            cfg: g,
        }
    }

    /// Stops a group without holding up the loop: its IPs are released now,
    /// and a master's bow-out goes out once its IP task has removed them.
    async fn retire(&mut self, mut g: GroupRt, why: &str) {
        info!(group = %g.cfg.name, state = %g.driver.fsm().state(), "stopping the group: {why}");
        g.driver.shutdown(Instant::now());
        flush(&self.ifaces, &mut g).await;
        // Its release reports no longer reach a loop that knows it: the
        // held bow-out goes once the IP task has ended.
        let signed = g.driver.take_held();
        let iface = self.ifaces.get(&g.iface);
        let sock = iface.map(|i| i.sock.clone());
        // Sent on every family the group advertises on, as its adverts are.
        let sock6 = iface
            .and_then(|i| i.v6.as_ref())
            .filter(|_| wants_v6(&g.cfg))
            .map(|v6| v6.sock.clone());
        let task = g.task.take();
        let name = g.cfg.name.clone();
        tokio::spawn(async move {
            if let Some(task) = task {
                if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                    error!(group = %name, "IP removal did not finish in time; check the interface by hand");
                }
            }
            for advert in signed {
                if let Some(sock) = &sock {
                    if let Err(e) = sock.send(&advert).await {
                        warn!(group = %name, "sending the bow-out advert: {e}");
                    }
                }
                if let Some(sock6) = &sock6 {
                    if let Err(e) = sock6.send(&advert).await {
                        warn!(group = %name, "sending the IPv6 bow-out advert: {e}");
                    }
                }
            }
        });
    }
}

/// Does any group of `wanted` on CARP interface `dev` advertise on IPv6
/// too ([`wants_v6`])? Then the interface opens its IPv6 socket.
fn needs_v6(wanted: &[(Group, Carp)], dev: &str) -> bool {
    wanted
        .iter()
        .any(|(g, c)| c.carp_interface == dev && wants_v6(g))
}

/// Lines for `[ipfail]` changes: timings apply at once, the socket and the
/// state directory only at the next start.
fn global_changes(old: &Global, new: &Global) -> Vec<String> {
    let mut out = Vec::new();
    if old.control_socket != new.control_socket || old.control_group != new.control_group {
        out.push(
            "[ipfail] control_socket/control_group changed: takes effect when the daemon restarts"
                .to_string(),
        );
    }
    if old.state_dir != new.state_dir {
        out.push("[ipfail] state_dir changed: takes effect when the daemon restarts".to_string());
    }
    if old.metrics_listen != new.metrics_listen {
        out.push(
            "[ipfail] metrics_listen changed: takes effect when the daemon restarts".to_string(),
        );
    }
    if timing(old) != timing(new) {
        out.push("[ipfail] probe/announce timings changed: applied to every group".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        crate::config::parse(text, Path::new("t.cfg")).unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = "[ipfail]\nprobe_timeout = 0.2\n\
        [web]\ninterface = eth0\nvhid = 10\nadvskew = 0\npass = s\nips = 203.0.113.10\n";

    fn group(cfg: &Config) -> Group {
        cfg.groups[0].clone()
    }

    #[test]
    fn addresses_and_keys_change_in_place_election_settings_restart() {
        let old = group(&cfg(BASE));
        let same = |text: &str| restart_reason(&old, &group(&cfg(text)), true);
        assert_eq!(same(BASE), None);
        // A moved line number is no change.
        assert_eq!(same(&format!("# comment\n{BASE}")), None);
        assert_eq!(
            same(&BASE.replace("203.0.113.10", "203.0.113.10 203.0.113.11")),
            None
        );
        assert_eq!(same(&BASE.replace("pass = s", "pass = t")), None);
        assert_eq!(same(&format!("{BASE}hmac_addrs = 203.0.113.99\n")), None);
        // Election timers and preempt change in place (Fsm::reconfigure).
        assert_eq!(same(&BASE.replace("advskew = 0", "advskew = 50")), None);
        assert_eq!(
            same(&BASE.replace("advskew = 0", "advskew = 5\nadvbase = 2\npreempt = no")),
            None
        );
        assert_eq!(
            same(&BASE.replace("vhid = 10", "vhid = 11\npreempt = no")).as_deref(),
            Some("vhid 10 -> 11")
        );
        assert_eq!(
            same(&BASE.replace("eth0", "eth1")).as_deref(),
            Some("interface eth0 -> eth1, carp_interface eth0 -> eth1")
        );
        assert_eq!(
            same(&format!("{BASE}source = 192.0.2.9\n")).as_deref(),
            Some("source (first address) -> 192.0.2.9")
        );
        assert_eq!(
            restart_reason(&old, &old, false).as_deref(),
            Some("the advert source of eth0 changed (set by the first group on it)")
        );
        let hook_only = group(&cfg("[web]\ninterface = eth0\nips = 203.0.113.10\n"));
        assert!(restart_reason(&old, &hook_only, true).is_some());
    }

    #[test]
    fn only_daemon_wide_changes_that_matter_are_reported() {
        let a = cfg(BASE);
        assert!(global_changes(&a.global, &a.global).is_empty());
        let b = cfg(&BASE.replace("0.2", "0.3"));
        assert_eq!(
            global_changes(&a.global, &b.global),
            vec!["[ipfail] probe/announce timings changed: applied to every group"]
        );
        let c = cfg(&BASE.replace("[ipfail]\n", "[ipfail]\ncontrol_socket = /run/x.sock\n"));
        let lines = global_changes(&a.global, &c.global);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("restarts"), "{lines:?}");
    }
}
