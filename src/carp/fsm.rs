//! The CARP election of one group (one vhid), as a pure state machine.
//!
//! No clock, socket or task lives here: the driver feeds the current time and
//! events in ([`Fsm::start`], [`Fsm::handle_advert`], [`Fsm::handle_timeout`],
//! [`Fsm::link_down`], ...) and executes the [`Action`]s that come out. It asks
//! [`Fsm::next_deadline`] when to call [`Fsm::handle_timeout`] next. This keeps
//! every election rule testable with a virtual clock (see `tests/sim_lan.rs`).
//!
//! The rules follow FreeBSD `sys/netinet/ip_carp.c` (`carp_input_c`,
//! `carp_master_down`, `carp_setrun`) and UCarp `src/carp.c`
//! (`packethandler`, `carp_master_down`, `carp_setrun`); `docs/interop.md`
//! lists each rule with its source and the deliberate differences:
//! - an exact tie of intervals goes to the address whose 4 bytes, read as a
//!   little-endian integer, are smaller (UCarp's comparison of `s_addr`
//!   values on x86); FreeBSD yields every tie as MASTER and never preempts
//!   on one, so every pair converges (`docs/interop.md`, "Exact ties");
//! - a BACKUP acts only on adverts from the master it follows (or from a
//!   better one) while that master is alive, so a stray or forged worse
//!   advert from a third address cannot make it preempt;
//! - a MASTER hearing a *worse* advert answers at once with its own advert and
//!   re-announces its IPs, so a confused peer steps down and neighbours that
//!   followed its gratuitous ARP come back (OpenBSD does the former).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Election parameters of one group. `vhid` and `local` are fixed for the
/// life of an [`Fsm`]; a reload changes `advbase`, `advskew` and `preempt`
/// in place ([`Fsm::reconfigure`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    pub vhid: u8,
    /// Advert base interval, seconds (1..=255).
    pub advbase: u8,
    /// Skew added to the interval in 1/256 s (0..=254); lower is preferred.
    pub advskew: u8,
    /// Take over from a less preferred master.
    pub preempt: bool,
    /// Our advert source address: breaks ties between equal intervals
    /// ([`tie_key`]).
    pub local: IpAddr,
}

/// advbase and advskew of the bow-out advert (`docs/interop.md`, "Bow-out").
pub use super::packet::BOW_OUT;

/// CARP state of a group (RFC 3768 §6.4 names; CARP uses the same three).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Init,
    Backup,
    Master,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An authenticated advert from a peer, as far as the election cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAdvert {
    pub src: IpAddr,
    pub advbase: u8,
    pub advskew: u8,
}

impl PeerAdvert {
    pub fn interval(&self) -> Duration {
        advert_interval(self.advbase, self.advskew)
    }

    pub fn is_bow_out(&self) -> bool {
        self.advbase == BOW_OUT && self.advskew == BOW_OUT
    }
}

/// Why a transition happened; shown in logs and by `ipfail status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The group was started (daemon start or link up): wait for a master.
    Startup,
    /// No advert for the master-down interval.
    MasterDown { silence: Duration },
    /// The master sent the 255/255 bow-out advert.
    BowOut { master: IpAddr },
    /// The master advertises slower than `3 × advbase + advskew/256` of
    /// ours: it is as good as gone (FreeBSD: "master will time out").
    MasterTooSlow { master: IpAddr, interval: Duration },
    /// We are preferred over the current master and `preempt` is on.
    Preempt { master: IpAddr },
    /// A more preferred master was heard.
    MorePreferred {
        master: IpAddr,
        advbase: u8,
        advskew: u8,
    },
    /// The link of the group's interface lost carrier or went down.
    LinkDown,
    /// The link came back: wait for a master, as at start.
    LinkUp,
    /// The operator demoted the group (`ipfail demote`): a MASTER hands the
    /// group over as on a graceful stop.
    Demoted,
    /// The process is stopping.
    Shutdown,
    /// The group's health checks failed: a MASTER hands the group over as
    /// when demoted (not persisted; it takes it back once healthy).
    Unhealthy,
    /// The daemon restarted while our own leased IPs were still on the
    /// interface: it resumes as master at once ([`Fsm::resume`]).
    Resumed,
    /// The link lost carrier `losses` times within `window`: a MASTER
    /// hands the group over as when demoted, until the link is stable
    /// (`daemon::driver::link`).
    LinkUnstable { losses: usize, window: Duration },
}

impl Reason {
    /// A stable short name, e.g. for the `reason` label of metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::MasterDown { .. } => "master_down",
            Reason::BowOut { .. } => "bow_out",
            Reason::MasterTooSlow { .. } => "master_too_slow",
            Reason::Preempt { .. } => "preempt",
            Reason::MorePreferred { .. } => "more_preferred",
            Reason::LinkDown => "link_down",
            Reason::LinkUp => "link_up",
            Reason::Demoted => "demoted",
            Reason::Shutdown => "shutdown",
            Reason::Unhealthy => "unhealthy",
            Reason::Resumed => "resumed",
            Reason::LinkUnstable { .. } => "link_unstable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("started, waiting for a master"),
            Reason::MasterDown { silence } => {
                write!(
                    f,
                    "master down: no advert for {:.2} s",
                    silence.as_secs_f64()
                )
            }
            Reason::BowOut { master } => write!(f, "bow-out from {master}"),
            Reason::MasterTooSlow { master, interval } => write!(
                f,
                "master {master} advertises every {:.2} s, slower than 3 x our advbase + advskew/256",
                interval.as_secs_f64()
            ),
            Reason::Preempt { master } => write!(f, "preempted less preferred master {master}"),
            Reason::MorePreferred {
                master,
                advbase,
                advskew,
            } => write!(
                f,
                "more preferred master {master} (advbase {advbase} advskew {advskew})"
            ),
            Reason::LinkDown => f.write_str("link down"),
            Reason::LinkUp => f.write_str("link up, waiting for a master"),
            Reason::Demoted => f.write_str("demoted by the operator: handed the group over"),
            Reason::Shutdown => f.write_str("shutting down"),
            Reason::Unhealthy => {
                f.write_str("unhealthy: its health checks failed: handed the group over")
            }
            Reason::Resumed => {
                f.write_str("restarted holding our own leased IPs: resuming as master")
            }
            Reason::LinkUnstable { losses, window } => write!(
                f,
                "link unstable: {losses} carrier losses in {} s: handed the group over",
                window.as_secs()
            ),
        }
    }
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Log it; `ipfail status` shows the last one.
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
    /// Multicast an advert with these fields (the driver signs and counts it).
    SendAdvert { advbase: u8, advskew: u8 },
    /// We became MASTER: probe, add and announce the group's IPs.
    Acquire,
    /// We are no longer MASTER: remove the group's IPs.
    Release,
    /// Still MASTER, but a peer claims the group: announce our IPs again.
    Reannounce,
}

/// The master this host follows (the source of the last advert it accepted
/// as master), and when it was last heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterSeen {
    pub advert: PeerAdvert,
    pub at: Instant,
}

/// A peer advertising exactly our configured advbase and advskew: the
/// election then hangs on the addresses alone, and CARP implementations
/// disagree there (`docs/interop.md`, "Exact ties"). The driver warns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tie {
    pub peer: IpAddr,
    pub at: Instant,
}

