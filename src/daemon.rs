//! `ipfail daemon`: the one event loop around the per-group state machines.
//!
//! Inputs: CARP datagrams (one raw socket per CARP interface, read by a small
//! task each), the machines' deadlines, link carrier (kernel link events), commands from
//! the control socket (demote, promote, reload), SIGTERM/SIGINT.
//! Outputs: adverts on the wire, wishes to each group's IP task (`ipmgr`)
//! and a snapshot of the state for `ipfail status`. The loop itself never
//! waits on address work, probes or clients: the control socket is served
//! on a thread of its own (`control::server`), which reads the newest
//! snapshot and hands commands to the loop through a channel.
//!
//! - `apply`: configuration -> running groups, at start and on reload;
//! - `commands`: demote, promote and reload requests;
//! - `snapshot`: what `ipfail status` shows.

mod apply;
mod commands;
pub mod driver;
pub(crate) mod snapshot;

use crate::carp::ipv4::{classify_v4, split_ipv4, Reject};
use crate::carp::ipv6::classify_v6;
use crate::carp::packet::Advert;
use crate::config::{Config, Group};
use crate::control::server as control_server;
use crate::ipmgr::{Desired, GroupIpStatus, IpPlan};
use crate::ipplan::IpState;
use crate::sys::linux::{
    missing_capabilities, CarpSocket, CarpSocket6, LinkInfo, NetEvent, NetEvents, Netlink, SysError,
};
use driver::{Event, GroupDriver};
use snapshot::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// How long a stop waits for the IP tasks to remove their addresses.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// At most one log line per (interface, reject class) in this period.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Counters reach the status snapshot at least this often; state changes
/// and commands publish at once.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("missing privileges: {} (run as root or grant them, e.g. AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)", .0.join(", "))]
    Privileges(Vec<&'static str>),
    #[error("{}: no group has a `vhid`: nothing for the daemon to elect (sections without vhid are for `ipfail hook`)", .0)]
    NoCarpGroups(String),
    #[error("[{group}]: interface {iface} has no IPv4 address to send adverts from; set `source`")]
    NoSource { group: String, iface: String },
    #[error("[{group}]: the group has IPv6 addresses, so it also advertises to ff02::12 (as FreeBSD does), but interface {iface} has no IPv6 link-local address to send from; enable IPv6 on it (sysctl net.ipv6.conf.{iface}.disable_ipv6=0, addr_gen_mode not none) or give it an fe80:: address")]
    NoLinkLocal { group: String, iface: String },
    #[error("[{group}]: {source}")]
    Group { group: String, source: SysError },
    #[error("metrics_listen {addr}: {source} (is another program using it? change metrics_listen or remove it)")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Control(#[from] control_server::ControlError),
    #[error("{0} (it lists the groups `ipfail demote` took out of service; fix or remove it)")]
    State(#[from] crate::state::StateError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Fatal(String),
    #[error("refusing to start, nothing touched: {0}")]
    Host(#[from] crate::config::host::HostRefusal),
}

/// A datagram from a reader task.
enum Rx {
    /// From the IPv4 socket: the whole datagram, IPv4 header included.
    V4(Vec<u8>),
    /// From the IPv6 socket: the CARP payload, its source and hop limit.
    V6 {
        src: Ipv6Addr,
        hop_limit: Option<u8>,
        payload: Vec<u8>,
    },
}

/// The IPv6 side of a CARP interface, opened when a group on it has IPv6
/// addresses (`docs/design.md` §4.7).
struct Iface6 {
    sock: Arc<CarpSocket6>,
    /// The interface's link-local address when the socket was opened: the
    /// source the kernel picks for ff02::12, so an advert from it is an
    /// address clash, as for IPv4.
    source: Ipv6Addr,
    reader: JoinHandle<()>,
}

impl Drop for Iface6 {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Does `g` advertise on IPv6 too? Yes when its `ips` or `hmac_addrs`
/// hold an IPv6 address: FreeBSD sends a vhid's adverts on each family it
/// has addresses of (`carp_send_ad_locked`) and a FreeBSD backup of such
/// a vhid times out its IPv6 side without them (`carp_setrun` keeps one
/// master-down timer per family).
pub(crate) fn wants_v6(g: &Group) -> bool {
    g.ips.iter().any(|n| n.addr.is_ipv6())
        || g.carp
            .as_ref()
            .is_some_and(|c| c.hmac_addrs.iter().any(IpAddr::is_ipv6))
}

/// One CARP interface: its sockets and the groups advertising on it.
struct Iface {
    name: String,
    sock: Arc<CarpSocket>,
    /// The IPv6 socket, if a group on the interface has IPv6 addresses.
    v6: Option<Iface6>,
    source: Ipv4Addr,
    /// `source` as configured (`None`: the NIC's first IPv4 address); a
    /// reload that changes it opens a new socket.
    configured_source: Option<Ipv4Addr>,
    /// Indices into `Daemon::groups`.
    groups: Vec<usize>,
    /// Rejected datagrams that belong to no group (e.g. unknown vhid).
    rejected: BTreeMap<&'static str, u64>,
    /// Every CARP speaker heard here (any vhid, authentic or not), to name
    /// who answers for a conflicting IP (docs/design.md §6.13).
    peers: crate::conflict::CarpPeers,
    /// Their addresses, for the IP tasks of the groups on this interface.
    peers_tx: watch::Sender<Vec<IpAddr>>,
    last_reject_log: BTreeMap<&'static str, Instant>,
    reader: JoinHandle<()>,
}

impl Drop for Iface {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct GroupRt {
    /// The group's section as applied; a reload compares against it.
    cfg: Group,
    /// Stable id: the IP task's release reports name it.
    id: u64,
    /// The election, without I/O.
    driver: GroupDriver,
    /// Key of `Daemon::ifaces`.
    iface: u64,
    /// Interfaces whose carrier the group needs: the CARP one and the IP one.
    links: Vec<String>,
    desired: watch::Sender<Desired>,
    plan: watch::Sender<IpPlan>,
    task: Option<JoinHandle<()>>,
    /// Forwards the IP task's release reports to the loop.
    forward: JoinHandle<()>,
    ip_status: Arc<Mutex<GroupIpStatus>>,
    /// Operator requests for the IP task (`ipfail takeover`).
    ip_cmds: mpsc::Sender<crate::ipmgr::IpCmd>,
    /// Runs the group's `notify` script on transitions.
    notifier: Option<crate::notify::Notifier>,
}

impl Drop for GroupRt {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

/// Everything the loop owns.
struct Daemon {
    netlink: Netlink,
    /// Link and address changes from the kernel (no polling).
    events: NetEvents,
    /// Carrier (up and running) of every interface, by name, kept current
    /// by link events; the loop reads it without asking the kernel.
    carrier: BTreeMap<String, bool>,
    /// Interface names by index, for link deletions.
    link_names: BTreeMap<u32, String>,
    /// The configuration applied last.
    config: Config,
    ifaces: BTreeMap<u64, Iface>,
    /// Groups with a vhid, in file order.
    groups: Vec<GroupRt>,
    next_id: u64,
    /// The IP tasks' reports "release of epoch E done", by group id.
    released_tx: mpsc::UnboundedSender<(u64, u64)>,
    /// The running health checks; their outcomes come to the loop.
    checks: crate::health::Checks,
    /// For the readers of interfaces a reload adds. Weak, so that the loop
    /// still sees the channel close when every reader has stopped.
    rx_tx: mpsc::WeakSender<(u64, Rx)>,
    /// The lock files of the groups with a vhid (`ipfail hook` stays away).
    group_locks: Arc<Mutex<crate::lockfile::DaemonLocks>>,
    /// A reload is being prepared off the loop (one at a time).
    reloading: bool,
    reload_tx: mpsc::UnboundedSender<commands::ReloadDone>,
    /// Groups the operator demoted; the control thread persists the list.
    demoted: BTreeSet<String>,
    /// Control socket and state directory as bound at start (a reload
    /// cannot move them).
    socket: PathBuf,
    state_dir: PathBuf,
    started: SystemTime,
    started_at: Instant,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    /// Probe durations by group, for the metrics endpoint.
    probe_seconds: crate::metrics::ProbeSeconds,
    /// Something changed since the last snapshot; `urgent`: a state changed.
    dirty: bool,
    urgent: bool,
    published: Instant,
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
    // SIGHUP's default action ends the process. Registering a handler now
    // (tokio keeps it for the process's life) makes an early `systemctl
    // reload` harmless; the control thread listens for it later.
    drop(signal(SignalKind::hangup()));
    let carp_groups: Vec<&Group> = config.groups.iter().filter(|g| g.carp.is_some()).collect();
    if carp_groups.is_empty() {
        return Err(DaemonError::NoCarpGroups(config.path.display().to_string()));
    }
    let missing = missing_capabilities();
    if !missing.is_empty() {
        return Err(DaemonError::Privileges(missing));
    }
    // Before anything is bound or touched: a file that does not fit this
    // host (e.g. the host's own address as a floating IP) is refused
    // (docs/safety.md, "Only our own addresses").
    crate::config::host::check_before_start(&config).await?;
    // First, so that a second daemon says so and touches nothing.
    let listener = control_server::bind(&config.global)?;
    let metrics = match config.global.metrics_listen {
        Some(addr) => {
            let bound = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| DaemonError::Metrics { addr, source })?;
            Some(bound)
        }
        None => None,
    };
    // Hold every elected group's lock file for the daemon's whole life, so
    // `ipfail hook` leaves these groups alone (src/lockfile.rs).
    let group_locks = crate::lockfile::hold_for_daemon(&config).map_err(|e| SysError::Io {
        op: "taking the group locks",
        source: std::io::Error::other(e),
    })?;
    let netlink = Netlink::new()?;
    // Subscribe before the first reads, so no change falls in between.
    let events = NetEvents::subscribe()?;
    let mut link_events = events.listen();
    let demoted = crate::state::load_demoted(&config.global.state_dir)?;
    let started = (SystemTime::now(), Instant::now());
    let socket = config.global.control_socket.clone();
    let state_dir = config.global.state_dir.clone();
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::empty(
        config.path.clone(),
        socket.clone(),
        state_dir.clone(),
        started,
    )));
    let (rx_tx, mut rx) = mpsc::channel::<(u64, Rx)>(1024);
    let (released_tx, mut released_rx) = mpsc::unbounded_channel::<(u64, u64)>();
    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel();
    let (check_tx, mut check_rx) = mpsc::unbounded_channel();
    let mut d = Daemon {
        checks: crate::health::Checks::new(check_tx),
        released_tx,
        reloading: false,
        reload_tx,
        netlink,
        events,
        carrier: BTreeMap::new(),
        link_names: BTreeMap::new(),
        config: config.clone(),
        ifaces: BTreeMap::new(),
        groups: Vec::new(),
        next_id: 0,
        rx_tx: rx_tx.downgrade(),
        group_locks: Arc::new(Mutex::new(group_locks)),
        demoted,
        socket,
        state_dir,
        started: started.0,
        started_at: started.1,
        snap_tx,
        probe_seconds: crate::metrics::probe_seconds(),
        dirty: true,
        urgent: true,
        published: started.1,
    };
    d.apply_config(config).await?;
    let links = d.netlink.links().await?;
    d.links_read(links);
    d.apply_links().await;
    // From here on only the readers hold the channel open.
    drop(rx_tx);
    d.publish(true);
    let (cmd_tx, mut cmd_rx) = mpsc::channel(16);
    let control = control_server::spawn(
        listener,
        control_server::Ctx {
            snapshot: snap_rx,
            cmds: cmd_tx,
            config: d.config.path.clone(),
            metrics,
        },
    )?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| SysError::Io {
        op: "installing the SIGTERM handler",
        source: e,
    })?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| SysError::Io {
        op: "installing the SIGINT handler",
        source: e,
    })?;
    // Link dumps after an event overrun come back here, read off the loop.
    let (resync_tx, mut resync_rx) = mpsc::channel::<Vec<LinkInfo>>(4);
    let mut cmd_open = true;
    info!(groups = d.groups.len(), control_socket = %d.socket.display(), "ipfail daemon started");
    // systemd: ready now (sockets open, first states known); the watchdog is fed by this loop.
    let sd = crate::sys::linux::sd::Notifier::from_env();
    sd.ready(format!("{} group(s)", d.groups.len()));
    let mut keepalive =
        tokio::time::interval(sd.keepalive_every().unwrap_or(Duration::from_secs(3600)));

    let stop = loop {
        let next = d
            .groups
            .iter()
            .filter_map(|g| g.driver.next_deadline())
            .min();
        // Unpublished changes (counters, a follower's new master) reach the
        // snapshot within PUBLISH_EVERY even when nothing else wakes us.
        let publish_at = d.dirty.then_some(d.published + PUBLISH_EVERY);
        let sleep_to = next
            .into_iter()
            .chain(publish_at)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            msg = rx.recv() => match msg {
                Some((i, datagram)) => d.on_datagram(i, datagram).await,
                None => {
                    error!("every CARP socket reader stopped; exiting");
                    break Err("every CARP socket reader stopped");
                }
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_to)) => {
                d.on_timeouts().await;
            }
            ev = link_events.next() => match ev {
                Some(NetEvent::Link(l)) => d.link_changed(l).await,
                Some(NetEvent::LinkGone { index }) => d.link_gone(index).await,
                Some(NetEvent::Overrun) => {
                    warn!("link events were lost (netlink overrun): reading every link again");
                    let (netlink, tx) = (d.netlink.clone(), resync_tx.clone());
                    tokio::spawn(async move {
                        match netlink.links().await {
                            Ok(links) => { let _ = tx.send(links).await; }
                            Err(e) => error!("reading the links after an overrun: {e}"),
                        }
                    });
                }
                Some(NetEvent::Addr { .. }) => {}
                Some(NetEvent::Closed) | None => {
                    error!("the kernel's link events stopped; exiting so that a supervisor restarts us");
                    break Err("the kernel's link events stopped");
                }
            },
            Some((id, epoch)) = released_rx.recv() => d.on_released(id, epoch).await,
            Some(done) = reload_rx.recv() => d.finish_reload(done).await,
            Some((id, outcome)) = check_rx.recv() => d.on_check(id, outcome).await,
            Some(links) = resync_rx.recv() => {
                d.links_read(links);
                d.apply_links().await;
            }
            cmd = cmd_rx.recv(), if cmd_open => match cmd {
                Some(cmd) => d.on_command(cmd).await,
                None => {
                    error!("the control socket thread stopped: ipfail status, demote, promote and reload are unavailable");
                    cmd_open = false;
                }
            },
            _ = keepalive.tick(), if sd.keepalive_every().is_some() => sd.alive(),
            _ = sigterm.recv() => break Ok("SIGTERM"),
            _ = sigint.recv() => break Ok("SIGINT"),
        }
        d.publish(false);
    };

    let why = match stop {
        Ok(signal) => signal,
        Err(why) => why,
    };
    info!("{why}: stopping; masters bow out and every group's IPs are removed");
    sd.stopping();
    // No more clients: the socket file goes now, so `ipfail status` says
    // the daemon is not running rather than hanging.
    control.stop();
    d.stop(&mut released_rx).await;
    // A failure exits non-zero, so a supervisor restarts us.
    stop.map(|_| ())
        .map_err(|why| DaemonError::Fatal(why.to_string()))
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

