//! What the election loop publishes for `ipfail status`: a copy of its
//! state with raw instants, turned into the status document (ages, Unix
//! times) only when a client asks. The loop never waits for a client: it
//! replaces the snapshot in a `watch` channel, and the control thread reads
//! the newest one. IP states are read live from the IP tasks' shared status.

use super::driver::{AuthFailure, LinkSnap, PreviousLists, TieSeen};
use super::{Daemon, GroupRt, Iface};
use crate::carp::fsm::{master_down_interval, State};
use crate::carp::ipv4::RejectClass;
use crate::carp::packet::AuthDiagnosis;
use crate::config::IpNet;
use crate::conflict::{diagnose, mac_text, CarpPeers};
use crate::control::schema::{
    secs, AuthStatus, Counters, DaemonInfo, GroupStatus, InterfaceStatus, IpEvent, IpStatus,
    MasterStatus, PreviousListPeerStatus, PreviousListStatus, Status, TieStatus,
};
use crate::control::schema::{AnswerStatus, PeerStatus, TakeoverStatus};
use crate::control::schema::{CheckStatus, HealthStatus};
use crate::control::VERSION;
use crate::health::GroupHealth;
use crate::ipmgr::{GroupIpStatus, IpState};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Transitions within this window count as flapping (`flaps_recent`).
pub(crate) const FLAP_WINDOW: Duration = Duration::from_secs(300);
pub(crate) struct Snapshot {
    pub pid: u32,
    pub started: SystemTime,
    pub started_at: Instant,
    pub config: PathBuf,
    pub control_socket: PathBuf,
    pub state_dir: PathBuf,
    /// Every section of the running configuration and whether it has a
    /// vhid, to check the group names of control requests.
    pub sections: Vec<(String, bool)>,
    pub groups: Vec<GroupSnap>,
    pub interfaces: Vec<IfaceSnap>,
    /// Probe durations by group (shared with the IP tasks).
    pub probe_seconds: crate::metrics::ProbeSeconds,
}

pub(crate) struct GroupSnap {
    name: String,
    vhid: u8,
    state: State,
    since: Instant,
    reason: String,
    advbase: u8,
    advskew: u8,
    preempt: bool,
    demoted: bool,
    interface: String,
    carp_interface: String,
    source: Ipv4Addr,
    master: Option<MasterSnap>,
    master_down_at: Option<Instant>,
    ips: Vec<IpNet>,
    ip_status: Arc<Mutex<GroupIpStatus>>,
    adverts_sent: u64,
    adverts_received: u64,
    transitions: u64,
    rejected: BTreeMap<&'static str, u64>,
    by_reason: BTreeMap<&'static str, u64>,
    auth: Option<AuthFailure>,
    transitions_at: Vec<Instant>,
    ties: Vec<(IpAddr, TieSeen)>,
    health: Option<GroupHealth>,
    /// The CARP speakers heard on the group's CARP interface.
    peers: CarpPeers,
    master_down: Duration,
    adverts_previous_list: u64,
    previous: PreviousLists,
    link: LinkSnap,
}

struct MasterSnap {
    address: IpAddr,
    advbase: u8,
    advskew: u8,
    at: Instant,
    this_host: bool,
}

pub(crate) struct IfaceSnap {
    name: String,
    source: Ipv4Addr,
    rejected: BTreeMap<&'static str, u64>,
}

impl Snapshot {
    /// The snapshot of a daemon that has no groups yet.
    pub fn empty(
        config: PathBuf,
        control_socket: PathBuf,
        state_dir: PathBuf,
        started: (SystemTime, Instant),
    ) -> Snapshot {
        Snapshot {
            pid: std::process::id(),
            started: started.0,
            started_at: started.1,
            config,
            control_socket,
            state_dir,
            sections: Vec::new(),
            groups: Vec::new(),
            interfaces: Vec::new(),
            probe_seconds: crate::metrics::probe_seconds(),
        }
    }

    /// Groups with a vhid, by name.
    pub fn carp_group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// The status document as of `now` (`wall` is the same instant).
    pub fn to_status(&self, now: Instant, wall: SystemTime) -> Status {
        let unix = |at: Instant| {
            let ago = now.saturating_duration_since(at);
            wall.checked_sub(ago)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        };
        Status {
            v: VERSION,
            daemon: DaemonInfo {
                pid: self.pid,
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_unix: self
                    .started
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                uptime_secs: secs(now.saturating_duration_since(self.started_at)),
                config: self.config.display().to_string(),
                control_socket: self.control_socket.display().to_string(),
            },
            groups: self
                .groups
                .iter()
                .map(|g| g.to_status(now, unix(g.since), &unix))
                .collect(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| InterfaceStatus {
                    name: i.name.clone(),
                    source: i.source.to_string(),
                    rejected: all_classes(&i.rejected),
                })
                .collect(),
        }
    }
}

/// Every reject class, zero when not seen: a stable set of keys.
fn all_classes(seen: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    RejectClass::ALL
        .iter()
        .map(|c| {
            (
                c.name().to_string(),
                seen.get(c.name()).copied().unwrap_or(0),
            )
        })
        .collect()
}

