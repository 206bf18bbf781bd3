//! Several CARP state machines on a simulated LAN with a virtual clock:
//! latency, loss, crashes and partitions, no sockets and no real time.
//! Asserts the promises of `docs/interop.md`: takeover within
//! `3 × advbase + advskew/256`, preemption, exactly one master after a
//! partition heals, and convergence with models of the two other CARP
//! implementations ipfail meets on a LAN: UCarp (`jedisct1/UCarp`
//! `src/carp.c`) and FreeBSD's kernel CARP (`sys/netinet/ip_carp.c`).
//! The models implement only their input rules, as read in those sources.

use ipfail::carp::fsm::{
    advert_interval, master_down_interval, Action, Fsm, FsmConfig, PeerAdvert, Reason, State,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(1);

/// One CARP implementation as the LAN sees it: time and adverts in,
/// [`Action`]s out (only `Transition`, `SendAdvert`, `Acquire`, `Release`
/// matter to the LAN).
trait Peer {
    fn start(&mut self, now: Instant) -> Vec<Action>;
    fn handle_advert(&mut self, now: Instant, adv: PeerAdvert) -> Vec<Action>;
    fn handle_timeout(&mut self, now: Instant) -> Vec<Action>;
    /// Graceful stop (ipfail bows out; the others just fall silent).
    fn shutdown(&mut self, now: Instant) -> Vec<Action>;
    fn next_deadline(&self) -> Option<Instant>;
    fn state(&self) -> State;
    /// The same host after a crash and restart, not started yet.
    fn restarted(&self, now: Instant) -> Box<dyn Peer>;
}

impl Peer for Fsm {
    fn start(&mut self, now: Instant) -> Vec<Action> {
        Fsm::start(self, now)
    }
    fn handle_advert(&mut self, now: Instant, adv: PeerAdvert) -> Vec<Action> {
        Fsm::handle_advert(self, now, adv)
    }
    fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        Fsm::handle_timeout(self, now)
    }
    fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        Fsm::shutdown(self, now)
    }
    fn next_deadline(&self) -> Option<Instant> {
        Fsm::next_deadline(self)
    }
    fn state(&self) -> State {
        Fsm::state(self)
    }
    fn restarted(&self, now: Instant) -> Box<dyn Peer> {
        Box::new(Fsm::new(self.config().clone(), now))
    }
}

/// The timers and state both models share.
#[derive(Clone)]
struct Carp {
    src: IpAddr,
    advbase: u8,
    advskew: u8,
    preempt: bool,
    state: State,
    /// Master down (`sc_md_tmo`), armed in BACKUP.
    md_tmo: Option<Instant>,
    /// Next advert (`sc_ad_tmo`), armed in MASTER.
    ad_tmo: Option<Instant>,
}

