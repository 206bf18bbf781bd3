//! The election side of one group, without I/O: the CARP state machine
//! plus everything around it that decides something — advert signing and
//! the counter, when an advert may leave (after the IPs are gone, when it
//! follows a release), reject and tie accounting, link up/down and the
//! first start (or resume), and the wish handed to the group's IP task.
//!
//! The daemon loop (the shell, `daemon.rs`) feeds it time, authenticated
//! adverts, rejects, link carrier and the IP task's release reports
//! (`handle_*`), then drains it: [`GroupDriver::poll_transmit`] gives the
//! signed adverts to send now, [`GroupDriver::wish`] the IP task's wish,
//! [`GroupDriver::poll_event`] what to log. Nothing here waits, so the
//! rules are unit-tested with a virtual clock (see the tests below).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::carp::fsm::{Action, Fsm, PeerAdvert, Reason, State};
use crate::carp::ipv4::Reject;
use crate::carp::packet::{Advert, AuthDiagnosis, AuthKey, CARP_LEN};
use crate::health::{GroupHealth, Outcome};
use crate::ipmgr::Desired;
pub use link::{
    Damping, Hold, LinkSnap, LinkWatch, DAMP_LOSSES, DAMP_QUIET, DAMP_WINDOW, HOLD_MARGIN,
};

/// Pause before probing after preempting a live master: it drops the IPs
/// on our first advert, within a few milliseconds; probing a moment later
/// avoids a needless conflict round on every failback (the probes of a
/// handover are quick anyway: `ipplan/handover.rs`).
pub const PREEMPT_SETTLE: Duration = Duration::from_millis(5);
/// How long an advert that follows a release (demotion, stop) waits for
/// the IPs to be gone before it is sent anyway.
pub const RELEASE_WAIT: Duration = Duration::from_secs(1);
/// Transition times kept for `flaps_recent`.
const FLAP_MEMORY: usize = 64;
/// At most one "exact tie" warning per peer in this period.
pub const TIE_LOG_EVERY: Duration = Duration::from_secs(60);
/// Tying peers remembered per group; further ones are neither counted nor
/// logged (authentic adverts need the pass, their source addresses don't).
pub const MAX_TIE_PEERS: usize = 16;
/// After a reload that changes a group's address list (so its HMAC key)
/// but not its `pass`, adverts signed with the previous list are still
/// accepted this long (docs/safety.md §10, "Rolling reload of `ips`").
pub const PREVIOUS_LIST_ACCEPTED: Duration = Duration::from_secs(30 * 60);
/// ... and our own adverts stay signed with the previous list this long,
/// so a peer not yet reloaded never sees a bad HMAC (docs/safety.md §10).
/// Half of [`PREVIOUS_LIST_ACCEPTED`]: the hosts may be reloaded in either
/// order up to this long apart.
pub const PREVIOUS_LIST_SIGNED: Duration = Duration::from_secs(15 * 60);
/// Previous address lists kept at most (older ones are dropped).
pub const MAX_PREVIOUS_LISTS: usize = 4;
/// Peers on a previous list remembered per group (as [`MAX_TIE_PEERS`]).
pub const MAX_PREVIOUS_LIST_PEERS: usize = 16;

/// A peer whose adverts verify only with a previous address list of ours:
/// it has not been reloaded yet (or was reloaded less than
/// [`PREVIOUS_LIST_SIGNED`] ago and still signs the old way on purpose).
#[derive(Clone, Debug)]
pub struct PreviousListPeer {
    /// The first such advert since our reload.
    pub since: Instant,
    pub last: Instant,
    pub adverts: u64,
    /// The address list its adverts are signed with.
    pub addrs: Vec<IpAddr>,
}

/// What `ipfail status` shows of the previous address lists.
#[derive(Clone, Debug, Default)]
pub struct PreviousLists {
    /// Peers that still sign with a previous list.
    pub peers: Vec<(IpAddr, PreviousListPeer)>,
    /// When the last previous list stops being accepted; `None` if none is.
    pub accepted_until: Option<Instant>,
    /// Our adverts are signed with a previous list until then.
    pub signing_until: Option<Instant>,
}

