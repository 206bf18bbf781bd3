//! `ipfail daemon`: the one event loop around the per-group state machines.
//!
//! Inputs: CARP datagrams (one raw socket per CARP interface, read by a small
//! task each), the machines' deadlines, link carrier (polled), SIGTERM/SIGINT.
//! Outputs: adverts on the wire and wishes to each group's IP task
//! (`ipmgr`). The loop itself never waits on address work or probes.

use crate::carp::fsm::{Action, Fsm, FsmConfig, PeerAdvert};
use crate::carp::ipv4::{classify_v4, Reject};
use crate::carp::packet::{Advert, AuthKey};
use crate::config::{Config, Group};
use crate::ipmgr::{self, Desired, GroupIpStatus, GroupIps, IpTiming};
use crate::sys::linux::{missing_capabilities, ArpSocket, CarpSocket, Netlink, SysError};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// How often link carrier is checked. Cheap (one netlink request per NIC).
const LINK_POLL: Duration = Duration::from_millis(100);
/// How long a stop waits for the IP tasks to remove their addresses.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// At most one log line per (interface, reject class) in this period.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("missing privileges: {} (run as root or grant them, e.g. AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)", .0.join(", "))]
    Privileges(Vec<&'static str>),
    #[error("{}: no group has a `vhid`: nothing for the daemon to elect (sections without vhid are for `ipfail hook`)", .0)]
    NoCarpGroups(String),
    #[error("[{group}]: interface {iface} has no IPv4 address to send adverts from; set `source`")]
    NoSource { group: String, iface: String },
    #[error("[{group}]: {source}")]
    Group { group: String, source: SysError },
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Counters of one group, shown in logs now and by `ipfail status` later.
#[derive(Clone, Debug, Default)]
pub struct GroupStats {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    pub rejected: BTreeMap<&'static str, u64>,
}

/// One CARP interface: its socket and the groups advertising on it.
struct Iface {
    name: String,
    sock: Arc<CarpSocket>,
    source: Ipv4Addr,
    groups: Vec<usize>,
    /// Rejected datagrams that belong to no group (e.g. unknown vhid).
    rejected: BTreeMap<&'static str, u64>,
    last_reject_log: BTreeMap<&'static str, Instant>,
}

struct GroupRt {
    name: String,
    vhid: u8,
    fsm: Fsm,
    key: AuthKey,
    iface: usize,
    /// Interfaces whose carrier the group needs: the CARP one and the IP one.
    links: Vec<String>,
    link_ok: bool,
    counter: u64,
    desired: watch::Sender<Desired>,
    task: Option<JoinHandle<()>>,
    stats: GroupStats,
    ip_status: Arc<Mutex<GroupIpStatus>>,
}

/// Build the runtime and run until SIGTERM/SIGINT.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(run_async(config))
}

