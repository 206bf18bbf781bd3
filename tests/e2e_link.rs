//! Link blips and flaps on the master (issue 9, docs/design.md §5.7,
//! docs/safety.md §11), end to end: a (advskew 0, preferred, preempt on)
//! is master, b (advskew 100) the stable standby, c the client. The lab
//! cuts a's bridge port, so a's eth0 loses carrier as if its cable were
//! pulled.
//!
//! Figures are printed (`cargo test --release --test e2e_link --
//! --nocapture`); the bounds asserted are generous so that a loaded
//! 2-core machine never fails them, yet every one fails without the blip
//! hold and the damping (measured then: a 100 ms blip costs 2.7 s, a
//! flapping master leaves the IPs unserved most of the time).

mod lab;

use ipfail::daemon::driver::DAMP_QUIET;
use lab::{longest_double_hold, no_holder, Host, Pair, Sample, PAIR_IPS};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn pair(test: &str) -> Option<Pair> {
    if !lab::require_root() {
        return None;
    }
    let p = Pair::new(test, Path::new(env!("CARGO_BIN_EXE_ipfail")));
    p.start(&p.a);
    p.start(&p.b);
    p.wait_holder(&p.a, &p.b, 10 * SEC);
    // b follows a (it has heard an advert) before anything is cut.
    p.wait_group(&p.b, "web", "b follows a", 5 * SEC, |g| {
        g.state == "BACKUP" && g.master.as_ref().is_some_and(|m| m.address == "192.0.2.1")
    });
    // The hold counts from an advert sent at least 50 ms before a loss
    // (one sent later may not have left): right after its first advert a
    // master has none to count from. a may have just become master (its
    // probe ran during the wait, so it holds the IPs at once).
    thread::sleep(200 * MS);
    Some(p)
}

fn ips() -> Vec<IpAddr> {
    PAIR_IPS
        .iter()
        .map(|s| s.parse().expect("literal"))
        .collect()
}

/// The client pinging the first floating IP every 10 ms.
struct Pinger {
    pid: u32,
    log: PathBuf,
}

impl Pinger {
    fn start(p: &Pair, secs: u64) -> Pinger {
        let log = p.dir.join("ping.log");
        let deadline = secs.to_string();
        let pid = p.lab.spawn(
            &p.c,
            Path::new("/usr/bin/ping"),
            &[
                "-n",
                "-D",
                "-i",
                "0.01",
                "-W",
                "1",
                "-w",
                &deadline,
                PAIR_IPS[0],
            ],
            &log,
        );
        Pinger { pid, log }
    }