/// The tie-break key of an advert source: smaller wins an exact tie.
///
/// UCarp compares `ip_src.s_addr` with its own `srcip.s_addr` as host
/// integers (`src/carp.c`, `packethandler`, MASTER case); `s_addr` holds
/// the address in network byte order, so on little-endian machines (x86,
/// arm64) the 4 bytes are read little-endian and the *last* octet weighs
/// most: 192.0.3.1 (key 0x01_03_00_c0) beats 192.0.2.200 (0xc8_02_00_c0).
/// ipfail uses the same key so that a tie between ipfail and UCarp always
/// has the same winner on both sides. IPv6 (which UCarp does not speak)
/// follows the same idea: the 16 bytes read little-endian. IPv4 sorts
/// before IPv6.
pub fn tie_key(addr: IpAddr) -> (u8, u128) {
    match addr {
        IpAddr::V4(v4) => (0, u128::from(u32::from_le_bytes(v4.octets()))),
        IpAddr::V6(v6) => (1, u128::from_le_bytes(v6.octets())),
    }
}

/// Does advert `a` win the election over advert `b`? The shorter interval
/// wins; an exact tie goes to the smaller [`tie_key`].
pub fn outranks(a: &PeerAdvert, b: &PeerAdvert) -> bool {
    let (ia, ib) = (a.interval(), b.interval());
    ia < ib || (ia == ib && tie_key(a.src) < tie_key(b.src))
}

/// Is `adv` the master `followed` heard on its other address family? A
/// host whose group has IPv6 addresses sends every advert twice, to
/// 224.0.0.18 from its IPv4 source and to ff02::12 from its link-local
/// address (FreeBSD `carp_send_ad_locked`, ipfail alike), with the same
/// advbase and advskew. FreeBSD's `carp_input_c` elects on advbase and
/// advskew alone and never looks at the source; here an advert from the
/// other family with the followed master's values counts as that master
/// (`docs/interop.md`, "Both families").
pub fn same_master_other_family(followed: &PeerAdvert, adv: &PeerAdvert) -> bool {
    followed.src.is_ipv4() != adv.src.is_ipv4()
        && (followed.advbase, followed.advskew) == (adv.advbase, adv.advskew)
}

/// `advbase + advskew/256` seconds (FreeBSD `carp_setrun`).
pub fn advert_interval(advbase: u8, advskew: u8) -> Duration {
    Duration::from_secs(u64::from(advbase))
        + Duration::from_nanos(u64::from(advskew) * 1_000_000_000 / 256)
}

/// `3 × advbase + advskew/256` seconds: how long a BACKUP waits in silence
/// (FreeBSD `carp_setrun`, BACKUP case: `tv.tv_sec = 3 * sc->sc_advbase`,
/// `tv.tv_usec = sc->sc_advskew * 1000000 / 256`). With our own values it
/// is also the "master too slow" bound: FreeBSD `carp_input_c` sets
/// `sc_tv.tv_sec = sc->sc_advbase * 3` and keeps the advskew part.
pub fn master_down_interval(advbase: u8, advskew: u8) -> Duration {
    Duration::from_secs(3 * u64::from(advbase))
        + Duration::from_nanos(u64::from(advskew) * 1_000_000_000 / 256)
}

pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    since: Instant,
    reason: Reason,
    /// BACKUP: when the master is declared down. MASTER: next advert.
    deadline: Option<Instant>,
    /// The master we follow (see [`Fsm::handle_advert`]).
    master: Option<MasterSeen>,
    /// The last peer that tied with us exactly.
    tie: Option<Tie>,
    /// Last time a MASTER answered a worse advert; limits those answers to one
    /// per own interval, so a misbehaving peer cannot make us flood.
    last_contest: Option<Instant>,
    /// Operator demotion ([`Fsm::set_demoted`]): advertise as least preferred.
    demoted: bool,
}