async fn run_async(config: Config) -> Result<(), DaemonError> {
    let carp_groups: Vec<&Group> = config.groups.iter().filter(|g| g.carp.is_some()).collect();
    if carp_groups.is_empty() {
        return Err(DaemonError::NoCarpGroups(config.path.display().to_string()));
    }
    let missing = missing_capabilities();
    if !missing.is_empty() {
        return Err(DaemonError::Privileges(missing));
    }
    // Hold every elected group's lock file for the daemon's whole life, so
    // `ipfail hook` leaves these groups alone (src/lockfile.rs).
    let _group_locks = crate::lockfile::hold_for_daemon(&config).map_err(|e| SysError::Io {
        op: "taking the group locks",
        source: std::io::Error::other(e),
    })?;
    let netlink = Netlink::new()?;
    let timing = IpTiming {
        probe_timeout: config.global.probe_timeout,
        garp_count: config.global.garp_count,
        garp_interval: config.global.garp_interval,
        reprobe_interval: config.global.reprobe_interval,
    };

    let mut ifaces: Vec<Iface> = Vec::new();
    let mut groups: Vec<GroupRt> = Vec::new();
    let now = Instant::now();
    for g in carp_groups {
        let Some(carp) = &g.carp else { continue };
        let gerr = |source| DaemonError::Group {
            group: g.name.clone(),
            source,
        };
        let ip_link = netlink.link(&g.interface).await.map_err(gerr)?;
        let carp_link = netlink.link(&carp.carp_interface).await.map_err(gerr)?;
        let iface = match ifaces.iter().position(|i| i.name == carp.carp_interface) {
            Some(i) => i,
            None => {
                let source = match carp.source {
                    Some(s) => s,
                    None => first_ipv4(&netlink, carp_link.index)
                        .await
                        .map_err(gerr)?
                        .ok_or_else(|| DaemonError::NoSource {
                            group: g.name.clone(),
                            iface: carp.carp_interface.clone(),
                        })?,
                };
                let sock =
                    CarpSocket::open_v4(&carp_link.name, carp_link.index, source).map_err(gerr)?;
                ifaces.push(Iface {
                    name: carp_link.name.clone(),
                    sock: Arc::new(sock),
                    source,
                    groups: Vec::new(),
                    rejected: BTreeMap::new(),
                    last_reject_log: BTreeMap::new(),
                });
                ifaces.len() - 1
            }
        };
        let mac = ip_link.mac.unwrap_or([0; 6]);
        let arp = ArpSocket::open(ip_link.index, mac).map_err(gerr)?;
        let ip_status = Arc::new(Mutex::new(GroupIpStatus::default()));
        let (desired, desired_rx) = watch::channel(Desired::default());
        let task = tokio::spawn(ipmgr::run(
            GroupIps {
                group: g.name.clone(),
                ifname: ip_link.name.clone(),
                ifindex: ip_link.index,
                mac,
                ips: g.ips.clone(),
                timing,
                netlink: netlink.clone(),
                arp: Arc::new(arp),
                status: ip_status.clone(),
            },
            desired_rx,
        ));
        let fsm = Fsm::new(
            FsmConfig {
                vhid: carp.vhid,
                advbase: carp.advbase,
                advskew: carp.advskew,
                preempt: carp.preempt,
                local: IpAddr::V4(ifaces[iface].source),
            },
            now,
        );
        ifaces[iface].groups.push(groups.len());
        let mut links = vec![carp.carp_interface.clone()];
        if g.interface != carp.carp_interface {
            links.push(g.interface.clone());
        }
        info!(
            group = %g.name, vhid = carp.vhid, advbase = carp.advbase, advskew = carp.advskew,
            preempt = carp.preempt, dev = %carp.carp_interface, source = %ifaces[iface].source,
            ips = g.ips.len(), "group configured"
        );
        groups.push(GroupRt {
            name: g.name.clone(),
            vhid: carp.vhid,
            fsm,
            key: AuthKey::new(&carp.pass, &carp.hmac_addrs),
            iface,
            links,
            link_ok: false,
            counter: initial_counter(groups.len()),
            desired,
            task: Some(task),
            stats: GroupStats::default(),
            ip_status,
        });
    }

    let (rx_tx, mut rx) = mpsc::channel::<(usize, Vec<u8>)>(1024);
    let mut readers = Vec::new();
    for (i, iface) in ifaces.iter().enumerate() {
        readers.push(tokio::spawn(read_adverts(
            i,
            iface.sock.clone(),
            rx_tx.clone(),
        )));
    }
    drop(rx_tx);

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| SysError::Io {
        op: "installing the SIGTERM handler",
        source: e,
    })?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| SysError::Io {
        op: "installing the SIGINT handler",
        source: e,
    })?;
    let mut link_tick = tokio::time::interval(LINK_POLL);
    link_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(groups = groups.len(), "ipfail daemon started");

    let stop_signal = loop {
        let next = groups.iter().filter_map(|g| g.fsm.next_deadline()).min();
        let sleep_to = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            msg = rx.recv() => match msg {
                Some((i, datagram)) => on_datagram(&mut ifaces, &mut groups, i, &datagram).await,
                None => {
                    error!("every CARP socket reader stopped; exiting");
                    break "socket failure";
                }
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_to)) => {
                let now = Instant::now();
                for g in groups.iter_mut() {
                    let out = g.fsm.handle_timeout(now);
                    execute(&ifaces, g, out).await;
                }
            }
            _ = link_tick.tick() => poll_links(&netlink, &ifaces, &mut groups).await,
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        }
    };

    info!("{stop_signal}: stopping; masters bow out and every group's IPs are removed");
    // Remove the IPs first and bow out after: a peer that takes over on the
    // bow-out must find them silent, or it would see a conflict and wait.
    let now = Instant::now();
    let mut bow_outs = Vec::new();
    for g in groups.iter_mut() {
        let (adverts, rest): (Vec<Action>, Vec<Action>) = g
            .fsm
            .shutdown(now)
            .into_iter()
            .partition(|a| matches!(a, Action::SendAdvert { .. }));
        execute(&ifaces, g, rest).await;
        g.desired.send_modify(|d| d.stop = true);
        bow_outs.push(adverts);
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for (g, adverts) in groups.iter_mut().zip(bow_outs) {
        if let Some(task) = g.task.take() {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                error!(group = %g.name, "IP removal did not finish in time; check the interface by hand");
            }
        }
        execute(&ifaces, g, adverts).await;
    }
    for r in readers {
        r.abort();
    }
    for g in &groups {
        let (garps, conflicts) = g
            .ip_status
            .lock()
            .map_or((0, 0), |s| (s.garps_sent, s.conflicts));
        info!(
            group = %g.name, sent = g.stats.adverts_sent, received = g.stats.adverts_received,
            transitions = g.stats.transitions, garps, conflicts, "stopped"
        );
    }
    Ok(())
}

async fn first_ipv4(netlink: &Netlink, ifindex: u32) -> Result<Option<Ipv4Addr>, SysError> {
    Ok(netlink
        .addrs(ifindex)
        .await?
        .into_iter()
        .find_map(|(a, _)| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }))
}