    /// Waits for it to end; (echoes sent, replies, longest time between
    /// two replies).
    fn finish(self, p: &Pair, timeout: Duration) -> (u64, u64, Duration) {
        if p.lab.wait_exit(self.pid, timeout).is_none() {
            p.lab.signal(self.pid, "INT");
            p.lab.wait_exit(self.pid, 5 * SEC);
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut stamps = Vec::new();
        let mut sent = 0;
        for line in text.lines() {
            if line.contains("bytes from") {
                let stamp = line
                    .strip_prefix('[')
                    .and_then(|l| l.split(']').next())
                    .and_then(|s| s.parse::<f64>().ok());
                if let Some(s) = stamp {
                    stamps.push(s);
                }
            } else if let Some(n) = line
                .split(" packets transmitted")
                .next()
                .filter(|_| line.contains(" packets transmitted"))
            {
                sent = n.trim().parse().unwrap_or(0);
            }
        }
        let gap = stamps
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(0.0f64, f64::max);
        (
            sent,
            stamps.len() as u64,
            Duration::from_secs_f64(gap.max(0.0)),
        )
    }
}

#[test]
fn a_100ms_carrier_blip_on_the_master_costs_clients_only_the_blip() {
    let Some(p) = pair("blip") else {
        return;
    };
    let pinger = Pinger::start(&p, 6);
    let sampler = p.lab.sampler(&[&p.a, &p.b]);
    thread::sleep(1500 * MS);
    let before = p.group(&p.a, "web");
    let cut = Instant::now();
    p.lab.cut(&p.a);
    thread::sleep(100 * MS);
    p.lab.restore(&p.a);
    let blip = cut.elapsed();
    // Past b's master-down interval (3.39 s after a's last advert).
    thread::sleep(4000 * MS);
    let samples = sampler.stop();
    let (sent, replies, gap) = pinger.finish(&p, 10 * SEC);
    let (outage, longest) = no_holder(&samples, &ips());
    let (double, ip) = longest_double_hold(&samples);
    eprintln!(
        "100 ms blip (measured {} ms down): no holder {} ms in total (longest {} ms) over {} samples; \
         client: {replies}/{sent} echoes answered, longest gap between replies {} ms; double hold {} ms",
        blip.as_millis(),
        outage.as_millis(),
        longest.as_millis(),
        samples.len(),
        gap.as_millis(),
        double.as_millis()
    );
    let after = p.group(&p.a, "web");
    assert_eq!(after.state, "MASTER", "{after:?}");
    assert!(
        after.state_secs >= before.state_secs,
        "a stayed master throughout: {before:?} -> {after:?}"
    );
    assert!(
        p.held(&p.b).is_empty() && p.holds_all(&p.a),
        "the IPs stayed on a"
    );
    let log_b = p.log(&p.b);
    assert!(!log_b.contains("-> MASTER"), "b never took over:\n{log_b}");
    let log_a = p.log(&p.a);
    assert!(
        log_a.contains("still master, advert sent at once"),
        "a logs the kept mastership:\n{log_a}"
    );
    assert!(samples.len() > 100, "the sampler ran");
    // The goal: the blip plus 50 ms. The samples show the IPs never
    // left a; the client's longest gap includes the blip itself and the
    // ping interval. Asserted generously (without the hold: 2.7 s).
    assert!(
        outage <= 150 * MS,
        "nobody held the IPs for {outage:?} after a {blip:?} blip"
    );
    assert!(
        gap <= blip + 400 * MS,
        "clients waited {gap:?} after a {blip:?} blip"
    );
    assert!(
        replies > 0 && sent > 0,
        "the client pinged: {replies}/{sent}"
    );
    assert!(double.is_zero(), "{ip:?} held by both for {double:?}");
}

/// Cuts and restores `host` (`down`, `up`) until `duration` has passed;
/// returns the intervals during which its link was down (from the start of
/// the cut to the end of the restore: an over-estimate).
fn flap(
    p: &Pair,
    host: &Host,
    down: Duration,
    up: Duration,
    duration: Duration,
) -> Vec<(Instant, Instant)> {
    let start = Instant::now();
    let mut downs = Vec::new();
    // Bounded: at most one cycle per `down + up`, and never past `duration`.
    let cycles = (duration.as_millis() / (down + up).as_millis().max(1)) as usize;
    for _ in 0..cycles {
        if start.elapsed() >= duration {
            break;
        }
        let from = Instant::now();
        p.lab.cut(host);
        thread::sleep(down);
        p.lab.restore(host);
        downs.push((from, Instant::now()));
        thread::sleep(up);
    }
    downs
}

/// Time during which every IP was held by a host whose link was up (b's
/// link never goes down; a's is down within `downs`), from `from` to
/// `to`, and the time in which a held any IP after `since`.
fn served(
    samples: &[Sample],
    downs: &[(Instant, Instant)],
    from: Instant,
    to: Instant,
) -> Duration {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at);
    let ips = ips();
    let mut held: HashMap<&str, BTreeSet<IpAddr>> = HashMap::new();
    let a_down = |t: Instant| downs.iter().any(|(d, u)| *d <= t && t <= *u);
    let mut total = Duration::ZERO;
    let mut prev: Option<(Instant, bool)> = None;
    for s in sorted {
        held.insert(s.host.as_str(), s.addrs.iter().copied().collect());
        let ok = ips.iter().all(|ip| {
            held.iter()
                .any(|(h, set)| set.contains(ip) && !(*h == "a" && a_down(s.at)))
        });
        if let Some((t, was_ok)) = prev {
            let (lo, hi) = (t.max(from), s.at.min(to));
            if was_ok && hi > lo {
                total += hi - lo;
            }
        }
        prev = Some((s.at, ok));
    }
    total
}