impl Fsm {
    pub fn new(cfg: FsmConfig, now: Instant) -> Fsm {
        Fsm {
            cfg,
            state: State::Init,
            since: now,
            reason: Reason::Startup,
            deadline: None,
            master: None,
            tie: None,
            last_contest: None,
            demoted: false,
        }
    }

    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }
    pub fn state(&self) -> State {
        self.state
    }
    /// When the current state was entered.
    pub fn since(&self) -> Instant {
        self.since
    }
    /// Why the current state was entered.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }
    /// The master we follow: the source of the last advert accepted as
    /// master (kept after it falls silent, for status).
    pub fn master_seen(&self) -> Option<MasterSeen> {
        self.master
    }
    /// The last peer whose advert carried exactly our configured advbase
    /// and advskew ([`Tie`]); the driver compares `at` with the time it
    /// passed to [`Fsm::handle_advert`] to see a new one.
    pub fn last_tie(&self) -> Option<Tie> {
        self.tie
    }
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }
    /// The configured advert interval: the cadence of our adverts, also
    /// while demoted.
    pub fn own_interval(&self) -> Duration {
        advert_interval(self.cfg.advbase, self.cfg.advskew)
    }
    pub fn is_demoted(&self) -> bool {
        self.demoted
    }
    /// advbase and advskew our adverts carry: the configured ones, or
    /// 255/255 while demoted.
    pub fn advertised(&self) -> (u8, u8) {
        if self.demoted {
            (BOW_OUT, BOW_OUT)
        } else {
            (self.cfg.advbase, self.cfg.advskew)
        }
    }
    fn master_down_after(&self) -> Duration {
        master_down_interval(self.cfg.advbase, self.cfg.advskew)
    }

    /// How long a followed master may stay silent. A master that beat us
    /// only by the tie-break gets one more own interval: if it yielded to
    /// us at the same moment as we yielded to it (FreeBSD yields every tie
    /// as MASTER), its master-down timer fires first and its advert reaches
    /// us before ours would, so exactly one of us comes back
    /// (`docs/interop.md`, "Exact ties").
    fn follow_timeout(&self, followed: &PeerAdvert) -> Duration {
        let (advbase, advskew) = self.advertised();
        if followed.interval() == advert_interval(advbase, advskew) {
            self.master_down_after() + self.own_interval()
        } else {
            self.master_down_after()
        }
    }

    /// The followed master, if it has not been silent for its follow
    /// timeout.
    fn followed_alive(&self, now: Instant) -> Option<MasterSeen> {
        self.master
            .filter(|m| now < m.at + self.follow_timeout(&m.advert))
    }

    /// Accept `adv` as the master: follow it and wait for its next advert.
    fn follow(&mut self, now: Instant, adv: PeerAdvert) {
        self.master = Some(MasterSeen {
            advert: adv,
            at: now,
        });
        self.deadline = Some(now + self.follow_timeout(&adv));
    }

    /// A BACKUP's "master too slow" bound: `3 × advbase + advskew/256` of
    /// our own configuration (FreeBSD `carp_input_c`, BACKUP case; UCarp
    /// `packethandler` with its default `dead_ratio` 3).
    fn too_slow_after(&self) -> Duration {
        master_down_interval(self.cfg.advbase, self.cfg.advskew)
    }

    /// Begin the election: INIT -> BACKUP, wait for a master.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Init {
            self.enter(now, State::Backup, Reason::Startup, &mut out);
        }
        out
    }

    /// The link came back: wait for a master, as at start.
    pub fn link_up(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Init {
            self.enter(now, State::Backup, Reason::LinkUp, &mut out);
        }
        out
    }

    /// The daemon restarted and found our own leased IPs still on the
    /// interface (docs/safety.md §5): from INIT, become MASTER at once
    /// (advertise, acquire, arm the advert deadline) instead of waiting
    /// the master-down interval with the IPs half-owned. From any other
    /// state it does nothing.
    pub fn resume(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Init {
            self.enter(now, State::Master, Reason::Resumed, &mut out);
        }
        out
    }

    /// Operator demotion. A demoted group advertises with advbase and
    /// advskew 255, which every CARP peer (FreeBSD `carp_input_c`, ucarp,
    /// this machine) treats as "master will time out" and takes over from at
    /// once even without preempt, while still advertising at its configured
    /// rate. A demoted MASTER hands over as on a graceful stop: it releases
    /// its IPs, becomes BACKUP and sends the 255/255 advert (the driver sends
    /// an advert that follows a `Release` only once the IPs are gone). A
    /// demoted BACKUP never preempts and ignores bow-outs (its own takeover
    /// would only bow out again), but still becomes MASTER when nobody
    /// advertises for its master-down interval. Promotion makes a lone
    /// demoted MASTER advertise its real values at once; a BACKUP preempts
    /// (with `preempt`) on the next advert it hears.
    pub fn set_demoted(&mut self, now: Instant, demoted: bool) -> Vec<Action> {
        self.set_demoted_because(now, demoted, Reason::Demoted)
    }

    /// [`Fsm::set_demoted`] with the reason a demoted MASTER gives for
    /// stepping down ([`Reason::Demoted`] or [`Reason::Unhealthy`]).
    pub fn set_demoted_because(&mut self, now: Instant, demoted: bool, why: Reason) -> Vec<Action> {
        let mut out = Vec::new();
        if self.demoted == demoted {
            return out;
        }
        self.demoted = demoted;
        if self.state == State::Master {
            if demoted {
                self.enter(now, State::Backup, why, &mut out);
            }
            out.push(self.own_advert());
        }
        out
    }

    /// A reload changed `advbase`, `advskew` or `preempt`: take them on
    /// the running machine, without a state change (docs/design.md §7.6,
    /// "Reload in place"). FreeBSD does the same on `ifconfig ... vhid N
    /// advskew S`: `carp_ioctl` (`SIOCSVH`) sets `sc_advbase`/`sc_advskew`
    /// of the running vhid and calls `carp_setrun(sc, 0)`, which re-arms the
    /// timer of the current state from now with the new values.
    ///
    /// - MASTER stays MASTER: it advertises the new values at once (so a
    ///   peer they make preferred preempts now, by the normal rules, and a
    ///   peer they make us preferred over hears it) and then every new
    ///   interval from now;
    /// - BACKUP re-arms its master-down deadline from now with the new
    ///   values (as `carp_setrun`): a reload alone never declares a live
    ///   master down; `preempt` applies from the next advert;
    /// - INIT: only the values change.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        advbase: u8,
        advskew: u8,
        preempt: bool,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let timers = (advbase, advskew) != (self.cfg.advbase, self.cfg.advskew);
        self.cfg.advbase = advbase.max(1);
        self.cfg.advskew = advskew;
        self.cfg.preempt = preempt;
        if !timers {
            return out;
        }
        match self.state {
            State::Init => {}
            State::Master => {
                out.push(self.own_advert());
                self.deadline = Some(now + self.own_interval());
            }
            State::Backup => {
                let wait = match self.master {
                    Some(m) => self.follow_timeout(&m.advert),
                    None => self.master_down_after(),
                };
                self.deadline = Some(now + wait);
            }
        }
        out
    }

    /// The link lost carrier: stop advertising and give the IPs up, since a
    /// host that cannot be heard must not keep serving them.
    pub fn link_down(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state != State::Init {
            self.enter(now, State::Init, Reason::LinkDown, &mut out);
        }
        out
    }

    /// Graceful stop: a MASTER sends the 255/255 bow-out advert so peers take
    /// over at once instead of after the master-down interval.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::SendAdvert {
                advbase: BOW_OUT,
                advskew: BOW_OUT,
            });
        }
        if self.state != State::Init {
            self.enter(now, State::Init, Reason::Shutdown, &mut out);
        } else {
            // Nothing is held in INIT, but releasing is idempotent and makes a
            // stop leave nothing behind whatever happened before.
            out.push(Action::Release);
        }
        out
    }

    /// The deadline passed (the driver may call this early; it then does nothing).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(deadline) = self.deadline else {
            return out;
        };
        if now < deadline {
            return out;
        }
        match self.state {
            State::Init => self.deadline = None,
            State::Backup => {
                let heard = self.master.map_or(self.since, |m| m.at.max(self.since));
                let silence = now.saturating_duration_since(heard);
                self.enter(now, State::Master, Reason::MasterDown { silence }, &mut out);
            }
            State::Master => {
                out.push(self.own_advert());
                // Keep the cadence, but do not burst to catch up after a stall.
                let next = deadline + self.own_interval();
                self.deadline = Some(if next > now {
                    next
                } else {
                    now + self.own_interval()
                });
            }
        }
        out
    }

    /// An authenticated advert for our vhid from another host.
    ///
    /// - MASTER: a better advert ([`outranks`]) sends us to BACKUP following
    ///   its sender; a worse one is answered at once (at most once per own
    ///   interval) with our advert and a re-announcement.
    /// - BACKUP: while the master we follow is alive, adverts from any other
    ///   address that does not outrank it change nothing (a stray or forged
    ///   advert must not make us preempt, and must not keep us waiting for a
    ///   dead master either). Otherwise, as FreeBSD `carp_input_c`: a bow-out
    ///   (255/255) or a master slower than `3 × advbase + advskew/256` of
    ///   ours is taken over at once, a worse one is preempted with
    ///   `preempt`, and anything else is followed.
    pub fn handle_advert(&mut self, now: Instant, adv: PeerAdvert) -> Vec<Action> {
        let mut out = Vec::new();
        if adv.src == self.cfg.local {
            return out; // the driver reports these as an address clash
        }
        let mut adv = adv;
        let mut third_party = false;
        if self.state == State::Backup {
            if let Some(f) = self.followed_alive(now) {
                if f.advert.src != adv.src {
                    if same_master_other_family(&f.advert, &adv) {
                        // The master we follow, heard on its other family
                        // (`docs/interop.md`, "Both families"): known by
                        // its IPv4 source whichever family came first.
                        if adv.src.is_ipv6() {
                            adv.src = f.advert.src;
                        }
                    } else if !outranks(&adv, &f.advert) {
                        // A third address, no better than the live master
                        // we follow: not the master, so not our business.
                        third_party = true;
                    }
                }
            }
        }
        if (adv.advbase, adv.advskew) == (self.cfg.advbase, self.cfg.advskew) {
            self.tie = Some(Tie {
                peer: adv.src,
                at: now,
            });
        }
        if third_party {
            return out;
        }
        match self.state {
            State::Init => {
                // Nothing is decided in INIT (FreeBSD and UCarp ignore
                // adverts there); remember who was heard, for status.
                self.master = Some(MasterSeen {
                    advert: adv,
                    at: now,
                });
            }
            State::Backup => {
                if self.demoted {
                    // Never take over early: only a silent LAN makes a
                    // demoted host master (see `set_demoted`).
                    self.follow(now, adv);
                } else if adv.is_bow_out() {
                    let reason = Reason::BowOut { master: adv.src };
                    self.enter(now, State::Master, reason, &mut out);
                } else if adv.interval() > self.too_slow_after() {
                    let reason = Reason::MasterTooSlow {
                        master: adv.src,
                        interval: adv.interval(),
                    };
                    self.enter(now, State::Master, reason, &mut out);
                } else if self.cfg.preempt && self.preferred_over(&adv) && self.tie_comparable(&adv)
                {
                    let reason = Reason::Preempt { master: adv.src };
                    self.enter(now, State::Master, reason, &mut out);
                } else {
                    self.follow(now, adv);
                }
            }
            State::Master => {
                if self.preferred_over(&adv) {
                    // A worse peer thinks it is master: correct it at once and
                    // win back neighbours that followed its gratuitous ARP.
                    let answered_recently = self
                        .last_contest
                        .is_some_and(|t| now.saturating_duration_since(t) < self.own_interval());
                    if !answered_recently {
                        self.last_contest = Some(now);
                        out.push(self.own_advert());
                        out.push(Action::Reannounce);
                    }
                } else {
                    let reason = Reason::MorePreferred {
                        master: adv.src,
                        advbase: adv.advbase,
                        advskew: adv.advskew,
                    };
                    self.enter(now, State::Backup, reason, &mut out);
                    self.follow(now, adv);
                }
            }
        }
        out
    }

    /// Do we win the election over `peer`, advertising what we advertise?
    /// Shorter interval wins; an exact tie goes to the smaller [`tie_key`]
    /// (UCarp's rule, `docs/interop.md`, "Exact ties").
    fn preferred_over(&self, peer: &PeerAdvert) -> bool {
        let (advbase, advskew) = self.advertised();
        let ours = PeerAdvert {
            src: self.cfg.local,
            advbase,
            advskew,
        };
        outranks(&ours, peer)
    }

    /// Can a tie with `peer` be settled by the addresses? Only when its
    /// source has the family of ours (IPv4): an IPv6 source is a link-local
    /// address whose host's IPv4 source we may not know yet, so a BACKUP
    /// never preempts an exact tie on an IPv6 advert (FreeBSD never
    /// preempts a tie at all); the same host's IPv4 advert decides
    /// (`docs/interop.md`, "Both families").
    fn tie_comparable(&self, peer: &PeerAdvert) -> bool {
        let (advbase, advskew) = self.advertised();
        peer.interval() != advert_interval(advbase, advskew)
            || peer.src.is_ipv4() == self.cfg.local.is_ipv4()
    }

    fn own_advert(&self) -> Action {
        let (advbase, advskew) = self.advertised();
        Action::SendAdvert { advbase, advskew }
    }

    /// The one place state changes: emits the transition and its side effects.
    fn enter(&mut self, now: Instant, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        out.push(Action::Transition {
            from,
            to,
            reason: reason.clone(),
        });
        self.state = to;
        self.since = now;
        self.reason = reason;
        self.last_contest = None;
        match to {
            State::Master => {
                out.push(self.own_advert());
                out.push(Action::Acquire);
                self.deadline = Some(now + self.own_interval());
            }
            State::Backup => {
                if from == State::Master {
                    out.push(Action::Release);
                }
                self.deadline = Some(now + self.master_down_after());
            }
            State::Init => {
                out.push(Action::Release);
                self.deadline = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn fsm(advskew: u8, preempt: bool, now: Instant) -> Fsm {
        Fsm::new(
            FsmConfig {
                vhid: 1,
                advbase: 1,
                advskew,
                preempt,
                local: ip(1),
            },
            now,
        )
    }

    fn peer(last: u8, advbase: u8, advskew: u8) -> PeerAdvert {
        PeerAdvert {
            src: ip(last),
            advbase,
            advskew,
        }
    }

    fn states(actions: &[Action]) -> Vec<State> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transition { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn intervals_follow_freebsd_formulas() {
        assert_eq!(advert_interval(1, 128), Duration::from_millis(1500));
        assert_eq!(advert_interval(2, 0), Duration::from_secs(2));
        assert_eq!(
            master_down_interval(1, 64),
            Duration::from_millis(3250),
            "3 x advbase + advskew/256"
        );
    }

    #[test]
    fn silent_lan_makes_us_master_after_master_down_interval() {
        let t0 = Instant::now();
        let mut f = fsm(64, true, t0);
        assert_eq!(states(&f.start(t0)), vec![State::Backup]);
        assert_eq!(f.next_deadline(), Some(t0 + Duration::from_millis(3250)));
        // early wakeups change nothing
        assert!(f.handle_timeout(t0 + Duration::from_secs(3)).is_empty());
        let out = f.handle_timeout(t0 + Duration::from_millis(3250));
        assert_eq!(states(&out), vec![State::Master]);
        assert!(out.contains(&Action::Acquire));
        assert!(out.contains(&Action::SendAdvert {
            advbase: 1,
            advskew: 64
        }));
        assert_eq!(
            f.reason().to_string(),
            "master down: no advert for 3.25 s",
            "the reason says how long it was silent"
        );
    }

    #[test]
    fn master_advertises_every_interval_without_drift() {
        let t0 = Instant::now();
        let mut f = fsm(128, true, t0);
        f.start(t0);
        let t1 = t0 + master_down_interval(1, 128);
        f.handle_timeout(t1);
        let mut sent = 0;
        let mut now = t1;
        for _ in 0..10 {
            now = f.next_deadline().expect("master always has a deadline");
            let out = f.handle_timeout(now);
            assert_eq!(
                out,
                vec![Action::SendAdvert {
                    advbase: 1,
                    advskew: 128
                }]
            );
            sent += 1;
        }
        assert_eq!(sent, 10);
        assert_eq!(now - t1, Duration::from_millis(15_000));
    }

    #[test]
    fn adverts_from_a_preferred_master_keep_us_backup() {
        let t0 = Instant::now();
        let mut f = fsm(100, true, t0);
        f.start(t0);
        for i in 1..20u64 {
            let now = t0 + Duration::from_secs(i);
            assert!(f.handle_advert(now, peer(2, 1, 0)).is_empty());
            assert_eq!(f.handle_timeout(now), vec![]);
        }
        assert_eq!(f.state(), State::Backup);
        let last = t0 + Duration::from_secs(19);
        assert_eq!(
            f.next_deadline(),
            Some(last + master_down_interval(1, 100)),
            "each advert re-arms master down with our own values"
        );
    }

    #[test]
    fn backup_preempts_a_less_preferred_master_only_with_preempt() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        f.start(t0);
        let out = f.handle_advert(t0, peer(2, 1, 100));
        assert_eq!(states(&out), vec![State::Master]);
        assert_eq!(f.reason(), &Reason::Preempt { master: ip(2) });

        let mut g = fsm(0, false, t0);
        g.start(t0);
        assert!(g.handle_advert(t0, peer(2, 1, 100)).is_empty());
        assert_eq!(g.state(), State::Backup);
    }

    #[test]
    fn bow_out_and_too_slow_masters_are_taken_over_even_without_preempt() {
        let t0 = Instant::now();
        let mut f = fsm(200, false, t0);
        f.start(t0);
        let out = f.handle_advert(t0, peer(2, BOW_OUT, BOW_OUT));
        assert_eq!(states(&out), vec![State::Master]);
        assert_eq!(f.reason().to_string(), "bow-out from 192.0.2.2");

        let mut g = fsm(200, false, t0);
        g.start(t0);
        let out = g.handle_advert(t0, peer(2, 4, 0)); // 4 s > 3 x advbase 1
        assert_eq!(states(&out), vec![State::Master]);
        assert!(matches!(g.reason(), Reason::MasterTooSlow { .. }));

        let mut h = fsm(200, false, t0);
        h.start(t0);
        assert!(
            h.handle_advert(t0, peer(2, 3, 0)).is_empty(),
            "3 s is not slower than 3 s"
        );
    }

    #[test]
    fn master_steps_down_for_a_preferred_peer_and_releases() {
        let t0 = Instant::now();
        let mut f = fsm(100, false, t0);
        f.start(t0);
        f.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(f.state(), State::Master);
        let now = t0 + Duration::from_secs(5);
        let out = f.handle_advert(now, peer(2, 1, 0));
        assert_eq!(states(&out), vec![State::Backup]);
        assert!(out.contains(&Action::Release));
        assert!(!out.iter().any(|a| matches!(a, Action::SendAdvert { .. })));
        assert_eq!(
            f.reason().to_string(),
            "more preferred master 192.0.2.2 (advbase 1 advskew 0)"
        );
        assert_eq!(f.next_deadline(), Some(now + master_down_interval(1, 100)));
    }

    #[test]
    fn master_answers_a_worse_claimant_at_once_but_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        f.start(t0);
        f.handle_timeout(t0 + Duration::from_secs(3));
        let now = t0 + Duration::from_millis(3100);
        let out = f.handle_advert(now, peer(2, 1, 50));
        assert_eq!(
            out,
            vec![
                Action::SendAdvert {
                    advbase: 1,
                    advskew: 0
                },
                Action::Reannounce
            ]
        );
        // a flood of worse adverts gets no more answers within the interval
        for ms in 1..100 {
            assert!(f
                .handle_advert(now + Duration::from_millis(ms * 5), peer(2, 1, 50))
                .is_empty());
        }
        assert_eq!(
            f.handle_advert(now + Duration::from_secs(1), peer(2, 1, 50))
                .len(),
            2
        );
        assert_eq!(f.state(), State::Master);
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn fsm_at(local: IpAddr, advskew: u8, preempt: bool, now: Instant) -> Fsm {
        Fsm::new(
            FsmConfig {
                vhid: 1,
                advbase: 1,
                advskew,
                preempt,
                local,
            },
            now,
        )
    }

    fn from(src: IpAddr, advbase: u8, advskew: u8) -> PeerAdvert {
        PeerAdvert {
            src,
            advbase,
            advskew,
        }
    }

    #[test]
    fn tie_key_reads_the_four_bytes_little_endian() {
        // UCarp compares s_addr values on x86: the last octet weighs most.
        assert!(tie_key(v4(192, 0, 3, 1)) < tie_key(v4(192, 0, 2, 200)));
        assert!(tie_key(v4(198, 51, 100, 2)) > tie_key(v4(192, 0, 2, 1)));
        assert!(tie_key(v4(203, 0, 113, 2)) < tie_key(v4(192, 0, 2, 3)));
        // With only the last octet differing it is the numeric order.
        assert!(tie_key(ip(1)) < tie_key(ip(2)));
        assert_eq!(
            tie_key(v4(192, 0, 2, 1)),
            (0, 0x01_02_00_c0),
            "the bytes of s_addr read as a little-endian u32"
        );
    }

    #[test]
    fn exact_tie_goes_to_the_smaller_little_endian_address() {
        let t0 = Instant::now();
        let low_key = v4(192, 0, 3, 1); // numerically higher, wins the tie
        let high_key = v4(192, 0, 2, 200);
        // MASTER 192.0.2.200 hears a tie from 192.0.3.1: it yields, as UCarp.
        let mut f = fsm_at(high_key, 10, true, t0);
        let t = become_master(&mut f, t0);
        let out = f.handle_advert(t, from(low_key, 1, 10));
        assert_eq!(states(&out), vec![State::Backup]);
        assert_eq!(f.master_seen().map(|m| m.advert.src), Some(low_key));
        // MASTER 192.0.3.1 hears a tie from 192.0.2.200: it answers.
        let mut g = fsm_at(low_key, 10, true, t0);
        let t = become_master(&mut g, t0);
        let out = g.handle_advert(t, from(high_key, 1, 10));
        assert!(states(&out).is_empty());
        assert!(out.contains(&Action::Reannounce), "{out:?}");
        assert_eq!(g.state(), State::Master);
        // BACKUP with preempt: preempts a tie it wins, follows one it loses.
        let mut h = fsm_at(low_key, 10, true, t0);
        h.start(t0);
        let out = h.handle_advert(t0, from(high_key, 1, 10));
        assert_eq!(states(&out), vec![State::Master]);
        let mut k = fsm_at(high_key, 10, true, t0);
        k.start(t0);
        assert!(k.handle_advert(t0, from(low_key, 1, 10)).is_empty());
        assert_eq!(k.state(), State::Backup);
    }

    #[test]
    fn a_master_that_won_only_the_tie_is_given_one_more_interval() {
        let t0 = Instant::now();
        let mut f = fsm(10, true, t0); // 192.0.2.1, advskew 10
        let t = become_master(&mut f, t0);
        // 192.0.2.0 has the smaller key: we yield and follow it.
        f.handle_advert(t, peer(0, 1, 10));
        assert_eq!(f.state(), State::Backup);
        let wait = master_down_interval(1, 10) + advert_interval(1, 10);
        assert_eq!(f.next_deadline(), Some(t + wait));
        // A strictly better master gets the plain master-down interval.
        let mut g = fsm(10, true, t0);
        g.start(t0);
        g.handle_advert(t0, peer(2, 1, 0));
        assert_eq!(g.next_deadline(), Some(t0 + master_down_interval(1, 10)));
    }

    #[test]
    fn an_exact_tie_is_reported_with_the_peer() {
        let t0 = Instant::now();
        let mut f = fsm(10, true, t0);
        f.start(t0);
        assert_eq!(f.last_tie(), None);
        f.handle_advert(t0, peer(2, 1, 11));
        assert_eq!(f.last_tie(), None, "advskew 11 is no tie");
        let t = t0 + Duration::from_millis(500);
        f.handle_advert(t, peer(0, 1, 10));
        assert_eq!(f.last_tie(), Some(Tie { peer: ip(0), at: t }));
        // A demoted host compares its configured values: a peer with our
        // configuration is still a tie, a bow-out is not.
        let mut g = fsm(10, true, t0);
        g.set_demoted(t0, true);
        g.start(t0);
        g.handle_advert(t0, peer(2, BOW_OUT, BOW_OUT));
        assert_eq!(g.last_tie(), None);
        g.handle_advert(t0, peer(2, 1, 10));
        assert_eq!(g.last_tie().map(|t| t.peer), Some(ip(2)));
    }

    #[test]
    fn too_slow_counts_our_own_advskew() {
        let t0 = Instant::now();
        // Own 1/128: the bound is 3 x 1 + 128/256 = 3.5 s.
        let mut f = fsm(128, false, t0);
        f.start(t0);
        assert!(
            f.handle_advert(t0, peer(2, 3, 100)).is_empty(),
            "3.39 s is above 3 x advbase but within 3.5 s: a slow master, not a dead one"
        );
        assert_eq!(f.state(), State::Backup);
        let out = f.handle_advert(t0, peer(2, 3, 192)); // 3.75 s
        assert_eq!(states(&out), vec![State::Master]);
        assert_eq!(
            f.reason(),
            &Reason::MasterTooSlow {
                master: ip(2),
                interval: advert_interval(3, 192)
            }
        );
        assert!(f
            .reason()
            .to_string()
            .ends_with("slower than 3 x our advbase + advskew/256"));
    }

    /// Backup 192.0.2.1 (advskew 100, preempt) following master .2 (advskew 0).
    fn backup_following_2(t0: Instant) -> Fsm {
        let mut f = fsm(100, true, t0);
        f.start(t0);
        assert!(f.handle_advert(t0, peer(2, 1, 0)).is_empty());
        f
    }

    #[test]
    fn a_worse_advert_from_a_third_address_changes_nothing_while_the_master_lives() {
        let t0 = Instant::now();
        let mut f = backup_following_2(t0);
        let deadline = f.next_deadline();
        for ms in [100u64, 400, 900] {
            let now = t0 + Duration::from_millis(ms);
            assert!(f.handle_advert(now, peer(3, 1, 200)).is_empty());
            assert!(f.handle_advert(now, peer(3, 1, 101)).is_empty());
        }
        assert_eq!(f.state(), State::Backup);
        assert_eq!(f.next_deadline(), deadline, "no re-arm by a stray advert");
        assert_eq!(f.master_seen().map(|m| m.advert.src), Some(ip(2)));
        // The real master falls silent: master down after our own interval
        // from its last advert, however many stray adverts came.
        let down = t0 + master_down_interval(1, 100);
        assert!(f
            .handle_advert(down - Duration::from_millis(1), peer(3, 1, 200))
            .is_empty());
        let out = f.handle_timeout(down);
        assert_eq!(states(&out), vec![State::Master]);
        assert!(matches!(f.reason(), Reason::MasterDown { .. }));
    }

    #[test]
    fn once_the_followed_master_is_silent_a_worse_advert_preempts_again() {
        let t0 = Instant::now();
        let mut f = backup_following_2(t0);
        let late = t0 + master_down_interval(1, 100);
        // The driver did not get to the timeout yet; the worse advert of .3
        // is the only master left.
        let out = f.handle_advert(late, peer(3, 1, 200));
        assert_eq!(states(&out), vec![State::Master]);
        assert_eq!(f.reason(), &Reason::Preempt { master: ip(3) });
    }

    #[test]
    fn a_better_advert_from_a_third_address_is_followed() {
        let t0 = Instant::now();
        let mut f = fsm(100, true, t0);
        f.start(t0);
        f.handle_advert(t0, peer(3, 1, 50));
        let t = t0 + Duration::from_millis(200);
        assert!(f.handle_advert(t, peer(2, 1, 0)).is_empty());
        assert_eq!(f.master_seen().map(|m| m.advert.src), Some(ip(2)));
        assert_eq!(f.next_deadline(), Some(t + master_down_interval(1, 100)));
        // Now .3 is the stray one.
        assert!(f.handle_advert(t, peer(3, 1, 50)).is_empty());
        assert_eq!(f.master_seen().map(|m| m.advert.src), Some(ip(2)));
    }

    #[test]
    fn bow_out_and_too_slow_count_only_from_the_followed_master() {
        let t0 = Instant::now();
        let mut f = backup_following_2(t0);
        let t = t0 + Duration::from_millis(300);
        assert!(f.handle_advert(t, peer(3, BOW_OUT, BOW_OUT)).is_empty());
        assert!(f.handle_advert(t, peer(3, 9, 0)).is_empty(), "too slow");
        assert_eq!(f.state(), State::Backup);
        let out = f.handle_advert(t, peer(2, BOW_OUT, BOW_OUT));
        assert_eq!(states(&out), vec![State::Master]);
        assert_eq!(f.reason(), &Reason::BowOut { master: ip(2) });

        let mut g = backup_following_2(t0);
        let out = g.handle_advert(t, peer(2, 9, 0));
        assert_eq!(states(&out), vec![State::Master]);
        assert!(matches!(g.reason(), Reason::MasterTooSlow { .. }));
    }

    #[test]
    fn the_followed_master_turning_worse_is_preempted() {
        let t0 = Instant::now();
        let mut f = backup_following_2(t0);
        let out = f.handle_advert(t0 + Duration::from_secs(1), peer(2, 1, 200));
        assert_eq!(states(&out), vec![State::Master]);
        assert_eq!(f.reason(), &Reason::Preempt { master: ip(2) });
        // Without preempt it stays followed.
        let mut g = fsm(100, false, t0);
        g.start(t0);
        g.handle_advert(t0, peer(2, 1, 0));
        let t = t0 + Duration::from_secs(1);
        assert!(g.handle_advert(t, peer(2, 1, 200)).is_empty());
        assert_eq!(g.next_deadline(), Some(t + master_down_interval(1, 100)));
    }

    #[test]
    fn resume_from_init_enters_master_at_once() {
        let t0 = Instant::now();
        let mut f = fsm(100, true, t0);
        let out = f.resume(t0);
        assert_eq!(
            out,
            vec![
                Action::Transition {
                    from: State::Init,
                    to: State::Master,
                    reason: Reason::Resumed
                },
                Action::SendAdvert {
                    advbase: 1,
                    advskew: 100
                },
                Action::Acquire,
            ]
        );
        assert_eq!(f.state(), State::Master);
        assert_eq!(f.next_deadline(), Some(t0 + advert_interval(1, 100)));
        assert_eq!(
            f.reason().to_string(),
            "restarted holding our own leased IPs: resuming as master"
        );
        // It advertises on the usual cadence afterwards.
        let out = f.handle_timeout(t0 + advert_interval(1, 100));
        assert_eq!(
            out,
            vec![Action::SendAdvert {
                advbase: 1,
                advskew: 100
            }]
        );
    }

    #[test]
    fn resume_does_nothing_outside_init() {
        let t0 = Instant::now();
        let mut f = fsm(100, true, t0);
        f.start(t0);
        assert!(f.resume(t0).is_empty(), "BACKUP");
        assert_eq!(f.state(), State::Backup);
        let mut g = fsm(0, true, t0);
        let t = become_master(&mut g, t0);
        assert!(g.resume(t).is_empty(), "MASTER");
        assert_eq!(g.state(), State::Master);
        // A demoted group resumes advertising 255/255, as any demoted master.
        let mut h = fsm(0, true, t0);
        h.set_demoted(t0, true);
        let out = h.resume(t0);
        assert!(out.contains(&Action::SendAdvert {
            advbase: BOW_OUT,
            advskew: BOW_OUT
        }));
    }

    #[test]
    fn link_down_releases_and_silences_and_link_up_restarts() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        f.start(t0);
        f.handle_timeout(t0 + Duration::from_secs(3));
        let out = f.link_down(t0 + Duration::from_secs(4));
        assert_eq!(states(&out), vec![State::Init]);
        assert!(out.contains(&Action::Release));
        assert_eq!(f.next_deadline(), None, "INIT sends nothing");
        assert!(f
            .handle_advert(t0 + Duration::from_secs(5), peer(2, 1, 200))
            .is_empty());
        let out = f.link_up(t0 + Duration::from_secs(6));
        assert_eq!(states(&out), vec![State::Backup]);
    }

    #[test]
    fn shutdown_of_a_master_bows_out_then_releases() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        f.start(t0);
        f.handle_timeout(t0 + Duration::from_secs(3));
        let out = f.shutdown(t0 + Duration::from_secs(4));
        assert_eq!(
            out.first(),
            Some(&Action::SendAdvert {
                advbase: BOW_OUT,
                advskew: BOW_OUT
            })
        );
        assert!(out.contains(&Action::Release));
        assert_eq!(f.state(), State::Init);
        // a backup sends no bow-out
        let mut g = fsm(0, true, t0);
        g.start(t0);
        assert!(!g
            .shutdown(t0)
            .iter()
            .any(|a| matches!(a, Action::SendAdvert { .. })));
    }

    fn become_master(f: &mut Fsm, t0: Instant) -> Instant {
        f.start(t0);
        let t = t0 + Duration::from_secs(4);
        f.handle_timeout(t);
        assert_eq!(f.state(), State::Master);
        t
    }

    #[test]
    fn reconfigure_keeps_a_master_master_and_advertises_the_new_values_at_once() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        let t = become_master(&mut f, t0);
        let t1 = t + Duration::from_millis(300);
        let out = f.reconfigure(t1, 2, 50, false);
        assert_eq!(
            out,
            vec![Action::SendAdvert {
                advbase: 2,
                advskew: 50
            }],
            "no transition, no release: only an advert with the new values"
        );
        assert_eq!(f.state(), State::Master);
        assert_eq!(f.since(), t, "the mastership is the same one");
        assert_eq!(
            f.next_deadline(),
            Some(t1 + advert_interval(2, 50)),
            "the cadence restarts from the reload with the new interval (carp_setrun)"
        );
        let next = t1 + advert_interval(2, 50);
        assert!(f.handle_timeout(next - Duration::from_millis(1)).is_empty());
        assert_eq!(
            f.handle_timeout(next),
            vec![Action::SendAdvert {
                advbase: 2,
                advskew: 50
            }]
        );
        assert_eq!(f.advertised(), (2, 50));
        assert!(!f.config().preempt);
        // Only preempt changed: nothing to send, the cadence stays.
        let d = f.next_deadline();
        assert!(f.reconfigure(next, 2, 50, true).is_empty());
        assert_eq!(f.next_deadline(), d);
        assert!(f.config().preempt);
    }

    #[test]
    fn a_master_made_worse_by_a_reload_loses_only_by_the_normal_rules() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        let t = become_master(&mut f, t0);
        // Our advskew grows above the backup's (100).
        f.reconfigure(t, 1, 200, true);
        assert_eq!(f.state(), State::Master);
        // The backup preempts us (its advert is better): we step down then.
        let out = f.handle_advert(t + Duration::from_millis(10), peer(2, 1, 100));
        assert_eq!(states(&out), vec![State::Backup]);
        assert!(out.contains(&Action::Release));
        // A worse advert (advskew 250) is still answered as master.
        let mut g = fsm(0, true, t0);
        let t = become_master(&mut g, t0);
        g.reconfigure(t, 1, 200, true);
        let out = g.handle_advert(t + Duration::from_millis(10), peer(2, 1, 250));
        assert!(states(&out).is_empty());
        assert_eq!(g.state(), State::Master);
    }

    #[test]
    fn reconfigure_rearms_a_backups_master_down_from_now_with_the_new_values() {
        let t0 = Instant::now();
        let mut f = fsm(100, false, t0);
        f.start(t0);
        let heard = t0 + Duration::from_secs(1);
        f.handle_advert(heard, peer(2, 1, 0));
        assert_eq!(
            f.next_deadline(),
            Some(heard + master_down_interval(1, 100))
        );
        // 2.5 s after the last advert, a reload lowers our advbase/skew:
        // from the last advert the new interval (3 s) would be nearly up,
        // but it counts from now, as FreeBSD's carp_setrun does.
        let t1 = heard + Duration::from_millis(2500);
        assert!(f.reconfigure(t1, 1, 10, true).is_empty());
        assert_eq!(f.state(), State::Backup);
        assert_eq!(f.next_deadline(), Some(t1 + master_down_interval(1, 10)));
        // Larger timers: later deadline.
        let t2 = t1 + Duration::from_millis(100);
        f.reconfigure(t2, 3, 0, true);
        assert_eq!(f.next_deadline(), Some(t2 + master_down_interval(3, 0)));
        // The master still advertising keeps us BACKUP; silence makes us
        // master after the new interval.
        let t3 = t2 + Duration::from_secs(1);
        assert!(f.handle_advert(t3, peer(2, 1, 0)).is_empty());
        assert_eq!(f.next_deadline(), Some(t3 + master_down_interval(3, 0)));
        let out = f.handle_timeout(t3 + master_down_interval(3, 0));
        assert_eq!(states(&out), vec![State::Master]);
        // preempt switched on by the reload applies from the next advert.
        let mut g = fsm(100, false, t0);
        g.start(t0);
        g.handle_advert(heard, peer(2, 1, 50));
        assert!(g.reconfigure(heard, 1, 10, true).is_empty());
        assert_eq!(g.state(), State::Backup);
        let out = g.handle_advert(heard + Duration::from_secs(1), peer(2, 1, 50));
        assert_eq!(states(&out), vec![State::Master]);
    }

    #[test]
    fn reconfigure_in_init_only_changes_the_values() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        assert!(f.reconfigure(t0, 2, 7, false).is_empty());
        assert_eq!(f.state(), State::Init);
        assert_eq!(f.next_deadline(), None);
        f.start(t0);
        assert_eq!(f.next_deadline(), Some(t0 + master_down_interval(2, 7)));
    }

    #[test]
    fn demoting_a_master_releases_then_bows_out_and_leaves_it_backup() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        let t = become_master(&mut f, t0);
        let out = f.set_demoted(t, true);
        assert_eq!(
            out,
            vec![
                Action::Transition {
                    from: State::Master,
                    to: State::Backup,
                    reason: Reason::Demoted
                },
                Action::Release,
                Action::SendAdvert {
                    advbase: BOW_OUT,
                    advskew: BOW_OUT
                },
            ],
            "the IPs go first, then the advert peers take over on"
        );
        assert!(f.is_demoted());
        assert_eq!(f.advertised(), (BOW_OUT, BOW_OUT));
        assert!(
            f.set_demoted(t, true).is_empty(),
            "demoting twice is a no-op"
        );
        // The peer that took over advertises; a demoted backup stays backup
        // even though it is preferred and preempt is on.
        for i in 1..10u64 {
            let now = t + Duration::from_secs(i);
            assert!(f.handle_advert(now, peer(2, 1, 100)).is_empty());
            assert!(f.handle_timeout(now).is_empty());
        }
        assert_eq!(f.state(), State::Backup);
    }

    #[test]
    fn a_demoted_backup_ignores_bow_outs_but_takes_a_silent_lan() {
        let t0 = Instant::now();
        let mut f = fsm(0, false, t0);
        f.set_demoted(t0, true);
        f.start(t0);
        assert!(
            f.handle_advert(t0, peer(2, BOW_OUT, BOW_OUT)).is_empty(),
            "another demoted master must not make us flap"
        );
        assert!(f.handle_advert(t0, peer(2, 5, 0)).is_empty(), "too slow");
        assert_eq!(f.state(), State::Backup);
        let down = t0 + master_down_interval(1, 0);
        let out = f.handle_timeout(down);
        assert_eq!(states(&out), vec![State::Master]);
        assert!(out.contains(&Action::Acquire));
        assert!(
            out.contains(&Action::SendAdvert {
                advbase: BOW_OUT,
                advskew: BOW_OUT
            }),
            "it advertises as least preferred: {out:?}"
        );
        // ... at its configured rate, not every 255 s.
        assert_eq!(f.next_deadline(), Some(down + Duration::from_secs(1)));
        // A normal peer coming up takes over at once (bow-out rule) and its
        // first advert sends us back to BACKUP, even though our configured
        // advskew 0 beats its 100.
        let out = f.handle_advert(down + Duration::from_millis(300), peer(2, 1, 100));
        assert_eq!(states(&out), vec![State::Backup]);
        assert!(out.contains(&Action::Release));
    }

    #[test]
    fn promotion_makes_a_lone_master_advertise_its_values_and_a_backup_preempt() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        f.set_demoted(t0, true);
        let t = become_master(&mut f, t0);
        assert_eq!(
            f.set_demoted(t, false),
            vec![Action::SendAdvert {
                advbase: 1,
                advskew: 0
            }]
        );
        assert_eq!(f.state(), State::Master);

        let mut g = fsm(0, true, t0);
        g.set_demoted(t0, true);
        g.start(t0);
        assert!(g.handle_advert(t0, peer(2, 1, 100)).is_empty());
        assert!(
            g.set_demoted(t0, false).is_empty(),
            "nothing to send as backup"
        );
        let out = g.handle_advert(t0 + Duration::from_secs(1), peer(2, 1, 100));
        assert_eq!(states(&out), vec![State::Master]);
        assert_eq!(g.reason(), &Reason::Preempt { master: ip(2) });
    }

    #[test]
    fn link_up_says_so() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        f.start(t0);
        f.link_down(t0);
        assert_eq!(states(&f.link_up(t0)), vec![State::Backup]);
        assert_eq!(f.reason().to_string(), "link up, waiting for a master");
        assert!(f.link_up(t0).is_empty(), "already up");
    }

    #[test]
    fn our_own_looped_advert_is_ignored() {
        let t0 = Instant::now();
        let mut f = fsm(0, true, t0);
        f.start(t0);
        assert!(f.handle_advert(t0, peer(1, 1, 200)).is_empty());
        assert_eq!(f.state(), State::Backup);
    }

    fn ip6(last: u16) -> IpAddr {
        IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last))
    }

    fn peer6(last: u16, advbase: u8, advskew: u8) -> PeerAdvert {
        PeerAdvert {
            src: ip6(last),
            advbase,
            advskew,
        }
    }

    /// A master whose group has IPv6 addresses advertises on both
    /// families: 192.0.2.2 and fe80::2 are one host. Its IPv6 adverts keep
    /// us waiting for it (no master-down while only they arrive), the
    /// master we follow stays known by its IPv4 source, and nothing moves.
    #[test]
    fn the_followed_masters_ipv6_advert_is_the_same_master() {
        let t0 = Instant::now();
        let mut f = fsm(100, true, t0);
        f.start(t0);
        assert!(f.handle_advert(t0, peer(2, 1, 0)).is_empty());
        let mut now = t0;
        for i in 1..=10u64 {
            now = t0 + Duration::from_secs(i);
            // Only the IPv6 copy arrives (e.g. IPv4 filtered): still the master.
            assert!(f.handle_advert(now, peer6(2, 1, 0)).is_empty());
            assert_eq!(
                f.master_seen().map(|m| (m.advert.src, m.at)),
                Some((ip(2), now))
            );
        }
        assert_eq!(f.next_deadline(), Some(now + master_down_interval(1, 100)));
        assert!(f.handle_advert(now, peer(2, 1, 0)).is_empty());
        assert_eq!(f.state(), State::Backup);
    }

    /// IPv6 first (right after start): followed by its link-local address,
    /// then the IPv4 copy takes over as the name of the same master.
    #[test]
    fn an_ipv4_copy_renames_a_master_first_heard_on_ipv6() {
        let t0 = Instant::now();
        let mut f = fsm(100, true, t0);
        f.start(t0);
        assert!(f.handle_advert(t0, peer6(2, 1, 0)).is_empty());
        assert_eq!(f.master_seen().map(|m| m.advert.src), Some(ip6(2)));
        assert!(f.handle_advert(t0, peer(2, 1, 0)).is_empty());
        assert_eq!(f.master_seen().map(|m| m.advert.src), Some(ip(2)));
        let t1 = t0 + Duration::from_secs(1);
        assert!(f.handle_advert(t1, peer6(2, 1, 0)).is_empty());
        assert_eq!(f.master_seen().map(|m| m.advert.src), Some(ip(2)));
    }

    /// An exact tie is never preempted on an IPv6 advert: which IPv4
    /// source (the tie key) stands behind a link-local address is known
    /// only from the host's IPv4 advert, which then decides as before.
    #[test]
    fn exact_tie_is_not_preempted_on_an_ipv6_advert() {
        let t0 = Instant::now();
        // We are 192.0.2.1; 192.0.2.2 has the larger key (last octet weighs most).
        let mut f = fsm(0, true, t0);
        f.start(t0);
        assert!(f.handle_advert(t0, peer6(2, 1, 0)).is_empty());
        assert_eq!(f.state(), State::Backup);
        let out = f.handle_advert(t0, peer(2, 1, 0));
        assert_eq!(states(&out), vec![State::Master], "the IPv4 advert decides");
        // A worse peer's IPv6 advert is still preempted (not a tie).
        let mut g = fsm(0, true, t0);
        g.start(t0);
        let out = g.handle_advert(t0, peer6(2, 1, 100));
        assert_eq!(states(&out), vec![State::Master]);
    }

    /// Another host on IPv6 with other values than the followed master is
    /// still a third address: no preemption, no re-arming.
    #[test]
    fn an_ipv6_advert_with_other_values_is_a_third_address() {
        let t0 = Instant::now();
        let mut f = fsm(50, true, t0);
        f.start(t0);
        f.handle_advert(t0, peer(2, 1, 0));
        let t1 = t0 + Duration::from_secs(1);
        assert!(f.handle_advert(t1, peer6(3, 1, 200)).is_empty());
        assert_eq!(f.master_seen().map(|m| m.at), Some(t0));
        assert_eq!(f.state(), State::Backup);
    }

    /// The master's bow-out arrives on both families, in either order:
    /// one takeover.
    #[test]
    fn bow_out_on_both_families_takes_over_once() {
        for v6_first in [false, true] {
            let t0 = Instant::now();
            let mut f = fsm(100, false, t0);
            f.start(t0);
            f.handle_advert(t0, peer(2, 1, 0));
            f.handle_advert(t0, peer6(2, 1, 0));
            let t1 = t0 + Duration::from_millis(500);
            let (first, second) = if v6_first {
                (peer6(2, 255, 255), peer(2, 255, 255))
            } else {
                (peer(2, 255, 255), peer6(2, 255, 255))
            };
            let a = f.handle_advert(t1, first);
            let b = f.handle_advert(t1, second);
            let all: Vec<State> = states(&a).into_iter().chain(states(&b)).collect();
            assert_eq!(all, vec![State::Master], "v6 first: {v6_first}");
        }
    }
}
