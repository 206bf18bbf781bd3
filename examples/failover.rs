//! Failover between two hosts in network namespaces, for people and for
//! figures.
//!
//! - `failover demo`: one ipfail pair and a client; election, link cut,
//!   failover, failback, graceful stop; prints the merged timeline of what
//!   the driver did and what each daemon logged.
//! - `failover bench [--runs N]`: measures link-cut, SIGTERM and SIGKILL failover of
//!   ipfail side by side with a ucarp pair on the same lab, and prints
//!   min/median/max.
//!
//! Needs root. Run through `scripts/demo` / `scripts/bench`, which build the
//! `ipfail` binary this uses (`$IPFAIL_BIN`, else target/<profile>/ipfail).
//! Traffic stays inside the namespaces it creates, on documentation addresses.

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::{Host, Lab};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SEC: Duration = Duration::from_secs(1);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("demo");
    if !lab::require_root() {
        std::process::exit(1);
    }
    match mode {
        "demo" => demo(),
        "bench" => {
            let runs = args
                .iter()
                .position(|a| a == "--runs")
                .and_then(|i| args.get(i + 1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(3usize)
                .clamp(1, 50);
            bench(runs);
        }
        other => {
            eprintln!("usage: failover [demo | bench [--runs N]] (got {other:?})");
            std::process::exit(2);
        }
    }
}

/// Which failover agent runs on the two hosts.
#[derive(Clone, Copy, PartialEq)]
enum Agent {
    Ipfail,
    Ucarp,
}

/// Two dispatchers a (preferred) and b, a client c, `n_ips` floating IPs.
struct Setup {
    lab: Lab,
    a: Host,
    b: Host,
    c: Host,
    dir: PathBuf,
    ips: Vec<String>,
    agent: Agent,
    t0: SystemTime,
    events: Vec<(SystemTime, String)>,
}

impl Setup {
    fn new(tag: &str, agent: Agent, n_ips: usize) -> Setup {
        let lab = Lab::new(tag);
        let a = lab.add_host("a", "192.0.2.1/24");
        let b = lab.add_host("b", "192.0.2.2/24");
        let c = lab.add_host("c", "192.0.2.100/24");
        lab.route_onlink(&c, "203.0.113.0/24");
        let dir = lab::workdir(tag);
        let ips: Vec<String> = (0..n_ips)
            .map(|i| format!("203.0.113.{}", 10 + i))
            .collect();
        for (h, skew) in [("a", 0), ("b", 100)] {
            let cfg = format!(
                "[ipfail]\ncontrol_socket = {sock}\nprobe_timeout = 0.2\n\n\
                 [web]\ninterface = eth0\nvhid = 10\nadvskew = {skew}\npass = demo\n\
                 hmac_addrs = {first}\nips : {list}\n",
                sock = dir.join(h).join("ipfail.sock").display(),
                first = ips[0],
                list = ips.join("\n      ")
            );
            write(&dir.join(format!("{h}.cfg")), &cfg, 0o644);
        }
        write(
            &dir.join("up.sh"),
            "#!/bin/sh\nip addr add \"$2\"/32 dev \"$1\"\n",
            0o755,
        );
        write(
            &dir.join("down.sh"),
            "#!/bin/sh\nip addr del \"$2\"/32 dev \"$1\" 2>/dev/null || true\n",
            0o755,
        );
        Setup {
            lab,
            a,
            b,
            c,
            dir,
            ips,
            agent,
            t0: SystemTime::now(),
            events: Vec::new(),
        }
    }

    fn note(&mut self, what: String) {
        println!("  {:>7.3} s  {what}", self.secs(SystemTime::now()));
        self.events
            .push((SystemTime::now(), format!("demo: {what}")));
    }

    fn secs(&self, t: SystemTime) -> f64 {
        t.duration_since(self.t0).map_or(0.0, |d| d.as_secs_f64())
    }

    fn start(&self, host: &Host, advskew: u8) -> u32 {
        let log = self.dir.join(format!("{}.log", host.name));
        match self.agent {
            Agent::Ipfail => {
                let cfg = self.dir.join(format!("{}.cfg", host.name));
                let cfg = cfg.to_string_lossy().into_owned();
                self.lab
                    .spawn(host, &lab::ipfail_bin(), &["daemon", "-c", &cfg], &log)
            }
            Agent::Ucarp => {
                let src = format!("--srcip={}", host.addr);
                let addr = format!("--addr={}", self.ips[0]);
                let skew = format!("--advskew={advskew}");
                let up = format!("--upscript={}", self.dir.join("up.sh").display());
                let down = format!("--downscript={}", self.dir.join("down.sh").display());
                let args = [
                    "--interface=eth0",
                    &src,
                    "--vhid=10",
                    "--pass=demo",
                    &addr,
                    "--advbase=1",
                    &skew,
                    "--preempt",
                    "--shutdown",
                    &up,
                    &down,
                ];
                self.lab
                    .spawn(host, Path::new("/usr/sbin/ucarp"), &args, &log)
            }
        }
    }

    fn holds_all(&self, h: &Host) -> bool {
        let addrs = self.lab.addrs(h);
        self.ips
            .iter()
            .all(|ip| addrs.iter().any(|a| a.to_string() == *ip))
    }

    fn holds_none(&self, h: &Host) -> bool {
        let addrs = self.lab.addrs(h);
        !self
            .ips
            .iter()
            .any(|ip| addrs.iter().any(|a| a.to_string() == *ip))
    }

    /// Until the client's ping of the first IP is answered by `h`.
    fn client_reaches(&self, h: &Host, timeout: Duration) -> Instant {
        let ip = self.ips[0].clone();
        self.lab.wait_until("client reaches the IP", timeout, || {
            (self.lab.ping(&self.c, &ip, Duration::from_millis(100))
                && self.lab.neigh_mac(&self.c, &ip).as_deref() == Some(h.mac.as_str()))
            .then(Instant::now)
        })
    }

    fn wait(&self, what: &str, timeout: Duration, f: impl Fn(&Setup) -> bool) -> Instant {
        self.lab
            .wait_until(what, timeout, || f(self).then(Instant::now))
    }

    /// The daemons' own lines, with their timestamps, merged into the events.
    fn timeline(&self) -> Vec<(SystemTime, String)> {
        let mut all = self.events.clone();
        for h in [&self.a, &self.b] {
            let text = std::fs::read_to_string(self.dir.join(format!("{}.log", h.name)))
                .unwrap_or_default();
            for line in text.lines() {
                let Some((stamp, rest)) = line.split_once(' ') else {
                    continue;
                };
                let Some(t) = parse_utc(stamp) else { continue };
                let msg = rest
                    .split_once(": ")
                    .map_or(rest, |(_, m)| m)
                    .replace(" group=web", "")
                    .replace(" vhid=10", "");
                let interesting = [" -> ", "added", "removed", "conflict", "link", "stopping"]
                    .iter()
                    .any(|k| msg.contains(k));
                if interesting {
                    all.push((t, format!("{}: {msg}", h.name)));
                }
            }
        }
        all.sort_by_key(|e| e.0);
        all
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// `2026-11-23T13:11:49.435316Z` (tracing's UTC format) to a SystemTime.
fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (
        t.next()?.parse::<u64>().ok()?,
        t.next()?.parse::<u64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let secs = days * 86_400 + hh * 3600 + mm * 60;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_secs_f64(ss))
}

fn demo() {
    println!("ipfail demo: dispatchers a (192.0.2.1, advskew 0) and b (192.0.2.2, advskew 100)");
    println!("share 203.0.113.10-12 (group web, vhid 10, advbase 1); client c pings them.\n");
    let mut s = Setup::new("demo", Agent::Ipfail, 3);
    s.note("start ipfail on a and b".into());
    let pid_a = s.start(&s.a.clone(), 0);
    s.start(&s.b.clone(), 100);
    s.wait("a holds all IPs", 10 * SEC, |s| {
        s.holds_all(&s.a) && s.holds_none(&s.b)
    });
    s.note("a holds all 3 IPs, b none".into());
    let b = s.b.clone();
    let a = s.a.clone();
    s.client_reaches(&a, 5 * SEC);
    s.note(format!("client reaches 203.0.113.10 at a ({})", a.mac));

    let cut = Instant::now();
    s.note("cut a's link (its veth loses carrier)".into());
    s.lab.cut(&a);
    let moved = s.wait("b holds all IPs", 10 * SEC, |s| s.holds_all(&s.b));
    s.note(format!(
        "b holds all 3 IPs, {:.2} s after the cut",
        (moved - cut).as_secs_f64()
    ));
    let reached = s.client_reaches(&b, 10 * SEC);
    s.note(format!(
        "client reaches 203.0.113.10 at b ({}), {:.2} s after the cut",
        b.mac,
        (reached - cut).as_secs_f64()
    ));

    let restore = Instant::now();
    s.note("restore a's link".into());
    s.lab.restore(&a);
    let back = s.wait("a holds all IPs again", 10 * SEC, |s| {
        s.holds_all(&s.a) && s.holds_none(&s.b)
    });
    s.note(format!(
        "a holds all 3 IPs again (preempt), b none, {:.2} s after the restore",
        (back - restore).as_secs_f64()
    ));

    let term = Instant::now();
    s.note("SIGTERM to a's daemon".into());
    s.lab.signal(pid_a, "TERM");
    let moved = s.wait("b holds all IPs after SIGTERM", 10 * SEC, |s| {
        s.holds_all(&s.b) && s.holds_none(&s.a)
    });
    s.note(format!(
        "b holds all 3 IPs, {:.2} s after SIGTERM",
        (moved - term).as_secs_f64()
    ));
    s.lab.wait_exit(pid_a, 5 * SEC);

    println!("\nTimeline (driver steps and the daemons' own log lines):");
    for (t, what) in s.timeline() {
        println!("  {:>7.3} s  {what}", s.secs(t));
    }
    println!("\nLogs: {}", s.dir.display());
}

/// One measured run: (link cut -> backup holds, link cut -> client served,
/// SIGTERM -> backup holds, SIGKILL -> backup holds and the master none).
fn run_once(
    agent: Agent,
    n_ips: usize,
    i: usize,
) -> (Duration, Duration, Duration, Option<Duration>) {
    let tag = format!(
        "b{}{}{i}",
        if agent == Agent::Ipfail { "i" } else { "u" },
        n_ips
    );
    let cut_result = {
        let (s, _) = settled_pair(&tag, agent, n_ips);
        s.client_reaches(&s.a, 5 * SEC);
        let cut = Instant::now();
        s.lab.cut(&s.a);
        let held = s.wait("b holds after cut", 15 * SEC, |s| s.holds_all(&s.b));
        let served = s.client_reaches(&s.b, 15 * SEC);
        (held - cut, served - cut)
    };
    let (s, pid) = settled_pair(&tag, agent, n_ips);
    let t = Instant::now();
    s.lab.signal(pid, "TERM");
    let held = s.wait("b holds after SIGTERM", 15 * SEC, |s| s.holds_all(&s.b));
    let term = held - t;
    // A crash: nobody removes the master's IPs. ipfail's kernel lease
    // does (docs/safety.md §4); ucarp leaves them there.
    let (s, pid) = settled_pair(&tag, agent, n_ips);
    let t = Instant::now();
    s.lab.signal(pid, "KILL");
    let end = t + 12 * SEC;
    let mut killed = None;
    while Instant::now() < end {
        if s.holds_all(&s.b) && s.holds_none(&s.a) {
            killed = Some(t.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (cut_result.0, cut_result.1, term, killed)
}

/// A fresh pair with `a` (advskew 0) holding every IP; returns a's PID.
fn settled_pair(tag: &str, agent: Agent, n_ips: usize) -> (Setup, u32) {
    let s = Setup::new(tag, agent, n_ips);
    let pid = s.start(&s.a, 0);
    s.start(&s.b, 100);
    s.wait("a holds", 15 * SEC, |s| {
        s.holds_all(&s.a) && s.holds_none(&s.b)
    });
    (s, pid)
}

fn bench(runs: usize) {
    println!("failover bench: 2 hosts + client in namespaces, advbase 1, advskew 0 vs 100,");
    println!(
        "{runs} run(s) each; min / median / max in ms (bound for link cut: 3 x 1 + 100/256 s)\n"
    );
    println!(
        "{:<22} {:>22} {:>22} {:>22} {:>24}",
        "agent",
        "cut -> backup holds",
        "cut -> client served",
        "SIGTERM -> backup",
        "SIGKILL -> backup alone"
    );
    let ucarp = Path::new("/usr/sbin/ucarp").exists();
    let mut rows = vec![
        (Agent::Ipfail, 1usize, "ipfail, 1 IP"),
        (Agent::Ipfail, 50, "ipfail, 50 IPs"),
    ];
    if ucarp {
        rows.push((Agent::Ucarp, 1, "ucarp 1.5.2, 1 IP"));
    }
    for (agent, n, name) in rows {
        let mut cols: [Vec<Duration>; 3] = [vec![], vec![], vec![]];
        let mut killed: Vec<Option<Duration>> = Vec::new();
        for i in 0..runs {
            let (a, b, c, d) = run_once(agent, n, i);
            cols[0].push(a);
            cols[1].push(b);
            cols[2].push(c);
            killed.push(d);
        }
        let mut kill_ok: Vec<Duration> = killed.iter().flatten().copied().collect();
        let kill_col = if kill_ok.len() == killed.len() {
            fmt_ms(&mut kill_ok)
        } else {
            format!("never in 12 s ({} of {runs})", killed.len() - kill_ok.len())
        };
        println!(
            "{:<22} {:>22} {:>22} {:>22} {:>24}",
            name,
            fmt_ms(&mut cols[0]),
            fmt_ms(&mut cols[1]),
            fmt_ms(&mut cols[2]),
            kill_col
        );
    }
    if !ucarp {
        println!("(ucarp not installed: scripts/deps installs it)");
    }
    println!(
        "\nucarp does not watch carrier or bow out on SIGTERM; with --shutdown it runs its down"
    );
    println!("script, and the backup waits for the master-down interval. After SIGKILL ucarp");
    println!(
        "leaves its IP on the dead master (both hosts hold it); ipfail's kernel lease removes it."
    );
}

/// `min / median / max` in ms.
fn fmt_ms(v: &mut [Duration]) -> String {
    v.sort();
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(a), Some(m), Some(z)) => {
            format!("{} / {} / {}", a.as_millis(), m.as_millis(), z.as_millis())
        }
        _ => "-".to_string(),
    }
}
