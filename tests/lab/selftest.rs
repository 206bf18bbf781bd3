//! Tests of the lab itself. Not a submodule of `lab` (that would run them in
//! every integration test binary): include it from one test target, e.g.
//! `tests/lab_selftest.rs`:
//!
//! ```ignore
//! mod lab;
//! #[path = "lab/selftest.rs"]
//! mod selftest;
//! ```

use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::lab::{self, longest_double_hold, Lab, Sample};

const SEC: Duration = Duration::from_secs(1);

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn temp_log(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "ipfail-lab-selftest-{}-{name}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn two_hosts_ping_each_other_over_the_bridge() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("ping");
    let a = lab.add_host("a", "192.0.2.1/24");
    let b = lab.add_host("b", "192.0.2.2/24");
    assert!(a.bridge_port.len() <= 15 && b.bridge_port.len() <= 15);
    assert_ne!(a.ns, b.ns);
    assert!(lab.addrs(&a).contains(&ip("192.0.2.1")));
    assert!(!lab.addrs(&a).contains(&ip("192.0.2.2")));
    assert!(lab.ping(&a, "192.0.2.2", 2 * SEC));
    assert!(lab.ping(&b, "192.0.2.1", 2 * SEC));
    // The ping taught a the MAC of b.
    assert_eq!(lab.neigh_mac(&a, "192.0.2.2"), Some(b.mac.clone()));
    assert_eq!(a.mac.len(), 17);
    assert_ne!(a.mac, b.mac);
    // Nobody answers for an unused address.
    assert!(!lab.ping(&a, "192.0.2.3", Duration::from_millis(300)));
    assert_eq!(lab.neigh_mac(&a, "192.0.2.3"), None);
}

#[test]
fn cut_loses_the_link_and_restore_brings_it_back() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("cut");
    let a = lab.add_host("a", "192.0.2.1/24");
    let b = lab.add_host("b", "192.0.2.2/24");
    assert!(lab.ping(&a, "192.0.2.2", 2 * SEC));

    lab.cut(&b);
    let link = lab.ip(&b, &["link", "show", "dev", "eth0"]);
    assert!(
        String::from_utf8_lossy(&link.stdout).contains("NO-CARRIER"),
        "b's eth0 should have lost carrier"
    );
    assert!(!lab.ping(&a, "192.0.2.2", Duration::from_millis(500)));

    lab.restore(&b);
    lab.wait_until("ping a -> b after restore", 5 * SEC, || {
        lab.ping(&a, "192.0.2.2", Duration::from_millis(200))
            .then_some(())
    });
}

#[test]
fn onlink_route_reaches_a_floating_ip() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("route");
    let a = lab.add_host("a", "192.0.2.1/24");
    let b = lab.add_host("b", "192.0.2.2/24");
    lab.add_addr(&b, "203.0.113.9");
    assert!(lab.has_addr(&b, "203.0.113.9"));
    // No route yet: unreachable.
    assert!(!lab.ping(&a, "203.0.113.9", Duration::from_millis(300)));
    lab.route_onlink(&a, "203.0.113.0/24");
    assert!(lab.ping(&a, "203.0.113.9", 2 * SEC));
    lab.del_addr(&b, "203.0.113.9");
    assert!(!lab.has_addr(&b, "203.0.113.9"));
}

#[test]
fn spawned_process_runs_in_the_namespace_and_logs() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("spawn");
    let a = lab.add_host("a", "192.0.2.1/24");
    let log = temp_log("spawn");
    let pid = lab.spawn(
        &a,
        Path::new("/bin/sh"),
        &["-c", "ip -o addr show dev eth0; echo to-stderr >&2"],
        &log,
    );
    let status = lab.wait_exit(pid, 5 * SEC).expect("sh exits");
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("192.0.2.1/24"), "log: {text}");
    assert!(text.contains("to-stderr"), "log: {text}");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn signal_and_wait_exit() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("signal");
    let a = lab.add_host("a", "192.0.2.1/24");
    let log = temp_log("signal");
    let pid = lab.spawn(&a, Path::new("/bin/sleep"), &["30"], &log);
    assert_eq!(lab.wait_exit(pid, Duration::from_millis(100)), None);
    assert!(lab.signal(pid, "TERM"));
    let status = lab.wait_exit(pid, 5 * SEC).expect("sleep dies on TERM");
    assert_eq!(status.signal(), Some(15));
    // Exited: it is never signalled again.
    assert!(!lab.signal(pid, "KILL"));
    let _ = std::fs::remove_file(&log);
}