/// a's link flaps `down`/`up` for `duration`: b takes the group over once
/// a's link is judged unstable, and keeps it; no double hold.
fn flapping(
    test: &str,
    down: Duration,
    up: Duration,
    duration: Duration,
    takeover_bound: Duration,
    failback: bool,
) {
    let Some(p) = pair(test) else {
        return;
    };
    let sampler = p.lab.sampler(&[&p.a, &p.b]);
    let pinger = Pinger::start(&p, duration.as_secs() + 1);
    let start = Instant::now();
    let downs = flap(&p, &p.a, down, up, duration);
    let end = Instant::now();
    let damped = p.group(&p.a, "web");
    let check = p.ipfail(&p.a, &["status", "--check"]);
    let human = String::from_utf8_lossy(&p.ipfail(&p.a, &["status"]).stdout).into_owned();
    thread::sleep(500 * MS);
    let samples = sampler.stop();
    let (sent, replies, gap) = pinger.finish(&p, 10 * SEC);

    // When b first held every IP.
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at);
    let all: BTreeSet<IpAddr> = ips().into_iter().collect();
    let takeover = sorted
        .iter()
        .find(|s| {
            s.at >= start && s.host == "b" && all.is_subset(&s.addrs.iter().copied().collect())
        })
        .map(|s| s.at);
    let a_after = takeover.map_or(0, |t| {
        sorted
            .iter()
            .filter(|s| s.at > t && s.at <= end && s.host == "a" && !s.addrs.is_empty())
            .filter(|s| s.addrs.iter().any(|ip| all.contains(ip)))
            .count()
    });
    let whole = end - start;
    let served_all = served(&samples, &downs, start, end);
    let frac = served_all.as_secs_f64() / whole.as_secs_f64();
    let after = takeover.map(|t| {
        let s = served(&samples, &downs, t, end);
        s.as_secs_f64() / (end - t).as_secs_f64().max(1e-9)
    });
    let (double, ip) = longest_double_hold(&samples);
    eprintln!(
        "a flapping {}/{} ms for {:.1} s ({} cuts): IPs served by a host with carrier {:.1} % of the time \
         ({:.2} s unserved); b held them all {} after the first cut, served {} from then on; \
         a held an IP in {a_after} samples after that; client: {replies}/{sent} echoes answered \
         ({:.1} %), longest gap {} ms; longest double hold {} ms; a: {} {:?}",
        down.as_millis(),
        up.as_millis(),
        whole.as_secs_f64(),
        downs.len(),
        100.0 * frac,
        (whole - served_all).as_secs_f64(),
        takeover.map_or("never".into(), |t| format!("{} ms", (t - start).as_millis())),
        after.map_or("-".into(), |f| format!("{:.1} %", 100.0 * f)),
        100.0 * replies as f64 / sent.max(1) as f64,
        gap.as_millis(),
        double.as_millis(),
        damped.state,
        damped.link,
    );
    let takeover = takeover.unwrap_or_else(|| panic!("b never held every IP:\n{}", p.log(&p.a)));
    assert!(
        takeover - start <= takeover_bound,
        "b took over {:?} after the flapping began (bound {takeover_bound:?})",
        takeover - start
    );
    let after = after.unwrap_or(0.0);
    assert!(
        after >= 0.95,
        "after b took over the IPs were served {:.1} % of the time",
        100.0 * after
    );
    assert_eq!(a_after, 0, "the flapping host never took the group back");
    assert!(double.is_zero(), "{ip:?} held by both for {double:?}");
    let link = damped.link.as_ref().expect("a reports its link");
    assert!(link.damped, "a says its link is damped: {link:?}");
    assert!(
        link.losses >= downs.len() as u64 - 1,
        "a counted the losses: {link:?}, {} cuts",
        downs.len()
    );
    let log_a = p.log(&p.a);
    assert!(log_a.contains("link unstable"), "{log_a}");
    let said = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "--check warns: {said}");
    assert!(said.contains("web: link unstable"), "{said}");
    assert!(human.contains("link: unstable"), "{human}");

    if failback {
        // Stable from now on: a is trusted again after its quiet period
        // and preempts b (the ordinary preempt handover).
        let sampler = p.lab.sampler(&[&p.a, &p.b]);
        let back = p.wait_holder(&p.a, &p.b, 60 * SEC);
        let samples = sampler.stop();
        let (double, ip) = longest_double_hold(&samples);
        // The last carrier loss happened within the last cut.
        let (cut, restored) = *downs.last().expect("the link was cut");
        let after = back - cut;
        eprintln!(
            "a stable again: it holds the IPs {} ms after its last cut began ({} s quiet period); double hold {} ms",
            after.as_millis(),
            DAMP_QUIET.as_secs(),
            double.as_millis()
        );
        assert!(
            after >= DAMP_QUIET && back - restored <= DAMP_QUIET + 10 * SEC,
            "a took the group back {after:?} after its last cut began"
        );
        assert!(double <= 100 * MS, "{ip:?} held by both for {double:?}");
        let log_a = p.log(&p.a);
        assert!(log_a.contains("trusted again"), "{log_a}");
    }
}

/// How long the link flaps: 20 s, or `$IPFAIL_FLAP_SECS` (up to 300) for
/// a measurement by hand (the figure is over 60 s).
fn flap_time() -> Duration {
    std::env::var("IPFAIL_FLAP_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(20 * SEC, |s| Duration::from_secs(s.clamp(5, 300)))
}

#[test]
fn a_master_flapping_every_200ms_hands_over_to_the_stable_backup() {
    flapping("flap200", 100 * MS, 100 * MS, flap_time(), 3 * SEC, false);
}

#[test]
fn a_master_flapping_every_second_hands_over_to_the_stable_backup() {
    flapping("flap1s", 500 * MS, 500 * MS, flap_time(), 6 * SEC, true);
}