impl Carp {
    fn new(src: IpAddr, advbase: u8, advskew: u8, preempt: bool) -> Carp {
        Carp {
            src,
            advbase,
            advskew,
            preempt,
            state: State::Init,
            md_tmo: None,
            ad_tmo: None,
        }
    }
    /// `sc_tv`: own advbase + advskew/256.
    fn own(&self) -> Duration {
        advert_interval(self.advbase, self.advskew)
    }
    /// `carp_setrun` BACKUP: `tv.tv_sec = 3 * advbase` (UCarp: `advbase *
    /// dead_ratio`, default 3), `tv.tv_usec = advskew * 1000000 / 256`.
    fn master_down(&self) -> Duration {
        master_down_interval(self.advbase, self.advskew)
    }
    fn set_state(&mut self, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        out.push(Action::Transition { from, to, reason });
        match to {
            State::Master => out.push(Action::Acquire),
            State::Backup | State::Init => {
                if from == State::Master {
                    out.push(Action::Release)
                }
            }
        }
        self.state = to;
    }
    /// `carp_setrun`.
    fn setrun(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Init => {
                self.set_state(State::Backup, Reason::Startup, out);
                self.setrun(now, out);
            }
            State::Backup => {
                self.ad_tmo = None;
                self.md_tmo = Some(now + self.master_down());
            }
            State::Master => {
                self.md_tmo = None;
                self.ad_tmo = Some(now + self.own());
            }
        }
    }
    /// `carp_send_ad`: one advert, next one an interval later.
    fn send_ad(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            advbase: self.advbase,
            advskew: self.advskew,
        });
        self.ad_tmo = Some(now + self.own());
    }
    /// `carp_master_down` (both): BACKUP -> MASTER, advertise, setrun.
    fn master_down_now(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        if self.state != State::Backup {
            return;
        }
        self.set_state(State::Master, reason, out);
        self.send_ad(now, out);
        self.setrun(now, out);
    }
    fn timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.md_tmo.is_some_and(|t| now >= t) {
            self.md_tmo = None;
            let silence = Reason::MasterDown {
                silence: self.master_down(),
            };
            self.master_down_now(now, silence, &mut out);
        }
        if self.state == State::Master && self.ad_tmo.is_some_and(|t| now >= t) {
            self.send_ad(now, &mut out);
        }
        out
    }
    fn deadline(&self) -> Option<Instant> {
        match (self.md_tmo, self.ad_tmo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    /// BACKUP tail shared by both: preempt a slower master, take over from
    /// one that will time out (`sc_tv.tv_sec = advbase * 3`, usec kept),
    /// else re-arm master down.
    fn backup_input(&mut self, now: Instant, adv: &PeerAdvert, out: &mut Vec<Action>) {
        let ch_tv = adv.interval();
        if self.preempt && self.own() < ch_tv {
            let reason = Reason::Preempt { master: adv.src };
            self.master_down_now(now, reason, out);
            return;
        }
        if self.master_down() < ch_tv {
            let reason = Reason::MasterTooSlow {
                master: adv.src,
                interval: ch_tv,
            };
            self.master_down_now(now, reason, out);
            return;
        }
        self.setrun(now, out);
    }
}

/// UCarp `src/carp.c` (`packethandler`, `carp_master_down`, `carp_setrun`,
/// `carp_send_ad`). A MASTER yields to a shorter interval, or to an equal
/// one from a source whose `s_addr` is smaller *as a host integer*
/// (`iphead.ip_src.s_addr < srcip.s_addr`, little-endian on x86), sending
/// one advert first; a BACKUP never acts on a tie. SIGTERM sends nothing.
struct Ucarp(Carp);

/// `s_addr` read as a host (little-endian) integer, as UCarp compares it.
fn s_addr_le(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        IpAddr::V6(_) => u32::MAX,
    }
}

impl Peer for Ucarp {
    fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.0.setrun(now, &mut out);
        out
    }
    fn handle_advert(&mut self, now: Instant, adv: PeerAdvert) -> Vec<Action> {
        let c = &mut self.0;
        let mut out = Vec::new();
        let (sc_tv, ch_tv) = (c.own(), adv.interval());
        match c.state {
            State::Init => {}
            State::Master => {
                if sc_tv > ch_tv || (sc_tv == ch_tv && s_addr_le(adv.src) < s_addr_le(c.src)) {
                    c.send_ad(now, &mut out);
                    let reason = Reason::MorePreferred {
                        master: adv.src,
                        advbase: adv.advbase,
                        advskew: adv.advskew,
                    };
                    c.set_state(State::Backup, reason, &mut out);
                    c.setrun(now, &mut out);
                }
                // A worse master only gets a gratuitous ARP: no advert.
            }
            State::Backup => c.backup_input(now, &adv, &mut out),
        }
        out
    }
    fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        self.0.timeout(now)
    }
    fn shutdown(&mut self, _now: Instant) -> Vec<Action> {
        // `sighandler_exit` -> downscript and _exit: no bow-out advert.
        vec![Action::Release]
    }
    fn next_deadline(&self) -> Option<Instant> {
        self.0.deadline()
    }
    fn state(&self) -> State {
        self.0.state
    }
    fn restarted(&self, _now: Instant) -> Box<dyn Peer> {
        let c = &self.0;
        Box::new(Ucarp(Carp::new(c.src, c.advbase, c.advskew, c.preempt)))
    }
}

