//! `failover demo`: one ipfail pair and a client; election, link cut,
//! failover, failback, graceful stop; prints the merged timeline of what
//! the driver did and what each daemon logged.

use crate::lab::{self, Host, Lab};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SEC: Duration = Duration::from_secs(1);

/// Two dispatchers a (preferred) and b, a client c, `n_ips` floating IPs.
struct Setup {
    lab: Lab,
    a: Host,
    b: Host,
    c: Host,
    dir: PathBuf,
    ips: Vec<String>,
    t0: SystemTime,
    events: Vec<(SystemTime, String)>,
}

impl Setup {
    fn new(tag: &str, n_ips: usize) -> Setup {
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
            crate::agents::write(&dir.join(format!("{h}.cfg")), &cfg, 0o644);
        }
        Setup {
            lab,
            a,
            b,
            c,
            dir,
            ips,
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

    fn start(&self, host: &Host) -> u32 {
        let log = self.dir.join(format!("{}.log", host.name));
        let cfg = self.dir.join(format!("{}.cfg", host.name));
        let cfg = cfg.to_string_lossy().into_owned();
        self.lab
            .spawn(host, &lab::ipfail_bin(), &["daemon", "-c", &cfg], &log)
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

pub fn demo() {
    println!("ipfail demo: dispatchers a (192.0.2.1, advskew 0) and b (192.0.2.2, advskew 100)");
    println!("share 203.0.113.10-12 (group web, vhid 10, advbase 1); client c pings them.\n");
    let mut s = Setup::new("demo", 3);
    s.note("start ipfail on a and b".into());
    let pid_a = s.start(&s.a.clone());
    s.start(&s.b.clone());
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
