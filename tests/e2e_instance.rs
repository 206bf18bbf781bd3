//! The safety rules of docs/safety.md, "Only our own addresses", end to end
//! in network namespaces: the daemon refuses a file that lists the host's
//! own address (and leaves the address alone), and one daemon runs per
//! network namespace whatever `control_socket` its file names.
//!
//! Host a = 192.0.2.1/24 on eth0; the group `web` (vhid 10) floats
//! 203.0.113.10-11.

mod lab;

use lab::{line_of, read, socket_path, text, write_config, Daemons, Group, Host};
use std::path::Path;
use std::time::{Duration, Instant};

const IPS: [&str; 2] = ["203.0.113.10", "203.0.113.11"];
const SEC: Duration = Duration::from_secs(1);

/// A daemon config `name` under `dir` (its own control socket and state
/// directory) for [web] (vhid 10) with [`IPS`]; `extra_ip` is appended to
/// `ips` on a line of its own. Returns the path and the line of `extra_ip`.
fn config(dir: &Path, name: &str, extra_ip: Option<&str>) -> (String, usize) {
    let mut ips = IPS.to_vec();
    ips.extend(extra_ip);
    let web = Group {
        name: "web",
        vhid: 10,
        advskew: None,
        pass: "secret",
        extra: "",
        ips: &ips,
    };
    let timing = "probe_timeout = 0.2\ngarp_interval = 0.1\n";
    let path = write_config(dir, name, timing, &[web]);
    let line = extra_ip.map_or(0, |ip| line_of(&path, ip));
    (path, line)
}

fn daemons(test: &str) -> Daemons {
    Daemons::new(test, Path::new(env!("CARGO_BIN_EXE_ipfail")))
}

fn holds_all(d: &Daemons, host: &Host) -> bool {
    d.holds(host, &IPS)
}

/// `ips = 192.0.2.1/24` on the host whose eth0 is 192.0.2.1/24: the daemon
/// refuses with file:line, the address and the interface, binds nothing,
/// and the host keeps its address. (Before, its start-up reconcile deleted
/// the host's primary address.)
#[test]
fn the_daemon_refuses_the_hosts_own_address_and_leaves_it_alone() {
    if !lab::require_root() {
        return;
    }
    let d = daemons("own-addr");
    let (lab, dir) = (&d.lab, &d.dir);
    let a = d.host("a", "192.0.2.1/24");
    let (cfg, line) = config(dir, "a", Some("192.0.2.1/24"));
    let log = dir.join("a.log");
    let pid = d.start(&a);
    let status = lab.wait_exit(pid, 10 * SEC).expect("the daemon exits");
    assert!(!status.success(), "{status}");
    let said = read(&log);
    for want in [
        format!("refusing to start, nothing touched: {cfg}:{line}: key 'ips' in [web]: 192.0.2.1"),
        "(on eth0)".to_string(),
        "ip addr del 192.0.2.1/24 dev eth0".to_string(),
    ] {
        assert!(said.contains(&want), "missing {want:?} in:\n{said}");
    }
    assert!(
        lab.has_addr(&a, "192.0.2.1"),
        "the host's address is still there"
    );
    for ip in IPS {
        assert!(!lab.has_addr(&a, ip), "{ip} was not added");
    }
    assert!(
        !socket_path(dir, "a").exists(),
        "no control socket was bound"
    );
    // Still reachable on its address: the neighbour answers.
    let b = lab.add_host("b", "192.0.2.2/24");
    assert!(
        lab.ping(&b, "192.0.2.1", 2 * SEC),
        "192.0.2.1 still answers"
    );
}

/// A second daemon in the same namespace, with another control_socket and
/// state_dir, is refused naming the first one's PID and touches nothing:
/// the first keeps running and keeps its IPs. A hook run with the second
/// file finds the group the daemon's. A reload of the first that would
/// add the host's own address is refused and changes nothing. Once the
/// first is gone, the second starts.
#[test]
fn a_second_daemon_in_the_namespace_is_refused_and_the_first_keeps_its_ips() {
    if !lab::require_root() {
        return;
    }
    let d = daemons("instance");
    let (lab, dir) = (&d.lab, &d.dir);
    let a = d.host("a", "192.0.2.1/24");
    let (first_cfg, _) = config(dir, "first", None);
    let (second_cfg, _) = config(dir, "second", None);
    let first = lab.spawn(
        &a,
        d.bin(),
        &["daemon", "-c", &first_cfg],
        &dir.join("first.log"),
    );
    lab.wait_until("the first daemon holds the IPs", 15 * SEC, || {
        holds_all(&d, &a).then_some(())
    });

    let second_log = dir.join("second.log");
    let second = lab.spawn(&a, d.bin(), &["daemon", "-c", &second_cfg], &second_log);
    let status = lab
        .wait_exit(second, 10 * SEC)
        .expect("the second daemon exits");
    assert!(!status.success(), "{status}");
    let said = read(&second_log);
    assert!(
        said.contains(&format!(
            "another ipfail daemon is running on this host (pid {first}); one daemon per \
             network namespace"
        )),
        "{said}"
    );
    assert!(
        !socket_path(dir, "second").exists(),
        "the second daemon bound no control socket"
    );
    // The first is untouched: still running, still holding every IP, for a
    // while (the second's exit removed nothing).
    let until = Instant::now() + 2 * SEC;
    while Instant::now() < until {
        assert!(holds_all(&d, &a), "the first daemon lost an IP");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lab.exit_status(first).is_none(), "the first daemon runs on");

    // The group lock is the namespace's too: a hook run with the second
    // file (another lock directory) finds the daemon's lock.
    let out = d.ipfail_cfg(&a, &second_cfg, &["hook", "--carp=web", "--action=BACKUP"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "[web] is managed by the running ipfail daemon (pid {first}); not touching"
        )),
        "{}",
        text(&out)
    );
    assert!(holds_all(&d, &a), "the hook removed nothing");

    // A reload that would add the host's own address changes nothing.
    let (_, line) = config(dir, "first", Some("192.0.2.1/24"));
    let out = d.ipfail_cfg(&a, &first_cfg, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "{first_cfg}:{line}: key 'ips' in [web]: 192.0.2.1 is"
        )),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("nothing changed"), "{}", text(&out));
    assert!(lab.has_addr(&a, "192.0.2.1"), "the host's address stays");
    assert!(holds_all(&d, &a), "the group is untouched");
    assert!(lab.exit_status(first).is_none(), "the first daemon runs on");

    // Gone (its lock released by the kernel), the second may start.
    assert!(lab.signal(first, "TERM"));
    let status = lab.wait_exit(first, 10 * SEC).expect("the first exits");
    assert!(status.success(), "{status}");
    let again = lab.spawn(&a, d.bin(), &["daemon", "-c", &second_cfg], &second_log);
    lab.wait_until("the second daemon holds the IPs", 15 * SEC, || {
        holds_all(&d, &a).then_some(())
    });
    assert!(lab.exit_status(again).is_none(), "the second daemon runs");
    assert!(lab.signal(again, "TERM"));
    lab.wait_exit(again, 10 * SEC).expect("the second exits");
}