/// FreeBSD `sys/netinet/ip_carp.c` (`carp_input_c`,
/// `carp_master_down_locked`, `carp_setrun`). A MASTER yields to a shorter
/// *or equal* interval (`timevalcmp(&sc_tv, &ch_tv, >) || ... ==`),
/// whatever the addresses; a BACKUP preempts (sysctl `net.inet.carp.preempt`)
/// only a strictly longer interval. Stopping sends nothing.
struct FreeBsd(Carp);

impl Peer for FreeBsd {
    fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.0.setrun(now, &mut out);
        out
    }
    fn handle_advert(&mut self, now: Instant, adv: PeerAdvert) -> Vec<Action> {
        let c = &mut self.0;
        let mut out = Vec::new();
        match c.state {
            State::Init => {}
            State::Master => {
                if c.own() >= adv.interval() {
                    c.ad_tmo = None; // callout_stop(&sc->sc_ad_tmo)
                    let reason = Reason::MorePreferred {
                        master: adv.src,
                        advbase: adv.advbase,
                        advskew: adv.advskew,
                    };
                    c.set_state(State::Backup, reason, &mut out);
                    c.setrun(now, &mut out);
                }
            }
            State::Backup => c.backup_input(now, &adv, &mut out),
        }
        out
    }
    fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        self.0.timeout(now)
    }
    fn shutdown(&mut self, _now: Instant) -> Vec<Action> {
        vec![Action::Release]
    }
    fn next_deadline(&self) -> Option<Instant> {
        self.0.deadline()
    }
    fn state(&self) -> State {
        self.0.state
    }
    fn restarted(&self, _now: Instant) -> Box<dyn Peer> {
        let c = &self.0;
        Box::new(FreeBsd(Carp::new(c.src, c.advbase, c.advskew, c.preempt)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ipfail,
    Ucarp,
    FreeBsd,
}

/// One host of a mixed LAN.
#[derive(Clone, Copy, Debug)]
struct Spec {
    kind: Kind,
    addr: IpAddr,
    advbase: u8,
    advskew: u8,
    preempt: bool,
}

fn spec(kind: Kind, addr: [u8; 4], advskew: u8, preempt: bool) -> Spec {
    Spec {
        kind,
        addr: IpAddr::V4(Ipv4Addr::from(addr)),
        advbase: 1,
        advskew,
        preempt,
    }
}

struct Node {
    peer: Box<dyn Peer>,
    addr: IpAddr,
    alive: bool,
    /// Partition label: adverts reach only nodes with the same label.
    side: u8,
    holds_ips: bool,
}

struct Lan {
    t0: Instant,
    now: Instant,
    nodes: Vec<Node>,
    /// Deliveries in flight: (time, seq) -> (to, advert).
    wire: BTreeMap<(Instant, u64), (usize, PeerAdvert)>,
    seq: u64,
    loss_permille: u32,
    rng: u64,
    /// Every time a node entered MASTER: (time, node).
    became_master: Vec<(Instant, usize)>,
    /// Every transition: (time, node, to).
    transitions: Vec<(Instant, usize, State)>,
}

impl Lan {
    /// ipfail hosts 192.0.2.1, .2, ... with (advbase, advskew, preempt).
    fn new(skews: &[(u8, u8, bool)]) -> Lan {
        let specs: Vec<Spec> = skews
            .iter()
            .enumerate()
            .map(|(i, &(advbase, advskew, preempt))| Spec {
                kind: Kind::Ipfail,
                addr: addr(i),
                advbase,
                advskew,
                preempt,
            })
            .collect();
        Lan::mixed(&specs)
    }

    fn mixed(specs: &[Spec]) -> Lan {
        let t0 = Instant::now();
        let nodes = specs
            .iter()
            .map(|s| {
                let peer: Box<dyn Peer> = match s.kind {
                    Kind::Ipfail => Box::new(Fsm::new(
                        FsmConfig {
                            vhid: 1,
                            advbase: s.advbase,
                            advskew: s.advskew,
                            preempt: s.preempt,
                            local: s.addr,
                        },
                        t0,
                    )),
                    Kind::Ucarp => {
                        Box::new(Ucarp(Carp::new(s.addr, s.advbase, s.advskew, s.preempt)))
                    }
                    Kind::FreeBsd => {
                        Box::new(FreeBsd(Carp::new(s.addr, s.advbase, s.advskew, s.preempt)))
                    }
                };
                Node {
                    peer,
                    addr: s.addr,
                    alive: false,
                    side: 0,
                    holds_ips: false,
                }
            })
            .collect();
        Lan {
            t0,
            now: t0,
            nodes,
            wire: BTreeMap::new(),
            seq: 0,
            loss_permille: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            became_master: Vec::new(),
            transitions: Vec::new(),
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64: deterministic, so a failure reproduces
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn start(&mut self, i: usize) {
        self.nodes[i].alive = true;
        let out = self.nodes[i].peer.start(self.now);
        self.apply(i, out);
    }

    /// Crash: no bow-out, IPs vanish with the host.
    fn crash(&mut self, i: usize) {
        self.nodes[i].alive = false;
        self.nodes[i].holds_ips = false;
        let now = self.now;
        self.nodes[i].peer = self.nodes[i].peer.restarted(now);
    }

    fn stop(&mut self, i: usize) {
        let out = self.nodes[i].peer.shutdown(self.now);
        self.apply(i, out);
        self.nodes[i].alive = false;
        let now = self.now;
        self.nodes[i].peer = self.nodes[i].peer.restarted(now);
    }

    /// Puts an advert on the wire as if `src` had sent it, for node `to`.
    fn inject(&mut self, to: usize, adv: PeerAdvert) {
        self.seq += 1;
        self.wire.insert((self.now + LATENCY, self.seq), (to, adv));
    }

    fn apply(&mut self, from: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendAdvert { advbase, advskew } => {
                    let adv = PeerAdvert {
                        src: self.nodes[from].addr,
                        advbase,
                        advskew,
                    };
                    for to in 0..self.nodes.len() {
                        if to == from || self.nodes[to].side != self.nodes[from].side {
                            continue;
                        }
                        if self.loss_permille > 0
                            && (self.random() % 1000) < u64::from(self.loss_permille)
                        {
                            continue;
                        }
                        self.inject(to, adv);
                    }
                }
                Action::Acquire => self.nodes[from].holds_ips = true,
                Action::Release => self.nodes[from].holds_ips = false,
                Action::Reannounce => {}
                Action::Transition { to, .. } => {
                    self.transitions.push((self.now, from, to));
                    if to == State::Master {
                        self.became_master.push((self.now, from));
                    }
                }
            }
        }
    }

    /// Advance virtual time to `until`, processing every event on the way.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next_wire = self.wire.keys().next().map(|k| k.0);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| n.peer.next_deadline())
                .min();
            let next = match (next_wire, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if next_wire == Some(next) {
                let (&key, &(to, adv)) = self.wire.iter().next().expect("peeked above");
                self.wire.remove(&key);
                if self.nodes[to].alive {
                    let out = self.nodes[to].peer.handle_advert(self.now, adv);
                    self.apply(to, out);
                }
            } else {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].alive && self.nodes[i].peer.next_deadline() == Some(next) {
                        let out = self.nodes[i].peer.handle_timeout(self.now);
                        self.apply(i, out);
                    }
                }
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].peer.state() == State::Master)
            .collect()
    }

    fn holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].holds_ips)
            .collect()
    }

    fn first_master_since(&self, t: Instant, node: usize) -> Option<Instant> {
        self.became_master
            .iter()
            .find(|&&(at, n)| at >= t && n == node)
            .map(|&(at, _)| at)
    }

    /// Transitions of any node after `t`.
    fn transitions_since(&self, t: Instant) -> usize {
        self.transitions
            .iter()
            .filter(|&&(at, _, _)| at > t)
            .count()
    }

    /// The first time from `t` on after which exactly one live node is
    /// master until now (steps of `step`), if any.
    fn single_master_since(&mut self, until: Duration, step: Duration) -> Option<Duration> {
        let start = self.now;
        let mut settled: Option<Instant> = None;
        while self.now < start + until {
            self.run_for(step);
            if self.masters().len() == 1 && self.holders().len() == 1 {
                settled.get_or_insert(self.now);
            } else {
                settled = None;
            }
        }
        settled.map(|t| t - start)
    }
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8))
}