/// A peer that advertised exactly our advbase and advskew (an exact tie,
/// `docs/interop.md`): counted per group and shown by `ipfail status`.
#[derive(Clone, Debug)]
pub struct TieSeen {
    pub advbase: u8,
    pub advskew: u8,
    /// Tying adverts received from this peer.
    pub count: u64,
    pub last: Instant,
    /// When the last warning about it was logged.
    pub logged: Option<Instant>,
}

/// Counters of one group, shown in logs and by `ipfail status`.
#[derive(Clone, Debug, Default)]
pub struct GroupStats {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    /// Transitions by [`Reason::kind`].
    pub by_reason: BTreeMap<&'static str, u64>,
    pub rejected: BTreeMap<&'static str, u64>,
    /// Peers that advertised exactly our advbase/advskew.
    pub ties: BTreeMap<IpAddr, TieSeen>,
    /// Adverts (counted in `adverts_received`) that verified only with a
    /// previous address list (docs/safety.md §10).
    pub adverts_previous_list: u64,
}

/// The last advert for a group that failed authentication.
#[derive(Clone, Debug)]
pub struct AuthFailure {
    pub diagnosis: AuthDiagnosis,
    pub from: Option<IpAddr>,
    pub at: Instant,
}

/// What the shell logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
    /// The group's links came up (`true`) or lost carrier.
    Link { up: bool },
    /// The group starts as master on its own leased IPs (a restart).
    Resuming,
    /// An exact tie with `peer`, due for a warning.
    Tie {
        peer: IpAddr,
        advbase: u8,
        advskew: u8,
    },
    /// Adverts that waited for the IPs to go were sent without the IP
    /// task's report after [`RELEASE_WAIT`].
    ReleaseLate,
    /// `peer` signs its adverts with a previous address list of ours
    /// (first time since the reload).
    PeerOnPreviousList { peer: IpAddr },
    /// `peer`, seen on a previous list, now signs with our current one.
    PeerOnCurrentList { peer: IpAddr },
    /// Our adverts are signed with the current address list from now on
    /// ([`PREVIOUS_LIST_SIGNED`] is over).
    SigningCurrentList,
    /// What a master did about a carrier loss (`link.rs`).
    Hold { hold: Hold },
    /// The link's damping changed (`link.rs`).
    Damping { change: Damping },
    /// The group's health changed: `check` decided it, `detail` is its
    /// last result.
    Health {
        healthy: bool,
        check: String,
        detail: String,
    },
}

/// Adverts that may leave only once the IP task reports the release of
/// `epoch` done (peers take over on them and must find the IPs silent).
struct Held {
    epoch: u64,
    until: Instant,
    adverts: Vec<[u8; CARP_LEN]>,
}

pub struct GroupDriver {
    fsm: Fsm,
    /// `keys[0]` is the current key; `keys[1..]` the previous address
    /// lists still accepted, newest first (docs/safety.md §10).
    keys: Vec<AuthKey>,
    /// `replaced[i]`: when `keys[i + 1]` stopped being current.
    replaced: Vec<Instant>,
    previous_peers: BTreeMap<IpAddr, PreviousListPeer>,
    /// The last advert we sent was signed with a previous list.
    signed_previous: bool,
    counter: u64,
    stats: GroupStats,
    transitions_at: VecDeque<Instant>,
    auth: Option<AuthFailure>,
    link_ok: bool,
    /// The election was started once; later starts are link-ups.
    started: bool,
    /// Start as master: our own leased IPs were on the NIC at start.
    adopt: bool,
    wish: Desired,
    /// The last release epoch the IP task reported done.
    released: u64,
    out: VecDeque<[u8; CARP_LEN]>,
    held: Option<Held>,
    events: VecDeque<Event>,
    last_sent: Option<Instant>,
    /// `ipfail demote` (persisted by the control thread).
    operator_demoted: bool,
    /// The health checks say no (or have not said yes yet).
    unhealthy: bool,
    health: Option<GroupHealth>,
    /// Carrier losses: the blip hold and damping.
    link: LinkWatch,
    /// The IP task holds every IP of the group (the shell says so).
    ips_held: bool,
}