#[test]
fn signal_refuses_foreign_pids() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("foreign");
    let r = std::panic::catch_unwind(|| lab.signal(std::process::id(), "TERM"));
    let msg = r.expect_err("signalling our own test process must be refused");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("not spawned by this lab"), "{msg}");
}

#[test]
fn refuses_addresses_outside_documentation_ranges() {
    for bad in [
        "10.0.0.1/24",
        "192.0.3.1/24",
        "192.0.2.1/16",
        "8.8.8.8",
        "2001:db9::1",
        "x",
    ] {
        let r = std::panic::catch_unwind(|| lab::lab_cidr(bad));
        assert!(r.is_err(), "{bad} must be refused");
    }
    assert_eq!(lab::lab_cidr("203.0.113.7"), (ip("203.0.113.7"), 32));
    assert_eq!(lab::lab_cidr("198.51.100.0/24"), (ip("198.51.100.0"), 24));
    assert_eq!(lab::lab_cidr("2001:db8::1/64"), (ip("2001:db8::1"), 64));
}

#[test]
fn lab_methods_refuse_foreign_addresses_before_acting() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("refuse");
    let a = lab.add_host("a", "192.0.2.1/24");
    let refused = |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    assert!(refused(&|| {
        lab.ping(&a, "8.8.8.8", SEC);
    }));
    assert!(refused(&|| lab.route_onlink(&a, "0.0.0.0/0")));
    assert!(refused(&|| lab.add_addr(&a, "10.1.2.3")));
    assert!(refused(&|| {
        lab.add_host("b", "172.16.0.1/24");
    }));
    assert!(refused(&|| {
        lab.add_host("br", "192.0.2.9/24");
    }));
    assert!(refused(&|| {
        lab.add_host("a", "192.0.2.9/24");
    }));
    assert_eq!(lab.hosts().len(), 1);
}

#[test]
fn drop_cleans_up_even_when_the_test_panics() {
    if !lab::require_root() {
        return;
    }
    let log = temp_log("drop");
    let seen = std::sync::Mutex::new((Vec::<String>::new(), 0u32));
    let r = std::panic::catch_unwind(|| {
        let lab = Lab::new("drop");
        let a = lab.add_host("a", "192.0.2.1/24");
        let b = lab.add_host("b", "192.0.2.2/24");
        let pid = lab.spawn(&a, Path::new("/bin/sleep"), &["1234.5"], &log);
        *seen.lock().unwrap() = (vec![lab.bridge_ns().to_string(), a.ns, b.ns], pid);
        panic!("test body fails");
    });
    assert!(r.is_err());
    let (namespaces, pid) = seen.into_inner().unwrap();
    assert_eq!(namespaces.len(), 3);
    let list = netns_list();
    for ns in &namespaces {
        assert!(!list.contains(ns.as_str()), "{ns} left behind");
    }
    // The sleeper is gone (its PID, if reused, runs something else).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains("1234.5"));
    let _ = std::fs::remove_file(&log);
}

#[test]
fn stale_namespaces_of_dead_processes_are_swept() {
    if !lab::require_root() {
        return;
    }
    // "sw" is not hex, so Labs created by concurrent tests (which sweep
    // `<prefix><hex>-...`) leave these names to this test.
    let prefix = format!("{}sw", lab::prefix());
    // A PID that is certainly dead: a child we reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("{prefix}{dead:x}-0-stale-br");
    let live = format!("{prefix}{:x}-999999-live-br", std::process::id());
    for ns in [&stale, &live] {
        assert!(std::process::Command::new("ip")
            .args(["netns", "add", ns])
            .status()
            .unwrap()
            .success());
    }
    assert_eq!(lab::stale_owner(&prefix, &stale), Some(dead));
    assert_eq!(lab::stale_owner(&prefix, "ipfhother-1-x"), None);
    lab::sweep_stale(&prefix);
    let list = netns_list();
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &live])
        .status();
    assert!(!list.contains(&stale), "stale namespace kept");
    assert!(list.contains(&live), "namespace of a live process removed");
}