#[test]
fn preferred_host_wins_and_backup_takes_over_within_master_down() {
    let mut lan = Lan::new(&[(1, 0, true), (1, 100, true)]);
    lan.start(0);
    lan.start(1);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![0]);
    assert_eq!(lan.holders(), vec![0]);

    let crash_at = lan.now;
    lan.crash(0);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![1]);
    let took_over = lan
        .first_master_since(crash_at, 1)
        .expect("backup became master");
    let bound = master_down_interval(1, 100) + LATENCY;
    assert!(
        took_over - crash_at <= bound,
        "takeover took {:?}, bound {:?}",
        took_over - crash_at,
        bound
    );
    // It is not instant either: the backup waits the master-down interval.
    assert!(took_over - crash_at >= master_down_interval(1, 100) - Duration::from_secs(1));
}

#[test]
fn bow_out_hands_over_within_one_latency() {
    let mut lan = Lan::new(&[(1, 0, true), (1, 100, true)]);
    lan.start(0);
    lan.start(1);
    lan.run_for(Duration::from_secs(10));
    let stop_at = lan.now;
    lan.stop(0);
    lan.run_for(Duration::from_secs(1));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(lan.holders(), vec![1]);
    assert_eq!(lan.first_master_since(stop_at, 1), Some(stop_at + LATENCY));
}