impl GroupDriver {
    /// `counter`: the first advert counter (random-ish per start, as
    /// FreeBSD seeds it in `carp_hmac_prepare`; peers do not check it).
    pub fn new(fsm: Fsm, key: AuthKey, counter: u64, adopt: bool) -> GroupDriver {
        GroupDriver {
            fsm,
            keys: vec![key],
            replaced: Vec::new(),
            previous_peers: BTreeMap::new(),
            signed_previous: false,
            counter,
            stats: GroupStats::default(),
            transitions_at: VecDeque::new(),
            auth: None,
            link_ok: false,
            started: false,
            adopt,
            wish: Desired::default(),
            released: 0,
            out: VecDeque::new(),
            held: None,
            events: VecDeque::new(),
            last_sent: None,
            operator_demoted: false,
            unhealthy: false,
            health: None,
            link: LinkWatch::default(),
            ips_held: false,
        }
    }

    pub fn is_operator_demoted(&self) -> bool {
        self.operator_demoted
    }
    pub fn is_unhealthy(&self) -> bool {
        self.unhealthy
    }
    pub fn health(&self) -> Option<&GroupHealth> {
        self.health.as_ref()
    }

    /// The group's health checks (at start, and on a reload that changes
    /// them). Until they say healthy the group advertises itself as least
    /// preferred, so a host that boots with a dead service never takes
    /// the group from a healthy peer; a group resuming on its own leased
    /// IPs starts healthy instead (its service was serving a moment ago)
    /// and `fall` failures demote it (docs/design.md §6.12).
    pub fn set_health(&mut self, now: Instant, health: Option<GroupHealth>) {
        self.health = health;
        if let Some(h) = &mut self.health {
            if self.adopt && !self.started {
                h.assume_healthy(now);
            }
        }
        self.unhealthy = self.health.as_ref().is_some_and(|h| !h.healthy());
        self.apply_demotion(now);
    }

    /// An outcome of check `id` (the group may not use it: ignored).
    pub fn handle_check(&mut self, now: Instant, id: usize, outcome: &Outcome) {
        let Some(h) = &mut self.health else {
            return;
        };
        if let Some((check, healthy)) = h.record(now, id, outcome) {
            self.unhealthy = !healthy;
            self.events.push_back(Event::Health {
                healthy,
                check,
                detail: outcome.detail.clone(),
            });
            self.apply_demotion(now);
        }
    }

    /// Advertise as least preferred while demoted by the operator,
    /// unhealthy or on an unstable link ([`Fsm::set_demoted`] has the
    /// rules).
    fn apply_demotion(&mut self, now: Instant) {
        let why = if self.operator_demoted {
            Reason::Demoted
        } else if self.unhealthy {
            Reason::Unhealthy
        } else {
            Reason::LinkUnstable {
                losses: self.link.recent_losses(now),
                window: DAMP_WINDOW,
            }
        };
        let demoted = self.operator_demoted || self.unhealthy || self.link.damped();
        let out = self.fsm.set_demoted_because(now, demoted, why);
        self.run(now, out);
    }

    /// The link's carrier losses, hold and damping (for status).
    pub fn link(&self) -> &LinkWatch {
        &self.link
    }
    pub fn link_ok(&self) -> bool {
        self.link_ok
    }

    /// Whether the IP task holds every IP of the group now (the shell
    /// reads its status before a link change): a master keeps the group
    /// through a carrier loss only then.
    pub fn set_ips_held(&mut self, held: bool) {
        self.ips_held = held;
    }