async fn read_adverts(id: u64, sock: Arc<CarpSocket>, tx: mpsc::Sender<(u64, Rx)>) {
    let mut buf = vec![0u8; 2048];
    let mut errors = 0u32;
    loop {
        match sock.recv(&mut buf).await {
            Ok(n) => {
                errors = 0;
                let data = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send((id, Rx::V4(data))).await.is_err() {
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

/// The IPv6 twin of [`read_adverts`]: forwards what the IPv6 CARP socket
/// receives, with its source and hop limit.
async fn read_adverts6(id: u64, sock: Arc<CarpSocket6>, tx: mpsc::Sender<(u64, Rx)>) {
    let mut buf = vec![0u8; 2048];
    let mut errors = 0u32;
    loop {
        match sock.recv(&mut buf).await {
            Ok(got) => {
                errors = 0;
                let payload = buf.get(..got.len).unwrap_or_default().to_vec();
                let rx = Rx::V6 {
                    src: got.src,
                    hop_limit: got.hop_limit,
                    payload,
                };
                if tx.send((id, rx)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                errors += 1;
                warn!("receiving IPv6 CARP datagrams: {e}");
                if errors > 100 {
                    error!("too many receive errors in a row; giving this IPv6 socket up");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A classified datagram: sender, advert and which of the group's keys
/// verified it (0: the current one; more: a previous address list,
/// docs/safety.md §10), or why it was rejected.
type Classified = Result<(IpAddr, Advert, usize), Reject>;

impl Daemon {
    async fn on_datagram(&mut self, id: u64, datagram: Rx) {
        let Some(iface) = self.ifaces.get_mut(&id) else {
            return;
        };
        self.dirty = true;
        let groups = &mut self.groups;
        // Both families classify alike (`docs/design.md` §4.8) and end in
        // (sender, advert) or a reject; an IPv6 advert reaches the driver
        // with its IPv6 source (`docs/interop.md`, "Both families").
        let (result, from): (Classified, Option<IpAddr>) = {
            let groups_ref = &*groups;
            let members = &iface.groups;
            let key_for = |vhid: u8| {
                members
                    .iter()
                    .filter_map(|&gi| groups_ref.get(gi))
                    .find(|g| g.driver.vhid() == vhid)
                    .map(|g| g.driver.accepted_keys())
            };
            match &datagram {
                Rx::V4(buf) => (
                    classify_v4(buf, &[iface.source], key_for)
                        .map(|r| (IpAddr::V4(r.src), r.advert, r.key)),
                    split_ipv4(buf).ok().map(|(meta, _)| IpAddr::V4(meta.src)),
                ),
                Rx::V6 {
                    src,
                    hop_limit,
                    payload,
                } => {
                    let own = iface
                        .v6
                        .as_ref()
                        .map_or(&[][..], |v| std::slice::from_ref(&v.source));
                    (
                        classify_v6(*src, *hop_limit, payload, own, key_for)
                            .map(|r| (IpAddr::V6(r.src), r.advert, r.key)),
                        Some(IpAddr::V6(*src)),
                    )
                }
            }
        };
        let now = Instant::now();
        let heard = match (&result, from) {
            (Ok((src, advert, _)), _) => Some((*src, advert.vhid)),
            (Err(Reject::AuthFailed { vhid, .. } | Reject::BadAdvbase { vhid }), Some(src))
            | (Err(Reject::UnknownVhid(vhid)), Some(src)) => Some((src, *vhid)),
            _ => None,
        };
        if let Some((src, vhid)) = heard {
            if iface.peers.heard(now, src, vhid) {
                iface.peers_tx.send_replace(iface.peers.addresses());
            }
        }
        let owner_of = |vhid: u8, groups: &[GroupRt]| {
            iface
                .groups
                .iter()
                .copied()
                .find(|&gi| groups.get(gi).is_some_and(|g| g.driver.vhid() == vhid))
        };
        match result {
            Ok((src, advert, key)) => {
                let Some(g) = owner_of(advert.vhid, groups).and_then(|gi| groups.get_mut(gi))
                else {
                    return;
                };
                debug!(group = %g.cfg.name, %src, advbase = advert.advbase, advskew = advert.advskew, "advert");
                g.driver
                    .handle_advert_keyed(now, src, advert.advbase, advert.advskew, key);
                if flush(&self.ifaces, g).await {
                    self.urgent = true;
                }
            }
            Err(reject) => {
                let class = reject.class();
                // Auth failures belong to the group with that vhid; the rest to the NIC.
                let owner = match &reject {
                    Reject::AuthFailed { vhid, .. }
                    | Reject::AddressClash { vhid }
                    | Reject::BadAdvbase { vhid } => owner_of(*vhid, groups),
                    _ => None,
                };
                match owner.and_then(|gi| groups.get_mut(gi)) {
                    Some(g) => g.driver.handle_reject(now, &reject, from),
                    None => *iface.rejected.entry(class.name()).or_default() += 1,
                }
                let due = iface
                    .last_reject_log
                    .get(class.name())
                    .is_none_or(|t| now.saturating_duration_since(*t) >= REJECT_LOG_EVERY);
                if due {
                    iface.last_reject_log.insert(class.name(), now);
                    let group = owner
                        .and_then(|gi| groups.get(gi))
                        .map_or("-", |g| g.cfg.name.as_str());
                    let from = from.map_or_else(|| "?".to_string(), |f| f.to_string());
                    warn!(dev = %iface.name, group, class = class.name(), %from, "rejected CARP datagram: {reject} (logged at most every {}s per class)", REJECT_LOG_EVERY.as_secs());
                }
            }
        }
    }

    async fn on_timeouts(&mut self) {
        let now = Instant::now();
        for g in self.groups.iter_mut() {
            if g.driver.next_deadline().is_none_or(|d| d > now) {
                continue;
            }
            g.driver.handle_timeout(now);
            self.dirty = true;
            if flush(&self.ifaces, g).await {
                self.urgent = true;
            }
        }
    }

    /// An outcome of health check `id`: to every group that lists it.
    async fn on_check(&mut self, id: usize, outcome: crate::health::Outcome) {
        let now = Instant::now();
        debug!(check = id, ok = outcome.ok, latency_ms = outcome.latency.as_millis() as u64, detail = %outcome.detail, "check");
        for g in self.groups.iter_mut() {
            if !g.driver.health().is_some_and(|h| h.ids().any(|i| i == id)) {
                continue;
            }
            g.driver.handle_check(now, id, &outcome);
            self.dirty = true;
            if flush(&self.ifaces, g).await {
                self.urgent = true;
            }
        }
    }

    /// The IP task of group `id` finished releasing mastership `epoch`.
    async fn on_released(&mut self, id: u64, epoch: u64) {
        if let Some(g) = self.groups.iter_mut().find(|g| g.id == id) {
            g.driver.handle_released(epoch);
            flush(&self.ifaces, g).await;
        }
    }

    /// A full read of the links (at start and after an overrun).
    fn links_read(&mut self, links: Vec<LinkInfo>) {
        self.carrier.clear();
        self.link_names.clear();
        for l in links {
            self.carrier.insert(l.name.clone(), l.up && l.running);
            self.link_names.insert(l.index, l.name);
        }
    }

    async fn link_changed(&mut self, l: LinkInfo) {
        let ok = l.up && l.running;
        // A rename leaves the old name without carrier.
        if let Some(old) = self.link_names.insert(l.index, l.name.clone()) {
            if old != l.name {
                self.carrier.remove(&old);
            }
        }
        if self.carrier.insert(l.name, ok) != Some(ok) {
            self.apply_links().await;
        }
    }

    async fn link_gone(&mut self, index: u32) {
        if let Some(name) = self.link_names.remove(&index) {
            self.carrier.remove(&name);
            self.apply_links().await;
        }
    }

    /// Starts, stops or restarts each group's election as its links'
    /// carrier says (the driver ignores what did not change).
    async fn apply_links(&mut self) {
        let now = Instant::now();
        for g in self.groups.iter_mut() {
            let ok = g
                .links
                .iter()
                .all(|n| self.carrier.get(n).copied().unwrap_or(false));
            let held = g.ip_status.lock().is_ok_and(|st| {
                g.cfg
                    .ips
                    .iter()
                    .all(|n| st.ips.get(&n.addr) == Some(&IpState::Held))
            });
            g.driver.set_ips_held(held);
            g.driver.handle_link(now, ok);
            self.dirty = true;
            if flush(&self.ifaces, g).await {
                self.urgent = true;
            }
        }
    }

    /// Graceful stop: every group's IPs go, then masters bow out (the
    /// driver holds the bow-out until the IP task reports the IPs gone: a
    /// peer that takes over on it must find them silent).
    async fn stop(&mut self, released: &mut mpsc::UnboundedReceiver<(u64, u64)>) {
        let now = Instant::now();
        for g in self.groups.iter_mut() {
            g.driver.shutdown(now);
            flush(&self.ifaces, g).await;
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while self.groups.iter().any(|g| g.driver.is_holding()) {
            let next = self
                .groups
                .iter()
                .filter_map(|g| g.driver.next_deadline())
                .min()
                .map_or(deadline, tokio::time::Instant::from_std);
            tokio::select! {
                Some((id, epoch)) = released.recv() => self.on_released(id, epoch).await,
                _ = tokio::time::sleep_until(next.min(deadline)) => {
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    self.on_timeouts().await;
                }
            }
        }
        for g in self.groups.iter_mut() {
            if let Some(task) = g.task.take() {
                if tokio::time::timeout_at(deadline, task).await.is_err() {
                    error!(group = %g.cfg.name, "IP removal did not finish in time; check the interface by hand");
                }
            }
            let (garps, conflicts) = g
                .ip_status
                .lock()
                .map_or((0, 0), |s| (s.garps_sent, s.conflicts));
            let st = g.driver.stats();
            info!(
                group = %g.cfg.name, sent = st.adverts_sent, received = st.adverts_received,
                transitions = st.transitions, garps, conflicts, "stopped"
            );
        }
        // Dropping the interfaces stops their readers.
        self.ifaces.clear();
    }

    /// Publishes a new snapshot for `ipfail status` if something changed:
    /// at once after a state change, else at most every [`PUBLISH_EVERY`].
    fn publish(&mut self, force: bool) {
        let due = self.urgent || self.published.elapsed() >= PUBLISH_EVERY;
        if !(force || self.dirty && due) {
            return;
        }
        self.snap_tx.send_replace(Arc::new(self.snapshot()));
        self.dirty = false;
        self.urgent = false;
        self.published = Instant::now();
    }
}

/// Carries out what a group's driver decided: logs its events, sends its
/// adverts, hands its wish to the IP task. Returns whether the state
/// changed.
async fn flush(ifaces: &BTreeMap<u64, Iface>, g: &mut GroupRt) -> bool {
    let mut transitioned = false;
    let name = &g.cfg.name;
    let vhid = g.driver.vhid();
    while let Some(event) = g.driver.poll_event() {
        match event {
            Event::Transition { from, to, reason } => {
                transitioned = true;
                info!(group = %name, vhid, "{from} -> {to}: {reason}");
                if let Some(n) = &g.notifier {
                    n.notify(crate::notify::Job {
                        group: name.clone(),
                        vhid,
                        old: from.name().to_string(),
                        new: to.name().to_string(),
                        reason: reason.to_string(),
                        ips: g.cfg.ips.iter().map(|n| n.addr.to_string()).collect(),
                    });
                }
            }
            Event::Link { up: true } => info!(group = %name, links = ?g.links, "link up"),
            Event::Link { up: false } => {
                warn!(group = %name, links = ?g.links, "link down (no carrier or interface down)")
            }
            Event::Resuming => info!(group = %name,
                "our own leased IPs are on the NIC: resuming as master (a better master's advert sends us back to backup)"),
            Event::Tie {
                peer,
                advbase,
                advskew,
            } => warn!(group = %name, %peer, advbase, advskew,
                "exact tie: {peer} advertises the same advbase and advskew as we do; the smaller address read little-endian wins (UCarp's rule, docs/interop.md); give the hosts different advskew (logged at most every {} s per peer)",
                driver::TIE_LOG_EVERY.as_secs()),
            Event::Health {
                healthy: false,
                check,
                detail,
            } => warn!(group = %name, %check,
                "unhealthy: {check} failed ({detail}); advertising as least preferred so a healthy peer takes over"),
            Event::Health {
                healthy: true,
                check,
                detail,
            } => info!(group = %name, %check,
                "healthy ({check}: {detail}); advertising our own advbase/advskew"),
            Event::Hold { hold } if hold.released() => warn!(group = %name, "{hold}"),
            Event::Hold { hold } => info!(group = %name, "{hold}"),
            Event::Damping {
                change: c @ driver::Damping::Trusted,
            } => info!(group = %name, "{c}"),
            Event::Damping { change } => warn!(group = %name, "{change}"),
            Event::ReleaseLate => warn!(group = %name,
                "IPs not removed within {:?}; sent the advert anyway", driver::RELEASE_WAIT),
            Event::PeerOnPreviousList { peer } => warn!(group = %name, %peer,
                "{peer} signs its adverts with our previous address list: accepted for {} min after our reload (docs/safety.md §10); reload it too",
                driver::PREVIOUS_LIST_ACCEPTED.as_secs() / 60),
            Event::PeerOnCurrentList { peer } => info!(group = %name, %peer,
                "{peer} now signs its adverts with our current address list"),
            Event::SigningCurrentList => info!(group = %name,
                "our adverts are signed with the current address list from now on ({} min after the reload)",
                driver::PREVIOUS_LIST_SIGNED.as_secs() / 60),
        }
    }
    if let Some(iface) = ifaces.get(&g.iface) {
        // A group with IPv6 addresses sends every advert on both families,
        // the same 36 bytes (`docs/design.md` §4.7).
        let v6 = iface.v6.as_ref().filter(|_| wants_v6(&g.cfg));
        while let Some(advert) = g.driver.poll_transmit() {
            if let Err(e) = iface.sock.send(&advert).await {
                crate::warn_limited!({ group = %name, dev = %iface.name, }, "sending advert: {e}");
            }
            if let Some(v6) = v6 {
                if let Err(e) = v6.sock.send(&advert).await {
                    crate::warn_limited!({ group = %name, dev = %iface.name, }, "sending IPv6 advert: {e}");
                }
            }
        }
    }
    let wish = g.driver.wish();
    g.desired.send_if_modified(|d| {
        let changed = *d != wish;
        *d = wish;
        changed
    });
    transitioned
}