#[test]
fn returning_preferred_host_preempts_with_preempt_and_not_without() {
    for preempt in [true, false] {
        let mut lan = Lan::new(&[(1, 0, preempt), (1, 100, preempt)]);
        lan.start(1);
        lan.run_for(Duration::from_secs(10));
        assert_eq!(lan.masters(), vec![1]);
        let back_at = lan.now;
        lan.start(0);
        lan.run_for(Duration::from_secs(10));
        if preempt {
            assert_eq!(lan.masters(), vec![0]);
            let t = lan.first_master_since(back_at, 0).expect("preempted");
            // it preempts on the first advert it hears, within one interval of node 1
            assert!(
                t - back_at <= Duration::from_millis(1391 + 1),
                "{:?}",
                t - back_at
            );
        } else {
            assert_eq!(
                lan.masters(),
                vec![1],
                "no preempt: the current master stays"
            );
        }
        assert_eq!(lan.holders().len(), 1);
    }
}

#[test]
fn partition_gives_two_masters_and_healing_leaves_exactly_one() {
    let mut lan = Lan::new(&[(1, 0, true), (1, 50, true), (1, 100, true)]);
    for i in 0..3 {
        lan.start(i);
    }
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![0]);
    // split {0} | {1, 2}
    lan.nodes[0].side = 0;
    lan.nodes[1].side = 1;
    lan.nodes[2].side = 1;
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![0, 1], "each side elects its own master");
    // heal
    for n in &mut lan.nodes {
        n.side = 0;
    }
    let healed = lan.now;
    lan.run_for(Duration::from_secs(5));
    assert_eq!(lan.masters(), vec![0]);
    assert_eq!(lan.holders(), vec![0]);
    // the loser stepped down on the first advert it heard from the winner
    let settle = lan
        .became_master
        .iter()
        .filter(|&&(t, _)| t > healed)
        .count();
    assert_eq!(settle, 0, "healing causes no new master");
}

#[test]
fn equal_ipfail_hosts_settle_on_the_smaller_address_in_any_start_order() {
    for order in [[0usize, 1], [1, 0]] {
        let mut lan = Lan::new(&[(1, 0, true), (1, 0, true)]);
        lan.start(order[0]);
        lan.run_for(Duration::from_secs(5));
        lan.start(order[1]);
        lan.run_for(Duration::from_secs(5));
        assert_eq!(lan.masters(), vec![0], "start order {order:?}");
        assert_eq!(lan.holders(), vec![0]);
    }
}

