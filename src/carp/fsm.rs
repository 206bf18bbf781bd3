//! The CARP election of one group (one vhid), as a pure state machine.
//!
//! No clock, socket or task lives here: the driver feeds the current time and
//! events in ([`Fsm::start`], [`Fsm::handle_advert`], [`Fsm::handle_timeout`],
//! [`Fsm::link_down`], ...) and executes the [`Action`]s that come out. It asks
//! [`Fsm::next_deadline`] when to call [`Fsm::handle_timeout`] next. This keeps
//! every election rule testable with a virtual clock (see `tests/sim_lan.rs`).
//!
//! The rules follow FreeBSD `sys/netinet/ip_carp.c` (`carp_input_c`,
//! `carp_master_down`, `carp_setrun`) and ucarp `src/carp.c`, with two
//! deliberate differences written down in DESIGN.md §4:
//! - on an exact tie of intervals the lower source address wins (FreeBSD makes
//!   both step down; ucarp compares addresses too);
//! - a MASTER hearing a *worse* advert answers at once with its own advert and
//!   re-announces its IPs, so a confused peer steps down and neighbours that
//!   followed its gratuitous ARP come back (OpenBSD does the former).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Election parameters of one group, fixed for the life of an [`Fsm`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    pub vhid: u8,
    /// Advert base interval, seconds (1..=255).
    pub advbase: u8,
    /// Skew added to the interval in 1/256 s (0..=254); lower is preferred.
    pub advskew: u8,
    /// Take over from a less preferred master.
    pub preempt: bool,
    /// Our advert source address: breaks ties between equal intervals.
    pub local: IpAddr,
}

/// advbase and advskew of the bow-out advert (DESIGN.md §3 "Graceful stop").
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
    /// The master advertises slower than 3 × our advbase: it is as good as gone
    /// (FreeBSD: "master will time out").
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
    /// Restarted holding our own leased IPs (see [`Fsm::resume`]).
    Resumed,
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
                "master {master} advertises every {:.2} s, slower than 3 x our advbase",
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
            Reason::Resumed => {
                f.write_str("restarted holding our own leased IPs: resuming as master")
            }
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

/// The last master heard from, for status and tie-breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterSeen {
    pub advert: PeerAdvert,
    pub at: Instant,
}

/// `advbase + advskew/256` seconds (FreeBSD `carp_setrun`).
pub fn advert_interval(advbase: u8, advskew: u8) -> Duration {
    Duration::from_secs(u64::from(advbase))
        + Duration::from_nanos(u64::from(advskew) * 1_000_000_000 / 256)
}

/// `3 × advbase + advskew/256` seconds: how long a BACKUP waits in silence
/// (FreeBSD `carp_setrun`, BACKUP case: `tv.tv_sec = 3 * sc->sc_advbase`).
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
    master: Option<MasterSeen>,
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
    /// The last master heard (while we were not master, or contesting us).
    pub fn master_seen(&self) -> Option<MasterSeen> {
        self.master
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

    /// Begin the election: INIT -> BACKUP, wait for a master.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Init {
            self.enter(now, State::Backup, Reason::Startup, &mut out);
        }
        out
    }

    /// Begin as MASTER: the daemon restarted and found its own leased IPs
    /// still on the NIC (docs/safety.md, "Restarts"). A better peer's
    /// next advert sends us to BACKUP as usual.
    pub fn resume(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Init {
            self.enter(now, State::Master, Reason::Resumed, &mut out);
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
        let mut out = Vec::new();
        if self.demoted == demoted {
            return out;
        }
        self.demoted = demoted;
        if self.state == State::Master {
            if demoted {
                self.enter(now, State::Backup, Reason::Demoted, &mut out);
            }
            out.push(self.own_advert());
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
    pub fn handle_advert(&mut self, now: Instant, adv: PeerAdvert) -> Vec<Action> {
        let mut out = Vec::new();
        if adv.src == self.cfg.local {
            return out; // our own advert looped back; the driver should drop it earlier
        }
        match self.state {
            State::Init => {
                self.master = Some(MasterSeen {
                    advert: adv,
                    at: now,
                });
            }
            State::Backup => {
                self.master = Some(MasterSeen {
                    advert: adv,
                    at: now,
                });
                // FreeBSD carp_input_c, BACKUP: a master that will surely time
                // out is treated as timed out now; 255/255 is the bow-out.
                let too_slow = Duration::from_secs(3 * u64::from(self.cfg.advbase));
                if self.demoted {
                    // Never take over early: only a silent LAN makes a
                    // demoted host master (see `set_demoted`).
                    self.deadline = Some(now + self.master_down_after());
                } else if adv.is_bow_out() {
                    self.enter(
                        now,
                        State::Master,
                        Reason::BowOut { master: adv.src },
                        &mut out,
                    );
                } else if adv.interval() > too_slow {
                    let reason = Reason::MasterTooSlow {
                        master: adv.src,
                        interval: adv.interval(),
                    };
                    self.enter(now, State::Master, reason, &mut out);
                } else if self.cfg.preempt && self.preferred_over(&adv) {
                    self.enter(
                        now,
                        State::Master,
                        Reason::Preempt { master: adv.src },
                        &mut out,
                    );
                } else {
                    self.deadline = Some(now + self.master_down_after());
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
                    self.master = Some(MasterSeen {
                        advert: adv,
                        at: now,
                    });
                    let reason = Reason::MorePreferred {
                        master: adv.src,
                        advbase: adv.advbase,
                        advskew: adv.advskew,
                    };
                    self.enter(now, State::Backup, reason, &mut out);
                }
            }
        }
        out
    }

    /// Are we preferred over `peer`? Smaller interval wins; an exact tie goes
    /// to the lower source address (DESIGN.md §4).
    fn preferred_over(&self, peer: &PeerAdvert) -> bool {
        let (advbase, advskew) = self.advertised();
        let ours = advert_interval(advbase, advskew);
        let theirs = peer.interval();
        ours < theirs || (ours == theirs && self.cfg.local < peer.src)
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

    #[test]
    fn exact_tie_goes_to_the_lower_address() {
        let t0 = Instant::now();
        // we are 192.0.2.1: a tie with .2 is ours
        let mut f = fsm(10, true, t0);
        f.start(t0);
        assert_eq!(
            states(&f.handle_advert(t0, peer(2, 1, 10))),
            vec![State::Master]
        );
        // and a tie with .0 is theirs
        let out = f.handle_advert(t0 + Duration::from_millis(10), peer(0, 1, 10));
        assert_eq!(states(&out), vec![State::Backup]);
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
}