#[test]
fn labs_in_parallel_do_not_collide() {
    if !lab::require_root() {
        return;
    }
    std::thread::scope(|s| {
        for i in 0..4 {
            s.spawn(move || {
                let lab = Lab::new("par");
                let a = lab.add_host("a", "192.0.2.1/24");
                let _b = lab.add_host("b", "192.0.2.2/24");
                assert!(lab.ping(&a, "192.0.2.2", 2 * SEC), "lab {i}");
            });
        }
    });
}

#[test]
fn sampler_sees_a_double_hold() {
    if !lab::require_root() {
        return;
    }
    let lab = Lab::new("sampler");
    let a = lab.add_host("a", "192.0.2.1/24");
    let b = lab.add_host("b", "192.0.2.2/24");
    let sampler = lab.sampler(&[&a, &b]);
    lab.add_addr(&a, "203.0.113.5");
    std::thread::sleep(Duration::from_millis(100));
    lab.add_addr(&b, "203.0.113.5");
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    lab.del_addr(&a, "203.0.113.5");
    let held = start.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let samples = sampler.stop();
    assert!(samples.iter().any(|s| s.host == "a"));
    assert!(samples.iter().any(|s| s.host == "b"));
    let (len, which) = longest_double_hold(&samples);
    assert_eq!(which, Some(ip("203.0.113.5")));
    // Off by at most a sampling round each way; generous for loaded machines.
    assert!(
        len >= held / 2 && len <= held + Duration::from_millis(700),
        "measured {len:?}, real {held:?}"
    );
}

#[test]
fn parse_addrs_reads_ip_o_output() {
    let text = "2: eth0    inet 192.0.2.1/24 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                2: eth0    inet 203.0.113.5/32 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever\n";
    assert_eq!(
        lab::parse_addrs(text),
        vec![ip("192.0.2.1"), ip("203.0.113.5"), ip("fe80::1")]
    );
}

fn at(t0: Instant, ms: u64, host: &str, addrs: &[&str]) -> Sample {
    Sample {
        at: t0 + Duration::from_millis(ms),
        host: host.into(),
        addrs: addrs.iter().map(|a| ip(a)).collect(),
    }
}

#[test]
fn clean_handover_has_no_double_hold() {
    let t = Instant::now();
    let s = [
        at(t, 0, "a", &["203.0.113.5"]),
        at(t, 1, "b", &[]),
        at(t, 20, "a", &[]),
        at(t, 21, "b", &["203.0.113.5"]),
    ];
    assert_eq!(longest_double_hold(&s), (Duration::ZERO, None));
}

#[test]
fn longest_double_hold_finds_the_longest_overlap_and_its_ip() {
    let t = Instant::now();
    let s = [
        at(t, 0, "a", &["203.0.113.5", "203.0.113.6"]),
        at(t, 10, "b", &["203.0.113.6"]), // .6 doubled from 10
        at(t, 30, "a", &["203.0.113.5"]), // .6 ends at 30: 20 ms
        at(t, 40, "b", &["203.0.113.5"]), // .5 doubled from 40
        at(t, 150, "a", &[]),             // .5 ends at 150: 110 ms
    ];
    assert_eq!(
        longest_double_hold(&s),
        (Duration::from_millis(110), Some(ip("203.0.113.5")))
    );
}

#[test]
fn longest_double_hold_sorts_input_and_closes_open_overlaps() {
    let t = Instant::now();
    let s = [
        at(t, 50, "c", &["203.0.113.9"]),
        at(t, 0, "a", &["203.0.113.9"]),
        at(t, 70, "a", &["203.0.113.9"]),
    ];
    // Doubled from 50 until the last sample at 70.
    assert_eq!(
        longest_double_hold(&s),
        (Duration::from_millis(20), Some(ip("203.0.113.9")))
    );
}

#[test]
fn one_host_listing_an_ip_twice_is_not_a_double_hold() {
    let t = Instant::now();
    let s = [at(t, 0, "a", &["203.0.113.9", "203.0.113.9"])];
    assert_eq!(longest_double_hold(&s), (Duration::ZERO, None));
}

#[test]
fn a_momentary_double_hold_is_still_reported() {
    let t = Instant::now();
    let s = [
        at(t, 0, "a", &["203.0.113.9"]),
        at(t, 5, "b", &["203.0.113.9"]),
    ];
    assert_eq!(
        longest_double_hold(&s),
        (Duration::ZERO, Some(ip("203.0.113.9")))
    );
}