#[test]
fn lossy_lan_with_crashes_always_settles_on_the_best_live_host() {
    // 3 hosts, 20% loss, random crashes and restarts over 30 virtual minutes.
    let mut lan = Lan::new(&[(1, 0, true), (1, 40, true), (2, 0, true)]);
    lan.loss_permille = 200;
    for i in 0..3 {
        lan.start(i);
    }
    let mut checks = 0;
    for _round in 0..120 {
        let victim = (lan.random() % 3) as usize;
        if lan.nodes[victim].alive {
            if lan.random() % 2 == 0 {
                lan.crash(victim);
            } else {
                lan.stop(victim);
            }
        } else {
            lan.start(victim);
        }
        // settle without loss, then check
        lan.run_for(Duration::from_secs(5));
        lan.loss_permille = 0;
        lan.run_for(Duration::from_secs(10));
        let best = (0..3).find(|&i| lan.nodes[i].alive);
        match best {
            Some(b) => {
                assert_eq!(lan.masters(), vec![b], "at {:?}", lan.now - lan.t0);
                assert_eq!(lan.holders(), vec![b]);
                checks += 1;
            }
            None => assert!(lan.holders().is_empty()),
        }
        lan.loss_permille = 200;
    }
    assert!(checks > 60, "most rounds had a live host ({checks})");
}

#[test]
fn lossy_lan_never_keeps_two_masters_for_long() {
    // With 30% loss a backup sometimes misses three adverts and claims the
    // group; the master must win it back within about one advert interval.
    let mut lan = Lan::new(&[(1, 0, true), (1, 100, true)]);
    lan.loss_permille = 300;
    lan.start(0);
    lan.start(1);
    lan.run_for(Duration::from_secs(5));
    let mut double_since: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    let step = Duration::from_millis(10);
    for _ in 0..60_000 {
        lan.run_for(step);
        if lan.masters().len() > 1 {
            let since = *double_since.get_or_insert(lan.now);
            longest = longest.max(lan.now - since);
        } else {
            double_since = None;
        }
    }
    assert!(
        longest <= Duration::from_secs(4),
        "two masters for {longest:?}"
    );
    assert_eq!(lan.masters(), vec![0]);
}

// ---- mixed LANs: ipfail with models of UCarp and FreeBSD ----

/// Address pairs for exact ties that differ before the last octet, so the
/// numeric order and UCarp's little-endian order disagree.
const TIE_ADDRS: [([u8; 4], [u8; 4]); 3] = [
    ([192, 0, 2, 200], [192, 0, 3, 1]),
    ([192, 0, 2, 1], [198, 51, 100, 2]),
    ([198, 51, 100, 2], [192, 0, 2, 1]),
];

/// Start orders: both at once, first one then the other, and reverse.
const ORDERS: [&[usize]; 3] = [&[0, 1], &[0], &[1]];

/// Starts the hosts in `order` at t0 and the others 5 s later (all at t0
/// when `order` lists them all); returns when the last one started.
fn start_in_order(lan: &mut Lan, order: &[usize]) -> Instant {
    for &i in order {
        lan.start(i);
    }
    if order.len() < lan.nodes.len() {
        lan.run_for(Duration::from_secs(5));
        for i in 0..lan.nodes.len() {
            if !order.contains(&i) {
                lan.start(i);
            }
        }
    }
    lan.now
}

/// The silent-LAN wait plus one round of adverts: the bound on electing
/// one master after the last start when no two hosts yield to each other.
fn one_round() -> Duration {
    master_down_interval(1, 100) + advert_interval(1, 100) + 10 * LATENCY
}

/// With FreeBSD, which yields every tie as MASTER, two masters that hear
/// each other at once may both yield; the FreeBSD host then comes back
/// after its master-down interval while ipfail waits one interval longer.
fn double_yield_round() -> Duration {
    2 * master_down_interval(1, 100) + advert_interval(1, 100) + 10 * LATENCY
}

/// The election settles on one master within `bound` of the last start,
/// and nothing changes for the 30 s after that.
fn assert_converges(lan: &mut Lan, started: Instant, bound: Duration, what: &str) -> usize {
    lan.run_until(started + bound);
    let masters = lan.masters();
    assert_eq!(
        masters.len(),
        1,
        "{what}: masters {masters:?} after {bound:?}"
    );
    assert_eq!(lan.holders(), masters, "{what}: IP holders");
    let settled = lan.now;
    lan.run_for(Duration::from_secs(30));
    assert_eq!(lan.masters(), masters, "{what}: master changed");
    assert_eq!(
        lan.transitions_since(settled),
        0,
        "{what}: flapping: {:?}",
        lan.transitions
            .iter()
            .filter(|t| t.0 > settled)
            .map(|t| (t.0 - lan.t0, t.1, t.2))
            .collect::<Vec<_>>()
    );
    masters[0]
}