/// A starting advert counter that differs between groups and restarts, as
/// FreeBSD seeds it randomly (`carp_hmac_prepare`); peers do not check it.
fn initial_counter(salt: usize) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ (salt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

async fn read_adverts(i: usize, sock: Arc<CarpSocket>, tx: mpsc::Sender<(usize, Vec<u8>)>) {
    let mut buf = vec![0u8; 2048];
    let mut errors = 0u32;
    loop {
        match sock.recv(&mut buf).await {
            Ok(n) => {
                errors = 0;
                let data = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send((i, data)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                errors += 1;
                warn!("receiving CARP datagrams: {e}");
                if errors > 100 {
                    error!("too many receive errors in a row; giving this socket up");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn on_datagram(ifaces: &mut [Iface], groups: &mut [GroupRt], i: usize, datagram: &[u8]) {
    let Some(iface) = ifaces.get_mut(i) else {
        return;
    };
    let own = [iface.source];
    let result = {
        let groups_ref = &*groups;
        let members = &iface.groups;
        classify_v4(datagram, &own, |vhid| {
            members
                .iter()
                .filter_map(|&gi| groups_ref.get(gi))
                .find(|g| g.vhid == vhid)
                .map(|g| &g.key)
        })
    };
    let now = Instant::now();
    match result {
        Ok(rx) => {
            let Some(&gi) = iface
                .groups
                .iter()
                .find(|&&gi| groups[gi].vhid == rx.advert.vhid)
            else {
                return;
            };
            let g = &mut groups[gi];
            g.stats.adverts_received += 1;
            debug!(group = %g.name, src = %rx.src, advbase = rx.advert.advbase, advskew = rx.advert.advskew, "advert");
            let out = g.fsm.handle_advert(
                now,
                PeerAdvert {
                    src: IpAddr::V4(rx.src),
                    advbase: rx.advert.advbase,
                    advskew: rx.advert.advskew,
                },
            );
            execute(ifaces, g, out).await;
        }
        Err(Reject::OwnAdvert) => {}
        Err(reject) => {
            let class = reject.class();
            // Auth failures belong to the group with that vhid; the rest to the NIC.
            let owner = match &reject {
                Reject::AuthFailed { vhid, .. } => iface
                    .groups
                    .iter()
                    .copied()
                    .find(|&gi| groups[gi].vhid == *vhid),
                _ => None,
            };
            match owner {
                Some(gi) => *groups[gi].stats.rejected.entry(class.name()).or_default() += 1,
                None => *iface.rejected.entry(class.name()).or_default() += 1,
            }
            let due = iface
                .last_reject_log
                .get(class.name())
                .is_none_or(|t| now.saturating_duration_since(*t) >= REJECT_LOG_EVERY);
            if due {
                iface.last_reject_log.insert(class.name(), now);
                let group = owner.map_or("-", |gi| groups[gi].name.as_str());
                warn!(dev = %iface.name, group, class = class.name(), "rejected CARP datagram: {reject} (logged at most every {}s per class)", REJECT_LOG_EVERY.as_secs());
            }
        }
    }
}

async fn execute(ifaces: &[Iface], g: &mut GroupRt, actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::Transition { from, to, reason } => {
                g.stats.transitions += 1;
                info!(group = %g.name, vhid = g.vhid, "{from} -> {to}: {reason}");
            }
            Action::SendAdvert { advbase, advskew } => {
                g.counter = g.counter.wrapping_add(1);
                let advert = Advert::signed(&g.key, g.vhid, advbase, advskew, g.counter);
                let Some(iface) = ifaces.get(g.iface) else {
                    continue;
                };
                match iface.sock.send(&advert.encode()).await {
                    Ok(()) => g.stats.adverts_sent += 1,
                    Err(e) => warn!(group = %g.name, dev = %iface.name, "sending advert: {e}"),
                }
            }
            Action::Acquire => g.desired.send_modify(|d| {
                d.master = true;
                d.epoch += 1;
            }),
            Action::Release => g.desired.send_modify(|d| d.master = false),
            Action::Reannounce => g.desired.send_modify(|d| d.announce += 1),
        }
    }
}

async fn poll_links(netlink: &Netlink, ifaces: &[Iface], groups: &mut [GroupRt]) {
    let mut carrier: BTreeMap<String, bool> = BTreeMap::new();
    for g in groups.iter() {
        for name in &g.links {
            if !carrier.contains_key(name) {
                let ok = match netlink.link(name).await {
                    Ok(l) => l.up && l.running,
                    Err(_) => false,
                };
                carrier.insert(name.clone(), ok);
            }
        }
    }
    let now = Instant::now();
    for g in groups.iter_mut() {
        let ok = g
            .links
            .iter()
            .all(|n| carrier.get(n).copied().unwrap_or(false));
        if ok == g.link_ok {
            continue;
        }
        g.link_ok = ok;
        let out = if ok {
            info!(group = %g.name, links = ?g.links, "link up");
            g.fsm.link_up(now)
        } else {
            warn!(group = %g.name, links = ?g.links, "link down (no carrier or interface down)");
            g.fsm.link_down(now)
        };
        execute(ifaces, g, out).await;
    }
}