impl GroupSnap {
    fn to_status(
        &self,
        now: Instant,
        since_unix: u64,
        unix: &dyn Fn(Instant) -> u64,
    ) -> GroupStatus {
        let (ip_states, garps_sent, conflicts, ips_lost, last_event, answers, force, probes) =
            match self.ip_status.lock() {
                Ok(s) => (
                    s.ips.clone(),
                    s.garps_sent,
                    s.conflicts,
                    s.lost,
                    s.last_event.clone(),
                    s.answers.clone(),
                    s.force.clone(),
                    s.probes.clone(),
                ),
                Err(_) => Default::default(),
            };
        let age = |t: SystemTime| secs(SystemTime::now().duration_since(t).unwrap_or_default());
        let ips = self
            .ips
            .iter()
            .map(|net| {
                let (state, detail) = match ip_states.get(&net.addr) {
                    Some(IpState::Held) => ("held", None),
                    Some(IpState::Absent) | None => ("absent", None),
                    Some(IpState::Probing) => ("probing", None),
                    Some(IpState::Conflict(who)) => ("conflict", Some(who.clone())),
                    Some(IpState::Failed(why)) => ("failed", Some(why.clone())),
                };
                let answered_by = (state == "conflict")
                    .then(|| answers.get(&net.addr))
                    .flatten()
                    .map(|(who, since)| {
                        let d = diagnose(
                            &self.name,
                            self.vhid,
                            net.addr,
                            who,
                            &self.peers,
                            now,
                            self.master_down,
                        );
                        AnswerStatus {
                            mac: who.mac.as_ref().map(mac_text),
                            ip: who.ip.map(|i| i.to_string()),
                            kind: d.kind.to_string(),
                            carp_peer: d.peer.map(|(address, vhids, age)| PeerStatus {
                                address: address.to_string(),
                                vhids,
                                last_advert_age_secs: (age * 1000.0).round() / 1000.0,
                            }),
                            since_secs: age(*since),
                            advice: d.advice,
                        }
                    });
                IpStatus {
                    ip: net.to_string(),
                    state: state.to_string(),
                    detail,
                    answered_by,
                }
            })
            .collect();
        let recent = self
            .transitions_at
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < FLAP_WINDOW)
            .count();
        GroupStatus {
            name: self.name.clone(),
            vhid: self.vhid,
            state: self.state.name().to_string(),
            since_unix,
            state_secs: secs(now.saturating_duration_since(self.since)),
            reason: self.reason.clone(),
            advbase: self.advbase,
            advskew: self.advskew,
            preempt: self.preempt,
            demoted: self.demoted,
            interface: self.interface.clone(),
            carp_interface: self.carp_interface.clone(),
            source: self.source.to_string(),
            master: self.master.as_ref().map(|m| MasterStatus {
                address: m.address.to_string(),
                advbase: m.advbase,
                advskew: m.advskew,
                age_secs: secs(now.saturating_duration_since(m.at)),
                this_host: m.this_host,
            }),
            master_down_in_secs: self
                .master_down_at
                .map(|at| secs(at.saturating_duration_since(now))),
            ips,
            health: self.health.as_ref().map(|h| health_status(h, now)),
            last_ip_event: last_event.map(|(what, at)| IpEvent {
                what,
                age_secs: secs(
                    std::time::SystemTime::now()
                        .duration_since(at)
                        .unwrap_or_default(),
                ),
            }),
            counters: Counters {
                adverts_sent: self.adverts_sent,
                adverts_received: self.adverts_received,
                transitions: self.transitions,
                conflicts,
                garps_sent,
                ips_lost,
                rejected: all_classes(&self.rejected),
                adverts_previous_list: self.adverts_previous_list,
                transitions_by_reason: self
                    .by_reason
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                probes: probes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
            auth: self.auth.as_ref().map(|a| AuthStatus {
                kind: match a.diagnosis {
                    AuthDiagnosis::PassDiffers => "pass_differs",
                    AuthDiagnosis::PassMatchesAddressesDiffer { .. } => "address_list_differs",
                }
                .to_string(),
                last_failure: a.diagnosis.to_string(),
                last_failure_from: a
                    .from
                    .map_or_else(|| "unknown".to_string(), |f| f.to_string()),
                last_failure_age_secs: secs(now.saturating_duration_since(a.at)),
            }),
            flaps_recent: u32::try_from(recent).unwrap_or(u32::MAX),
            ties: self
                .ties
                .iter()
                .map(|(peer, t)| TieStatus {
                    peer: peer.to_string(),
                    advbase: t.advbase,
                    advskew: t.advskew,
                    adverts: t.count,
                    last_age_secs: secs(now.saturating_duration_since(t.last)),
                })
                .collect(),
            takeover: force.map(|f| TakeoverStatus {
                since_secs: age(f.since),
                contested: f.contested.iter().map(IpAddr::to_string).collect(),
                last_claim_age_secs: f.last_claim.map(age),
                claims: f.claims,
            }),
            previous_list: self.previous_list(now, unix),
            link: Some(self.link.status(now)),
        }
    }