#[test]
fn ipfail_and_ucarp_tie_goes_to_the_smaller_little_endian_address_in_any_order() {
    for (a, b) in TIE_ADDRS {
        for order in ORDERS {
            for preempt in [true, false] {
                let mut lan = Lan::mixed(&[
                    spec(Kind::Ipfail, a, 100, preempt),
                    spec(Kind::Ucarp, b, 100, preempt),
                ]);
                let started = start_in_order(&mut lan, order);
                let what =
                    format!("ipfail {a:?} / ucarp {b:?}, start {order:?}, preempt {preempt}");
                let master = assert_converges(&mut lan, started, one_round(), &what);
                // Both sides apply the same rule, so a simultaneous start or a
                // preempting late starter gives the smaller key; otherwise the
                // first master keeps it (neither preempts a tie as BACKUP
                // unless ipfail wins the tie and preempts).
                let smaller = if u32::from_le_bytes(a) < u32::from_le_bytes(b) {
                    0
                } else {
                    1
                };
                if order.len() == 2 {
                    assert_eq!(master, smaller, "{what}");
                }
            }
        }
    }
}

#[test]
fn ipfail_and_freebsd_tie_converges_in_any_order() {
    for (a, b) in TIE_ADDRS {
        for order in ORDERS {
            for preempt in [true, false] {
                let mut lan = Lan::mixed(&[
                    spec(Kind::Ipfail, a, 100, preempt),
                    spec(Kind::FreeBsd, b, 100, preempt),
                ]);
                let started = start_in_order(&mut lan, order);
                let what =
                    format!("ipfail {a:?} / FreeBSD {b:?}, start {order:?}, preempt {preempt}");
                assert_converges(&mut lan, started, double_yield_round(), &what);
            }
        }
    }
}

#[test]
fn ipfail_ucarp_and_freebsd_tie_converges() {
    // Each host in turn holds the smallest little-endian address, except
    // FreeBSD: with UCarp and FreeBSD tying and FreeBSD smaller, those two
    // yield to each other at the same instant forever in a world without
    // timer jitter, ipfail or not (docs/interop.md, "Exact ties").
    let layouts: [[[u8; 4]; 3]; 2] = [
        // ipfail smallest (key 0x01...), then UCarp, then FreeBSD
        [[192, 0, 2, 1], [192, 0, 2, 2], [192, 0, 3, 3]],
        // UCarp smallest
        [[192, 0, 2, 200], [198, 51, 100, 2], [192, 0, 3, 201]],
    ];
    for addrs in layouts {
        for order in [&[0usize, 1, 2][..], &[0], &[1], &[2]] {
            let mut lan = Lan::mixed(&[
                spec(Kind::Ipfail, addrs[0], 100, true),
                spec(Kind::Ucarp, addrs[1], 100, true),
                spec(Kind::FreeBsd, addrs[2], 100, true),
            ]);
            let started = start_in_order(&mut lan, order);
            let what = format!("{addrs:?}, start {order:?}");
            assert_converges(&mut lan, started, double_yield_round(), &what);
        }
    }
}

#[test]
fn mixed_lans_elect_the_shortest_interval_and_fail_over_within_master_down() {
    let kinds = [Kind::Ipfail, Kind::Ucarp, Kind::FreeBsd];
    for best in kinds {
        for other in kinds {
            let mut lan = Lan::mixed(&[
                spec(best, [192, 0, 2, 10], 0, true),
                spec(Kind::Ipfail, [192, 0, 2, 11], 50, true),
                spec(other, [192, 0, 2, 12], 100, true),
            ]);
            for i in 0..3 {
                lan.start(i);
            }
            let what = format!("{best:?} advskew 0, ipfail 50, {other:?} 100");
            let started = lan.now;
            let bound = double_yield_round();
            assert_eq!(
                assert_converges(&mut lan, started, bound, &what),
                0,
                "{what}"
            );
            let crash_at = lan.now;
            lan.crash(0);
            lan.run_for(Duration::from_secs(10));
            assert_eq!(lan.masters(), vec![1], "{what}: after the crash");
            let took = lan.first_master_since(crash_at, 1).expect("took over") - crash_at;
            assert!(
                took <= master_down_interval(1, 50) + LATENCY,
                "{what}: took {took:?}"
            );
        }
    }
}

