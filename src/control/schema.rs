//! The status document: what `ipfail status --json` prints and the
//! `status` reply carries. Field names are stable (snake_case); new fields
//! may be added, none renamed or removed within protocol version 1.
//! Durations are seconds with millisecond precision; times are Unix seconds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub v: u64,
    pub daemon: DaemonInfo,
    /// Groups with a `vhid`, in file order.
    pub groups: Vec<GroupStatus>,
    /// The CARP interfaces, with datagrams rejected before a group was known.
    pub interfaces: Vec<InterfaceStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    /// ipfail version of the daemon.
    pub version: String,
    pub started_unix: u64,
    pub uptime_secs: f64,
    /// Configuration file the daemon runs (and reloads).
    pub config: String,
    pub control_socket: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub vhid: u8,
    /// `MASTER`, `BACKUP` or `INIT` (link down or not started).
    pub state: String,
    pub since_unix: u64,
    pub state_secs: f64,
    /// Why the current state was entered, e.g. `master down: no advert for 3.04 s`.
    pub reason: String,
    /// Configured values (a demoted group advertises 255/255 instead).
    pub advbase: u8,
    pub advskew: u8,
    pub preempt: bool,
    pub demoted: bool,
    /// NIC the IPs live on.
    pub interface: String,
    /// NIC the adverts go out on.
    pub carp_interface: String,
    /// Our advert source address.
    pub source: String,
    /// The master as last heard (this host when MASTER); null if none yet.
    pub master: Option<MasterStatus>,
    /// BACKUP: seconds until the master is declared down.
    pub master_down_in_secs: Option<f64>,
    /// Every configured IP, in file order.
    pub ips: Vec<IpStatus>,
    /// Health checks (`check` keys); null when the group has none.
    #[serde(default)]
    pub health: Option<HealthStatus>,
    /// The last held IP that disappeared from the interface (removed by
    /// someone, or its lease ran out), in words; null if none.
    #[serde(default)]
    pub last_ip_event: Option<IpEvent>,
    pub counters: Counters,
    /// The last advert for this vhid that failed authentication; null if none.
    pub auth: Option<AuthStatus>,
    /// State changes in the last 5 minutes, not counting the start.
    pub flaps_recent: u32,
    /// Peers that advertised exactly our advbase and advskew (an exact tie:
    /// the addresses decide, see docs/interop.md); empty if none.
    #[serde(default)]
    pub ties: Vec<TieStatus>,
    /// A forced takeover of the group's IPs; null if none.
    #[serde(default)]
    pub takeover: Option<TakeoverStatus>,
    /// Carrier of the group's links: losses, a master's hold through a
    /// short loss, damping of an unstable link (docs/design.md §5.7);
    /// null from a daemon that predates it.
    #[serde(default)]
    pub link: Option<LinkStatus>,
    /// After a reload that changed the group's address list (its HMAC
    /// key) but not its pass: the previous list's grace and the peers
    /// still signing with it (docs/safety.md §10); null when no previous
    /// list is accepted.
    #[serde(default)]
    pub previous_list: Option<PreviousListStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousListStatus {
    /// Seconds until adverts signed with the previous list are rejected.
    pub accepted_for_secs: f64,
    /// Seconds our own adverts stay signed with the previous list (so a
    /// peer not yet reloaded accepts them); 0 once they use the current one.
    pub signing_for_secs: f64,
    /// Peers whose adverts verify only with a previous list.
    pub peers: Vec<PreviousListPeerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousListPeerStatus {
    /// The peer's advert source address.
    pub peer: String,
    /// Its first such advert since our reload, Unix seconds, and how long ago.
    pub since_unix: u64,
    pub since_secs: f64,
    /// Seconds since its last such advert.
    pub last_age_secs: f64,
    pub adverts: u64,
    /// The address list its adverts are signed with.
    pub addresses: Vec<String>,
}

/// Carrier of a group's links (docs/design.md §5.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// Every link of the group has carrier.
    pub up: bool,
    /// Carrier losses since the daemon started.
    pub losses: u64,
    /// Losses within the last `window_secs`.
    pub losses_recent: u32,
    pub window_secs: f64,
    /// This many losses within the window make the link unstable.
    pub damp_losses: u32,
    /// Unstable: the group advertises as least preferred (255/255), so it
    /// never preempts, and as master it handed the group over; it still
    /// becomes master when nobody else advertises.
    pub damped: bool,
    /// Damped: seconds until the link is trusted again if it stays up
    /// without a loss; null when not damped or while the link is down.
    pub trusted_in_secs: Option<f64>,
    /// How long an unstable link must stay up without a loss.
    pub quiet_secs: f64,
    /// A master keeping the group through a carrier loss: seconds until
    /// it releases unless the carrier returns; null otherwise.
    pub hold_left_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TieStatus {
    /// The tying peer's advert source address.
    pub peer: String,
    /// What it advertised (our configured values).
    pub advbase: u8,
    pub advskew: u8,
    /// Tying adverts received from it since the daemon started.
    pub adverts: u64,
    /// Seconds since the last one.
    pub last_age_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterStatus {
    pub address: String,
    /// As advertised (255/255 from a demoted or stopping master).
    pub advbase: u8,
    pub advskew: u8,
    /// Seconds since its last advert (ours, when this host is master).
    pub age_secs: f64,
    pub this_host: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// Every check passes (`fall`/`rise` applied). An unhealthy group
    /// advertises itself as least preferred.
    pub healthy: bool,
    /// Some check has no verdict yet (fewer than `rise` successes since
    /// start): treated as unhealthy.
    pub pending: bool,
    pub fall: u32,
    pub rise: u32,
    pub interval_secs: f64,
    pub timeout_secs: f64,
    pub checks: Vec<CheckStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// As written: `http http://127.0.0.1:80/health`, `tcp ...`, `exec ...`.
    pub check: String,
    /// `ok`, `failing` or `pending`.
    pub state: String,
    /// The last run: passed, how long it took, what it said, how long ago.
    pub last_ok: Option<bool>,
    pub last_latency_ms: Option<f64>,
    pub last_detail: Option<String>,
    pub last_age_secs: Option<f64>,
    /// Seconds since the verdict last changed.
    pub since_change_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpEvent {
    pub what: String,
    pub age_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpStatus {
    /// `addr/prefix`.
    pub ip: String,
    /// `held`, `absent`, `probing`, `conflict` or `failed`.
    pub state: String,
    /// conflict: who answered (`answered ARP from MAC`, `answered neighbor
    /// solicitation from MAC`, `answered ping from ADDR`); failed: the error.
    pub detail: Option<String>,
    /// conflict: who answers and what to do; null otherwise.
    #[serde(default)]
    pub answered_by: Option<AnswerStatus>,
}

/// The host that still answers for one of our IPs (docs/design.md §6.13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerStatus {
    /// Its MAC; null when only ping answered.
    pub mac: Option<String>,
    /// Its own address when known (CARP advert source, ARP table, echo reply).
    pub ip: Option<String>,
    /// `carp_peer` (a CARP speaker heard within the master-down interval),
    /// `silent_carp_peer` (heard before, silent since), `virtual_mac` (a
    /// CARP/VRRP virtual MAC nobody advertises here) or `not_a_peer`.
    pub kind: String,
    /// The CARP peer this MAC belongs to; null if none.
    pub carp_peer: Option<PeerStatus>,
    /// Seconds since it started answering (as seen by our probes).
    pub since_secs: f64,
    /// What to do, in words.
    pub advice: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its advert source address.
    pub address: String,
    /// The vhids it advertised.
    pub vhids: Vec<u8>,
    /// Seconds since its last advert heard here.
    pub last_advert_age_secs: f64,
}

/// An operator's forced takeover (`ipfail takeover --despite-answers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakeoverStatus {
    pub since_secs: f64,
    /// IPs another host claimed at the last look (every second).
    pub contested: Vec<String>,
    /// Seconds since another host last claimed one; null if never.
    pub last_claim_age_secs: Option<f64>,
    /// Claims seen since the takeover began.
    pub claims: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    pub conflicts: u64,
    pub garps_sent: u64,
    /// Held IPs that disappeared from the interface and were taken back.
    #[serde(default)]
    pub ips_lost: u64,
    /// Rejected datagrams by class (`malformed`, `bad_ttl`, `bad_version`,
    /// `bad_type`, `bad_checksum`, `unknown_vhid`, `auth_failed`,
    /// `bad_advbase`: an authentic advert with advbase 0, `address_clash`:
    /// an advert from our own source address, so another host uses it); a
    /// group counts the ones that name its vhid.
    pub rejected: BTreeMap<String, u64>,
    /// Adverts (counted in `adverts_received`) that verified only with a
    /// previous address list of this group (docs/safety.md §10).
    #[serde(default)]
    pub adverts_previous_list: u64,
    /// State changes by reason (`master_down`, `bow_out`, `preempt`,
    /// `more_preferred`, `link_down`, `demoted`, `unhealthy`, ...).
    #[serde(default)]
    pub transitions_by_reason: BTreeMap<String, u64>,
    /// Probe verdicts per IP (`silent`, `answered`) and probes that could
    /// not be done (`failed`).
    #[serde(default)]
    pub probes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthStatus {
    /// `pass_differs` or `address_list_differs`.
    pub kind: String,
    /// The diagnosis in words.
    pub last_failure: String,
    pub last_failure_from: String,
    pub last_failure_age_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    pub source: String,
    pub rejected: BTreeMap<String, u64>,
}

/// Seconds with millisecond precision.
pub fn secs(d: std::time::Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}