    fn previous_list(
        &self,
        now: Instant,
        unix: &dyn Fn(Instant) -> u64,
    ) -> Option<PreviousListStatus> {
        let p = &self.previous;
        let until = p.accepted_until?;
        Some(PreviousListStatus {
            accepted_for_secs: secs(until.saturating_duration_since(now)),
            signing_for_secs: p
                .signing_until
                .map_or(0.0, |t| secs(t.saturating_duration_since(now))),
            peers: p
                .peers
                .iter()
                .map(|(peer, s)| PreviousListPeerStatus {
                    peer: peer.to_string(),
                    since_unix: unix(s.since),
                    since_secs: secs(now.saturating_duration_since(s.since)),
                    last_age_secs: secs(now.saturating_duration_since(s.last)),
                    adverts: s.adverts,
                    addresses: s.addrs.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        })
    }
}

fn health_status(h: &GroupHealth, now: Instant) -> HealthStatus {
    HealthStatus {
        healthy: h.healthy(),
        pending: h.pending(),
        fall: h.fall,
        rise: h.rise,
        interval_secs: h.interval.as_secs_f64(),
        timeout_secs: h.timeout.as_secs_f64(),
        checks: h
            .checks
            .iter()
            .map(|c| {
                let last = c.judge.last();
                CheckStatus {
                    check: c.name.clone(),
                    state: if c.judge.pending() {
                        "pending"
                    } else if c.judge.healthy() {
                        "ok"
                    } else {
                        "failing"
                    }
                    .to_string(),
                    last_ok: last.map(|(o, _)| o.ok),
                    last_latency_ms: last.map(|(o, _)| o.latency.as_secs_f64() * 1000.0),
                    last_detail: last.map(|(o, _)| o.detail.clone()),
                    last_age_secs: last.map(|(_, at)| secs(now.saturating_duration_since(*at))),
                    since_change_secs: secs(now.saturating_duration_since(c.judge.changed_at())),
                }
            })
            .collect(),
    }
}

fn group_snap(g: &GroupRt, ifaces: &BTreeMap<u64, Iface>) -> GroupSnap {
    let fsm = g.driver.fsm();
    let stats = g.driver.stats();
    let cfg = fsm.config();
    let source = ifaces
        .get(&g.iface)
        .map_or(Ipv4Addr::UNSPECIFIED, |i| i.source);
    let master = match fsm.state() {
        State::Master => {
            let (advbase, advskew) = fsm.advertised();
            Some(MasterSnap {
                address: IpAddr::V4(source),
                advbase,
                advskew,
                at: g.driver.last_sent().unwrap_or(fsm.since()),
                this_host: true,
            })
        }
        State::Backup | State::Init => fsm.master_seen().map(|m| MasterSnap {
            address: m.advert.src,
            advbase: m.advert.advbase,
            advskew: m.advert.advskew,
            at: m.at,
            this_host: false,
        }),
    };
    GroupSnap {
        name: g.cfg.name.clone(),
        vhid: cfg.vhid,
        state: fsm.state(),
        since: fsm.since(),
        reason: fsm.reason().to_string(),
        advbase: cfg.advbase,
        advskew: cfg.advskew,
        preempt: cfg.preempt,
        demoted: g.driver.is_operator_demoted(),
        interface: g.cfg.interface.clone(),
        carp_interface: ifaces
            .get(&g.iface)
            .map_or_else(String::new, |i| i.name.clone()),
        source,
        master,
        master_down_at: (fsm.state() == State::Backup)
            .then(|| fsm.next_deadline())
            .flatten(),
        ips: g.cfg.ips.clone(),
        ip_status: g.ip_status.clone(),
        adverts_sent: stats.adverts_sent,
        adverts_received: stats.adverts_received,
        transitions: stats.transitions,
        rejected: stats.rejected.clone(),
        by_reason: stats.by_reason.clone(),
        auth: g.driver.auth().cloned(),
        transitions_at: g.driver.transitions_at().collect(),
        ties: stats.ties.iter().map(|(p, t)| (*p, t.clone())).collect(),
        health: g.driver.health().cloned(),
        peers: ifaces
            .get(&g.iface)
            .map(|i| i.peers.clone())
            .unwrap_or_default(),
        master_down: master_down_interval(cfg.advbase, cfg.advskew),
        adverts_previous_list: stats.adverts_previous_list,
        previous: g.driver.previous_lists(Instant::now()),
        link: g.driver.link().snap(g.driver.link_ok()),
    }
}

impl Daemon {
    /// The loop's state as a snapshot.
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            sections: self
                .config
                .groups
                .iter()
                .map(|g| (g.name.clone(), g.carp.is_some()))
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|g| group_snap(g, &self.ifaces))
                .collect(),
            interfaces: self
                .ifaces
                .values()
                .map(|i| IfaceSnap {
                    name: i.name.clone(),
                    source: i.source,
                    rejected: i.rejected.clone(),
                })
                .collect(),
            probe_seconds: self.probe_seconds.clone(),
            ..Snapshot::empty(
                self.config.path.clone(),
                self.socket.clone(),
                self.state_dir.clone(),
                (self.started, self.started_at),
            )
        }
    }
}