#[test]
fn ucarp_takes_over_on_an_ipfail_bow_out_within_one_latency() {
    // UCarp has no bow-out rule: 255/255 is slower than 3 x advbase +
    // advskew/256, so its "going to time out" rule takes over at once.
    let mut lan = Lan::mixed(&[
        spec(Kind::Ipfail, [192, 0, 2, 1], 0, true),
        spec(Kind::Ucarp, [192, 0, 2, 2], 100, true),
        spec(Kind::FreeBsd, [192, 0, 2, 3], 200, false),
    ]);
    for i in 0..3 {
        lan.start(i);
    }
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![0]);
    let stop_at = lan.now;
    lan.stop(0);
    lan.run_for(Duration::from_millis(20));
    // UCarp and FreeBSD both take over on the 255/255 advert; UCarp's
    // shorter interval then sends FreeBSD back.
    assert_eq!(lan.first_master_since(stop_at, 1), Some(stop_at + LATENCY));
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(lan.holders(), vec![1]);
}

#[test]
fn a_forged_worse_advert_from_a_third_address_does_not_move_the_backup() {
    // A (advskew 0) is master, B (advskew 100, preempt) follows it. Some
    // host forges adverts from 192.0.2.99 that B would beat: 10 a second
    // for 5 s. Before, B preempted on each and flapped (22 transitions).
    let mut lan = Lan::new(&[(1, 0, true), (1, 100, true)]);
    lan.start(0);
    lan.start(1);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![0]);
    let forged_from = lan.now;
    let forged = PeerAdvert {
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)),
        advbase: 1,
        advskew: 200,
    };
    for _ in 0..50 {
        lan.inject(1, forged);
        lan.inject(0, forged);
        lan.run_for(Duration::from_millis(100));
    }
    assert_eq!(
        lan.transitions_since(forged_from),
        0,
        "{:?}",
        lan.transitions
    );
    assert_eq!(lan.masters(), vec![0]);
    assert_eq!(lan.holders(), vec![0]);
    // A forged bow-out and a forged too-slow master from that address do
    // nothing either.
    for (advbase, advskew) in [(255, 255), (9, 0)] {
        lan.inject(
            1,
            PeerAdvert {
                advbase,
                advskew,
                ..forged
            },
        );
        lan.run_for(Duration::from_secs(1));
    }
    assert_eq!(lan.transitions_since(forged_from), 0);
    // Once A is gone, B takes over after its master-down interval; the
    // forged adverts do not hold it back.
    let crash_at = lan.now;
    lan.crash(0);
    for _ in 0..40 {
        lan.inject(1, forged);
        lan.run_for(Duration::from_millis(100));
    }
    let took = lan.first_master_since(crash_at, 1).expect("B took over") - crash_at;
    assert!(took <= master_down_interval(1, 100) + LATENCY, "{took:?}");
}

#[test]
fn a_bow_out_in_a_three_host_group_leaves_the_best_backup_master() {
    for preempt in [true, false] {
        let mut lan = Lan::new(&[(1, 0, preempt), (1, 100, preempt), (1, 50, preempt)]);
        for i in 0..3 {
            lan.start(i);
        }
        lan.run_for(Duration::from_secs(10));
        assert_eq!(lan.masters(), vec![0]);
        let stop_at = lan.now;
        lan.stop(0);
        lan.run_for(Duration::from_millis(20));
        // Both backups follow A, so both take over on its bow-out; the
        // better one's first advert sends the other back.
        assert_eq!(lan.first_master_since(stop_at, 1), Some(stop_at + LATENCY));
        assert_eq!(lan.first_master_since(stop_at, 2), Some(stop_at + LATENCY));
        let settled = lan.single_master_since(Duration::from_secs(10), Duration::from_millis(10));
        assert!(
            settled.is_some_and(|d| d <= Duration::from_millis(10)),
            "preempt {preempt}: settled after {settled:?} more"
        );
        assert_eq!(lan.masters(), vec![2], "preempt {preempt}");
    }
}
