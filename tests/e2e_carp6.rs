//! CARP over IPv6 (`docs/design.md` §4.7, `docs/interop.md` "Both
//! families"): a group with an IPv6 address advertises to ff02::12 from
//! its link-local address with hop limit 255 as well as to 224.0.0.18,
//! the pair elects one master and fails over as with IPv4, and the
//! backup hears the adverts of both families. A group with IPv4
//! addresses only sends nothing on IPv6.

mod lab;

use lab::Pair;
use std::path::Path;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);
const V6_IP: &str = "2001:db8::10";

/// Writes `host`'s config: group `web` with one IPv4 and one IPv6
/// floating IP (the pair helper's pattern, with an IPv6 `ips` entry).
fn config_v6(p: &Pair, host: &str, advskew: u8) {
    let dir = &p.dir;
    let text = format!(
        "[ipfail]\n\
         control_socket = {sock}\n\
         state_dir = {state}\n\
         probe_timeout = 0.2\n\
         reprobe_interval = 0.3\n\
         garp_interval = 0.2\n\
         \n\
         [web]\n\
         interface = eth0\n\
         vhid = 10\n\
         advskew = {advskew}\n\
         pass = secret\n\
         ips : 203.0.113.10\n      {V6_IP}\n",
        sock = dir.join(host).join("ipfail.sock").display(),
        state = dir.join(format!("{host}-state")).display(),
    );
    std::fs::write(dir.join(format!("{host}.cfg")), text).expect("write config");
}