    pub fn fsm(&self) -> &Fsm {
        &self.fsm
    }
    pub fn vhid(&self) -> u8 {
        self.fsm.config().vhid
    }
    /// The current key (the configured `pass` and address list).
    pub fn key(&self) -> &AuthKey {
        &self.keys[0]
    }
    /// Every key an advert may verify with: the current one first, then
    /// the previous address lists still in their grace, newest first.
    pub fn accepted_keys(&self) -> &[AuthKey] {
        &self.keys
    }
    /// The previous address lists as of `now`, for `ipfail status`.
    pub fn previous_lists(&self, now: Instant) -> PreviousLists {
        // The newest previous list is the last one accepted and signed.
        let newest = self.replaced.first();
        PreviousLists {
            peers: self
                .previous_peers
                .iter()
                .map(|(p, s)| (*p, s.clone()))
                .collect(),
            accepted_until: newest
                .map(|t| *t + PREVIOUS_LIST_ACCEPTED)
                .filter(|t| now < *t),
            signing_until: newest
                .map(|t| *t + PREVIOUS_LIST_SIGNED)
                .filter(|t| now < *t),
        }
    }
    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }
    pub fn auth(&self) -> Option<&AuthFailure> {
        self.auth.as_ref()
    }
    pub fn transitions_at(&self) -> impl Iterator<Item = Instant> + '_ {
        self.transitions_at.iter().copied()
    }
    pub fn last_sent(&self) -> Option<Instant> {
        self.last_sent
    }
    /// What the group's IP task must do now. A BACKUP's wish carries the
    /// master-down deadline, so the probe can run during the end of the
    /// wait (`ipplan/handover.rs`).
    pub fn wish(&self) -> Desired {
        let mut wish = self.wish;
        wish.master_down_at = (self.fsm.state() == State::Backup)
            .then(|| self.fsm.next_deadline())
            .flatten();
        wish
    }

    /// The next signed advert to send, oldest first; none while the
    /// carrier is down (they wait for it: only a bow-out can be waiting).
    pub fn poll_transmit(&mut self) -> Option<[u8; CARP_LEN]> {
        if !self.link_ok {
            return None;
        }
        self.out.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.fsm.next_deadline(),
            self.held.as_ref().map(|h| h.until),
            // The oldest previous list stops being accepted.
            self.replaced.last().map(|t| *t + PREVIOUS_LIST_ACCEPTED),
            self.link.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
    /// Adverts are waiting for the IPs to go.
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// A new pass or address list (reload): failures judged with the old
    /// key no longer say anything. With the same `pass` and another
    /// address list the previous key stays accepted for
    /// [`PREVIOUS_LIST_ACCEPTED`] and keeps signing our adverts for
    /// [`PREVIOUS_LIST_SIGNED`] (docs/safety.md §10); returns whether it
    /// does. A new `pass` replaces every key at once: an old secret is
    /// never accepted again.
    pub fn set_key(&mut self, now: Instant, key: AuthKey) -> bool {
        self.auth = None;
        if key.pass() != self.keys[0].pass() {
            self.keys = vec![key];
            self.replaced.clear();
            self.previous_peers.clear();
            return false;
        }
        if key.addrs() == self.keys[0].addrs() {
            return false;
        }
        let old = std::mem::replace(&mut self.keys[0], key);
        self.keys.insert(1, old);
        self.replaced.insert(0, now);
        self.keys.truncate(MAX_PREVIOUS_LISTS + 1);
        self.replaced.truncate(MAX_PREVIOUS_LISTS);
        true
    }

    /// A reload changed advbase, advskew or preempt: the running machine
    /// takes them without a restart ([`Fsm::reconfigure`]).
    pub fn reconfigure(&mut self, now: Instant, advbase: u8, advskew: u8, preempt: bool) {
        let out = self.fsm.reconfigure(now, advbase, advskew, preempt);
        self.run(now, out);
    }

    /// The key our adverts are signed with now: the oldest previous list
    /// still within [`PREVIOUS_LIST_SIGNED`] of its replacement, else the
    /// current one. Peers that have not been reloaded yet only know the
    /// oldest list; peers that have accept it too (docs/safety.md §10).
    fn signing_index(&self, now: Instant) -> usize {
        self.replaced
            .iter()
            .rposition(|t| now < *t + PREVIOUS_LIST_SIGNED)
            .map_or(0, |i| i + 1)
    }

    /// Drops the previous lists whose grace is over, and the peers that
    /// signed with them (their adverts now fail authentication).
    fn prune_keys(&mut self, now: Instant) {
        while self
            .replaced
            .last()
            .is_some_and(|t| now >= *t + PREVIOUS_LIST_ACCEPTED)
        {
            self.replaced.pop();
            self.keys.pop();
        }
        let keys = &self.keys[1..];
        self.previous_peers
            .retain(|_, p| keys.iter().any(|k| k.addrs() == p.addrs));
    }

    /// An authenticated advert for our vhid from `src`, verified with our
    /// current key.
    pub fn handle_advert(&mut self, now: Instant, src: IpAddr, advbase: u8, advskew: u8) {
        self.handle_advert_keyed(now, src, advbase, advskew, 0);
    }

    /// An authenticated advert that verified with `accepted_keys()[key]`:
    /// 0 is the current key; a previous address list counts as a valid
    /// advert for the election all the same, and the peer is remembered
    /// (docs/safety.md §10).
    pub fn handle_advert_keyed(
        &mut self,
        now: Instant,
        src: IpAddr,
        advbase: u8,
        advskew: u8,
        key: usize,
    ) {
        self.prune_keys(now);
        self.stats.adverts_received += 1;
        if key > 0 {
            self.stats.adverts_previous_list += 1;
            let addrs = self.keys.get(key).map(AuthKey::addrs).unwrap_or_default();
            let full = self.previous_peers.len() >= MAX_PREVIOUS_LIST_PEERS;
            match self.previous_peers.get_mut(&src) {
                Some(p) => {
                    p.last = now;
                    p.adverts += 1;
                    p.addrs = addrs;
                }
                None if !full => {
                    self.previous_peers.insert(
                        src,
                        PreviousListPeer {
                            since: now,
                            last: now,
                            adverts: 1,
                            addrs,
                        },
                    );
                    self.events
                        .push_back(Event::PeerOnPreviousList { peer: src });
                }
                None => {}
            }
        } else if self.previous_peers.remove(&src).is_some() {
            self.events
                .push_back(Event::PeerOnCurrentList { peer: src });
        }
        self.link.note_peer(advbase, advskew);
        let out = self.fsm.handle_advert(
            now,
            PeerAdvert {
                src,
                advbase,
                advskew,
            },
        );
        if let Some(tie) = self.fsm.last_tie().filter(|t| t.at == now) {
            self.count_tie(now, tie.peer, advbase, advskew);
        }
        self.run(now, out);
    }

    fn count_tie(&mut self, now: Instant, peer: IpAddr, advbase: u8, advskew: u8) {
        let ties = &mut self.stats.ties;
        if ties.len() >= MAX_TIE_PEERS && !ties.contains_key(&peer) {
            return;
        }
        let seen = ties.entry(peer).or_insert(TieSeen {
            advbase,
            advskew,
            count: 0,
            last: now,
            logged: None,
        });
        seen.count += 1;
        seen.last = now;
        if seen
            .logged
            .is_none_or(|t| now.saturating_duration_since(t) >= TIE_LOG_EVERY)
        {
            seen.logged = Some(now);
            self.events.push_back(Event::Tie {
                peer,
                advbase,
                advskew,
            });
        }
    }

    /// A datagram for this group's vhid that was rejected; `from`: its
    /// sender, if the IP header could be read.
    pub fn handle_reject(&mut self, now: Instant, reject: &Reject, from: Option<IpAddr>) {
        *self
            .stats
            .rejected
            .entry(reject.class().name())
            .or_default() += 1;
        if let Reject::AuthFailed { diagnosis, .. } = reject {
            self.auth = Some(AuthFailure {
                diagnosis: diagnosis.clone(),
                from,
                at: now,
            });
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.prune_keys(now);
        self.link_timeout(now);
        if self.held.as_ref().is_some_and(|h| h.until <= now) {
            self.events.push_back(Event::ReleaseLate);
            self.send_held();
        }
        let out = self.fsm.handle_timeout(now);
        self.run(now, out);
    }

    /// Carrier of the group's links (all of them up and running). A
    /// MASTER keeps the group through a short loss (`link.rs`, the blip
    /// hold); losses are counted and an unstable link demotes the group.
    pub fn handle_link(&mut self, now: Instant, ok: bool) {
        // The first look at the links lets the IP task start (reconcile).
        self.wish.started = true;
        if ok == self.link_ok {
            return;
        }
        self.link_ok = ok;
        self.events.push_back(Event::Link { up: ok });
        if !ok {
            self.link_lost(now);
            return;
        }
        if let Some(d) = self.link.restored(now) {
            self.damping(now, d);
        }
        if self.link.end_hold().is_some() && self.fsm.state() == State::Master {
            // Nobody can have declared us down: say we are here, and make
            // neighbours and switches that lost track of us look again.
            self.events.push_back(Event::Hold {
                hold: Hold::Kept {
                    down: self.link.down_for(now),
                },
            });
            let (advbase, advskew) = self.fsm.advertised();
            self.run(
                now,
                vec![Action::SendAdvert { advbase, advskew }, Action::Reannounce],
            );
            return;
        }
        let out = if self.started {
            self.fsm.link_up(now)
        } else {
            self.started = true;
            if self.adopt {
                self.events.push_back(Event::Resuming);
                self.fsm.resume(now)
            } else {
                self.fsm.start(now)
            }
        };
        self.run(now, out);
    }

    fn link_lost(&mut self, now: Instant) {
        if let Some(d) = self.link.lost(now) {
            self.damping(now, d);
        }
        if self.fsm.state() == State::Master {
            let hold = if !self.ips_held {
                Hold::NotAllHeld
            } else if let Some(until) = self.link.start_hold(now, self.fsm.config().advbase) {
                self.events.push_back(Event::Hold {
                    hold: Hold::Started {
                        hold: until.saturating_duration_since(now),
                    },
                });
                return;
            } else {
                Hold::NoTime
            };
            self.events.push_back(Event::Hold { hold });
        }
        let out = self.fsm.link_down(now);
        self.run(now, out);
    }

    /// The hold's end with the carrier still down, and the end of damping.
    fn link_timeout(&mut self, now: Instant) {
        if self.link.hold().is_some_and(|t| t <= now) {
            self.link.end_hold();
            if !self.link_ok {
                self.events.push_back(Event::Hold {
                    hold: Hold::Expired {
                        down: self.link.down_for(now),
                    },
                });
                let out = self.fsm.link_down(now);
                self.run(now, out);
            }
        }
        if let Some(d) = self.link.expire(now) {
            self.damping(now, d);
        }
    }

    /// Logs a damping change; becoming unstable or trusted changes what
    /// we advertise (a MASTER that became unstable hands the group over).
    fn damping(&mut self, now: Instant, d: Damping) {
        self.events.push_back(Event::Damping { change: d });
        if !matches!(d, Damping::Extended { .. }) {
            self.apply_demotion(now);
        }
    }

    /// The IP task finished the release of mastership `epoch`.
    pub fn handle_released(&mut self, epoch: u64) {
        self.released = self.released.max(epoch);
        if self.held.as_ref().is_some_and(|h| h.epoch <= self.released) {
            self.send_held();
        }
    }

    /// `ipfail demote` / `promote`.
    pub fn set_demoted(&mut self, now: Instant, on: bool) {
        self.operator_demoted = on;
        self.apply_demotion(now);
    }

    /// Graceful stop: the IPs go, then a master's bow-out advert.
    pub fn shutdown(&mut self, now: Instant) {
        let out = self.fsm.shutdown(now);
        self.run(now, out);
        self.wish.stop = true;
        if let Some(h) = &mut self.held {
            // The stop's release is the last one the IP task reports.
            h.epoch = self.wish.epoch;
        }
    }

    /// The adverts still waiting for the release (a retired group's
    /// shell sends them itself once its IP task ended).
    pub fn take_held(&mut self) -> Vec<[u8; CARP_LEN]> {
        self.held.take().map(|h| h.adverts).unwrap_or_default()
    }

    fn send_held(&mut self) {
        if let Some(h) = self.held.take() {
            self.out.extend(h.adverts);
        }
    }

    /// Carries out one batch of the machine's actions. An advert in a
    /// batch that also releases (demotion, stop) waits for the IP task's
    /// report that the IPs are gone: peers take over on it.
    fn run(&mut self, now: Instant, actions: Vec<Action>) {
        let releases = actions.contains(&Action::Release);
        let mut settle = Duration::ZERO;
        let mut handover = false;
        let mut adverts = Vec::new();
        for action in actions {
            match action {
                Action::Transition { from, to, reason } => {
                    if to == State::Master && matches!(reason, Reason::Preempt { .. }) {
                        settle = PREEMPT_SETTLE;
                    }
                    // The previous master is alive and releasing (or has):
                    // its IPs fall silent within milliseconds.
                    handover = to == State::Master
                        && matches!(reason, Reason::Preempt { .. } | Reason::BowOut { .. });
                    self.stats.transitions += 1;
                    *self.stats.by_reason.entry(reason.kind()).or_default() += 1;
                    // Starting up is not flapping.
                    if reason != Reason::Startup {
                        if self.transitions_at.len() >= FLAP_MEMORY {
                            self.transitions_at.pop_front();
                        }
                        self.transitions_at.push_back(now);
                    }
                    self.events
                        .push_back(Event::Transition { from, to, reason });
                }
                Action::SendAdvert { .. } if !self.link_ok && !releases => {
                    // The carrier is down: it cannot leave. A master that
                    // holds the group sends one when the carrier returns.
                }
                Action::SendAdvert { advbase, advskew } => {
                    self.counter = self.counter.wrapping_add(1);
                    let vhid = self.vhid();
                    let signing = self.signing_index(now);
                    if signing == 0 && self.signed_previous {
                        self.events.push_back(Event::SigningCurrentList);
                    }
                    self.signed_previous = signing > 0;
                    let key = &self.keys[signing.min(self.keys.len() - 1)];
                    adverts
                        .push(Advert::signed(key, vhid, advbase, advskew, self.counter).encode());
                    self.stats.adverts_sent += 1;
                    self.last_sent = Some(now);
                }
                Action::Acquire => {
                    self.wish.master = true;
                    self.wish.epoch += 1;
                    self.wish.settle = settle;
                    self.wish.handover = handover;
                }
                Action::Release => self.wish.master = false,
                Action::Reannounce => self.wish.announce += 1,
            }
        }
        if releases && !adverts.is_empty() {
            let held = self.held.get_or_insert(Held {
                epoch: self.wish.epoch,
                until: now + RELEASE_WAIT,
                adverts: Vec::new(),
            });
            held.epoch = self.wish.epoch;
            held.adverts.extend(adverts);
            if self.released >= self.wish.epoch {
                // Nothing was held since the last report: sent at once.
                self.send_held();
            }
        } else {
            if !adverts.is_empty() {
                self.link.note_sent(now);
            }
            self.out.extend(adverts);
        }
    }
}

mod link;
#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod tests;