fn status_json(p: &Pair, host: &lab::Host) -> serde_json::Value {
    let out = p.ipfail(host, &["status", "--json"]);
    assert!(
        out.status.success(),
        "ipfail status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

fn adverts_received(p: &Pair, host: &lab::Host) -> u64 {
    status_json(p, host)["groups"][0]["counters"]["adverts_received"]
        .as_u64()
        .expect("adverts_received is a number")
}

/// Starts `tcpdump -v` for CARP (protocol 112) of both families on c.
fn capture(p: &Pair, name: &str) -> (u32, std::path::PathBuf) {
    let log = p.dir.join(format!("{name}.txt"));
    let pid = p.lab.spawn(
        &p.c,
        Path::new("/usr/bin/tcpdump"),
        &[
            "-i", "eth0", "-n", "-tt", "-l", "-v", "ip", "proto", "112", "or", "ip6", "proto",
            "112",
        ],
        &log,
    );
    (pid, log)
}

fn stop_capture(p: &Pair, pid: u32, log: &Path) -> String {
    assert!(p.lab.signal(pid, "TERM"));
    p.lab.wait_exit(pid, 5 * SEC);
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The IPv6 advert lines of a `tcpdump -v` capture: tcpdump prints the
/// IPv6 header (with `hlim`) and the addresses on one line.
fn v6_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains("IP6") && l.contains("ff02::12"))
        .collect()
}

#[test]
fn a_group_with_ipv6_addresses_advertises_and_fails_over_on_both_families() {
    if !lab::require_root() {
        return;
    }
    let p = Pair::new("carp6", Path::new(env!("CARGO_BIN_EXE_ipfail")));
    for (h, v6) in [
        (&p.a, "2001:db8::1/64"),
        (&p.b, "2001:db8::2/64"),
        (&p.c, "2001:db8::100/64"),
    ] {
        p.lab.add_addr(h, v6);
    }
    config_v6(&p, "a", 0);
    config_v6(&p, "b", 100);
    let (tcpdump, cap) = capture(&p, "carp6");
    let pid_a = p.start(&p.a);
    p.start(&p.b);
    let holds = |h: &lab::Host| p.lab.has_addr(h, V6_IP) && p.lab.has_addr(h, "203.0.113.10");
    p.lab
        .wait_until("a holds the IPv4 and IPv6 IPs", 10 * SEC, || {
            (holds(&p.a) && !p.lab.has_addr(&p.b, V6_IP) && !p.lab.has_addr(&p.b, "203.0.113.10"))
                .then_some(())
        });

    // The backup hears the master on both families: two adverts per
    // advbase (1 s), and stays backup.
    let before = adverts_received(&p, &p.b);
    let t = Instant::now();
    std::thread::sleep(4 * SEC);
    let after = adverts_received(&p, &p.b);
    let secs = t.elapsed().as_secs_f64();
    let per_sec = (after - before) as f64 / secs;
    eprintln!(
        "backup heard {} adverts in {secs:.2} s ({per_sec:.2}/s)",
        after - before
    );
    assert!(
        (1.6..=2.5).contains(&per_sec),
        "expected about 2 adverts per second (IPv4 + IPv6), got {per_sec:.2}"
    );
    let sb = status_json(&p, &p.b);
    assert_eq!(sb["groups"][0]["state"], "BACKUP", "{sb}");
    assert_eq!(
        sb["groups"][0]["counters"]["transitions"], 1,
        "no flapping: {sb}"
    );

    let text = stop_capture(&p, tcpdump, &cap);
    let v6 = v6_lines(&text);
    assert!(v6.len() >= 4, "too few IPv6 adverts captured:\n{text}");
    for l in &v6 {
        assert!(l.contains("hlim 255"), "hop limit 255: {l}");
        assert!(
            l.contains("fe80::") && l.contains("> ff02::12"),
            "from a link-local address: {l}"
        );
    }
    eprintln!("captured: {}", v6[0]);
    let v4 = text
        .lines()
        .filter(|l| l.contains("192.0.2.1 > 224.0.0.18"))
        .count();
    assert!(v4 >= 4, "IPv4 adverts go on as before:\n{text}");

    // The master heard over IPv6 only: b's kernel drops a's IPv4 adverts
    // (strict reverse-path filter, 192.0.2.1 routed to another interface),
    // yet for longer than b's master-down interval (3.39 s) b stays
    // BACKUP on a's IPv6 adverts, one per second.
    let sh = |args: &[&str]| {
        let out = p.lab.sh(&p.b, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    sh(&["ip", "link", "set", "d0", "up"]);
    sh(&["ip", "link", "set", "d1", "up"]);
    sh(&["ip", "route", "add", "192.0.2.1/32", "dev", "d0"]);
    sh(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
    sh(&["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1"]);
    std::thread::sleep(Duration::from_millis(200));
    let before = adverts_received(&p, &p.b);
    let t = Instant::now();
    std::thread::sleep(5 * SEC);
    let after = adverts_received(&p, &p.b);
    let per_sec = (after - before) as f64 / t.elapsed().as_secs_f64();
    eprintln!("IPv4 adverts dropped at b: b heard {per_sec:.2} adverts/s");
    assert!(
        (0.7..=1.3).contains(&per_sec),
        "expected about 1 advert per second (IPv6 only), got {per_sec:.2}"
    );
    let sb = status_json(&p, &p.b);
    assert_eq!(sb["groups"][0]["state"], "BACKUP", "{sb}");
    assert_eq!(sb["groups"][0]["counters"]["transitions"], 1, "{sb}");
    assert!(holds(&p.a), "a kept its IPs");
    sh(&["ip", "route", "del", "192.0.2.1/32", "dev", "d0"]);
    sh(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    sh(&["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0"]);

    // SIGTERM of the master: the backup takes every IP, IPv4 and IPv6.
    let t = Instant::now();
    assert!(p.lab.signal(pid_a, "TERM"));
    p.lab
        .wait_until("b holds the IPv4 and IPv6 IPs", 5 * SEC, || {
            holds(&p.b).then_some(())
        });
    eprintln!("SIGTERM -> b holds both: {:?}", t.elapsed());
    let status = p.lab.wait_exit(pid_a, 5 * SEC).expect("a exits");
    assert!(status.success());
    assert!(!p.lab.has_addr(&p.a, V6_IP) && !p.lab.has_addr(&p.a, "203.0.113.10"));
    let sb = status_json(&p, &p.b);
    assert_eq!(sb["groups"][0]["state"], "MASTER", "{sb}");
}

#[test]
fn a_group_with_ipv4_addresses_only_sends_nothing_on_ipv6() {
    if !lab::require_root() {
        return;
    }
    let p = Pair::new("carp4only", Path::new(env!("CARGO_BIN_EXE_ipfail")));
    let (tcpdump, cap) = capture(&p, "carp4only");
    p.start(&p.a);
    p.start(&p.b);
    p.wait_holder(&p.a, &p.b, 10 * SEC);
    std::thread::sleep(3 * SEC);
    let text = stop_capture(&p, tcpdump, &cap);
    let v4 = text
        .lines()
        .filter(|l| l.contains("192.0.2.1 > 224.0.0.18"))
        .count();
    assert!(v4 >= 3, "IPv4 adverts captured:\n{text}");
    assert!(
        v6_lines(&text).is_empty() && !text.contains("IP6"),
        "an IPv4-only group sent on IPv6:\n{text}"
    );
}

#[test]
fn an_interface_without_a_link_local_address_is_named() {
    if !lab::require_root() {
        return;
    }
    let p = Pair::new("carp6noll", Path::new(env!("CARGO_BIN_EXE_ipfail")));
    config_v6(&p, "a", 0);
    let out = p.lab.sh(
        &p.a,
        &["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = p.start(&p.a);
    let status = p.lab.wait_exit(pid, 10 * SEC).expect("the daemon exits");
    assert!(!status.success());
    let log = p.log(&p.a);
    assert!(
        log.contains("no IPv6 link-local address") && log.contains("eth0"),
        "{log}"
    );
    assert!(!p.lab.has_addr(&p.a, "203.0.113.10"), "nothing touched");
}
