//! The daemon as `packaging/ipfail.service` runs it, end to end in a network
//! namespace (issue 10):
//!
//! - as a non-root user with only CAP_NET_RAW and CAP_NET_ADMIN and a
//!   read-only /proc/sys (`User=`, `AmbientCapabilities=`,
//!   `ProtectKernelTunables=`), it takes a group's IPs and gives them back,
//!   including a primary address whose secondary must survive;
//! - `Type=notify`: READY=1 once `ipfail status` answers, WATCHDOG=1 from
//!   the event loop (none while the process is stopped), STOPPING=1;
//! - with stderr on the journal stream (`$JOURNAL_STREAM`), every line
//!   starts with its syslog priority.
//!
//! Host a = 192.0.2.1/24 on eth0; group `web` (vhid 10).

mod lab;

use lab::{read, Daemons, Group, Host, TIMING};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ipfail");
const SEC: Duration = Duration::from_secs(1);
/// The user the daemon runs as in the unprivileged test (nobody).
const NOBODY: u32 = 65534;

fn daemons(test: &str) -> Daemons {
    Daemons::new(test, Path::new(BIN))
}

fn web<'a>(ips: &'a [&'a str]) -> Group<'a> {
    Group {
        name: "web",
        vhid: 10,
        advskew: None,
        pass: "secret",
        extra: "",
        ips,
    }
}

/// Starts `sh -c SCRIPT` in the host's namespace (`ip netns exec` gives it
/// a mount namespace of its own), its output in the host's log.
fn spawn_sh(d: &Daemons, host: &Host, script: &str) -> u32 {
    let log = d.dir.join(format!("{}.log", host.name));
    d.lab
        .spawn(host, Path::new("/bin/sh"), &["-c", script], &log)
}

/// Waits until the host's `web` group is MASTER.
fn wait_master(d: &Daemons, host: &Host) {
    d.wait_group(host, "web", "MASTER", 15 * SEC, |g| g.state == "MASTER");
}

/// What `packaging/ipfail.service` sets up, in a test: user nobody, only
/// CAP_NET_RAW and CAP_NET_ADMIN (ambient, bounding set cut to them), no
/// new privileges, /proc/sys read-only. The daemon takes the group's IPs,
/// one a primary /24 with a secondary behind it; at SIGTERM it removes
/// them, the secondary surviving its primary's removal (promote_secondaries
/// is set through rtnetlink: a /proc/sys write would fail here).
#[test]
fn the_daemon_runs_as_nobody_with_two_capabilities_and_a_read_only_proc_sys() {
    if !lab::require_root() {
        return;
    }
    if !Path::new("/usr/bin/setpriv").exists() {
        panic!("setpriv (util-linux) is needed");
    }
    let d = daemons("sd-nobody");
    let a = d.host("a", "192.0.2.1/24");
    let ips = ["203.0.113.10/24", "203.0.113.11/24"];
    let cfg = d.write(&a, TIMING, &[web(&ips)]);
    // RuntimeDirectory= and StateDirectory= create these for the user.
    for dir in [
        d.socket(&a).parent().unwrap().to_path_buf(),
        d.state_dir(&a),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // A copy nobody can reach (the build tree may be under /root).
    let bin = d.dir.join("ipfail");
    std::fs::copy(BIN, &bin).unwrap();
    let bin = bin.display();
    let script = format!(
        "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && \
         exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups \
         --inh-caps=-all,+net_raw,+net_admin --ambient-caps=-all,+net_raw,+net_admin \
         --bounding-set=-all,+net_raw,+net_admin --no-new-privs \
         {bin} daemon --log-format text -c {cfg}"
    );
    let pid = spawn_sh(&d, &a, &script);
    wait_master(&d, &a);
    d.lab.wait_until("a holds both IPs", 10 * SEC, || {
        d.holds(&a, &["203.0.113.10", "203.0.113.11"]).then_some(())
    });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains(&NOBODY.to_string()), "{uid}");
    assert!(
        status.contains("CapEff:\t0000000000003000"),
        "only CAP_NET_ADMIN (12) and CAP_NET_RAW (13):\n{status}"
    );
    let shown = d.lab.ip(&a, &["-4", "addr", "show", "dev", "eth0"]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("inet 203.0.113.11/24") && shown.contains("secondary"),
        "{shown}"
    );
    assert!(d.lab.signal(pid, "TERM"));
    let exit = d.lab.wait_exit(pid, 10 * SEC).expect("the daemon stops");
    let log = d.log(&a);
    assert!(exit.success(), "{exit}\n{log}");
    assert!(
        d.holds_none(&a, &["203.0.113.10", "203.0.113.11"]),
        "IPs left behind:\n{log}"
    );
    assert!(!log.contains("could not remove"), "{log}");
    assert!(!log.contains("permission denied"), "{log}");
    assert!(log.contains("promote_secondaries=1"), "{log}");
    let ps = d.lab.sh(
        &a,
        &["cat", "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"],
    );
    assert_eq!(String::from_utf8_lossy(&ps.stdout).trim(), "1");
}

/// Receives one notification datagram (or None after `timeout`).
fn recv(sock: &UnixDatagram, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// `Type=notify` and `WatchdogSec=`: READY=1 comes when the control
/// socket already answers; WATCHDOG=1 every half period while the loop
/// runs, none while the process is stopped (SIGSTOP: a hung loop), again
/// after SIGCONT; STOPPING=1 at SIGTERM.
#[test]
fn ready_then_watchdog_keepalives_from_the_loop_then_stopping() {
    if !lab::require_root() {
        return;
    }
    let d = daemons("sd-notify");
    let a = d.host("a", "192.0.2.1/24");
    let cfg = d.write(&a, TIMING, &[web(&["203.0.113.10"])]);
    let path = d.dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // 400 ms watchdog: a keep-alive every 200 ms.
    let script = format!(
        "exec env NOTIFY_SOCKET={} WATCHDOG_USEC=400000 {BIN} daemon -c {cfg}",
        path.display()
    );
    let pid = spawn_sh(&d, &a, &script);
    let first = recv(&sock, 15 * SEC).expect("a notification");
    assert!(first.contains("READY=1"), "{first:?}");
    assert!(
        d.try_status(&a).is_some(),
        "READY=1 before the control socket answered"
    );
    let t0 = Instant::now();
    let mut alive = 0;
    while t0.elapsed() < 2 * SEC {
        if let Some(m) = recv(&sock, SEC) {
            alive += usize::from(m.contains("WATCHDOG=1"));
        }
    }
    assert!((6..=14).contains(&alive), "{alive} keep-alives in 2 s");
    // A stopped loop sends nothing.
    assert!(d.lab.signal(pid, "STOP"));
    while recv(&sock, Duration::from_millis(300)).is_some() {}
    assert_eq!(
        recv(&sock, 2 * SEC),
        None,
        "a keep-alive from a stopped daemon"
    );
    assert!(d.lab.signal(pid, "CONT"));
    let m = recv(&sock, 2 * SEC).expect("keep-alives again");
    assert!(m.contains("WATCHDOG=1"), "{m:?}");
    assert!(d.lab.signal(pid, "TERM"));
    let stop = Instant::now();
    let mut stopping = false;
    while !stopping && stop.elapsed() < 5 * SEC {
        stopping = recv(&sock, SEC).is_some_and(|m| m.contains("STOPPING=1"));
    }
    assert!(stopping, "no STOPPING=1");
    assert!(d.lab.wait_exit(pid, 10 * SEC).is_some());
}

/// The daemon started with stderr on the journal stream: every line
/// starts with `<N>`, the level's syslog priority, and carries the
/// group's fields; with `$JOURNAL_STREAM` naming another file, text.
#[test]
fn on_the_journal_stream_every_line_has_its_syslog_priority() {
    if !lab::require_root() {
        return;
    }
    let d = daemons("sd-journal");
    let a = d.host("a", "192.0.2.1/24");
    let cfg = d.write(&a, TIMING, &[web(&["203.0.113.10"])]);
    let log = d.dir.join("a.log");
    std::fs::write(&log, "").unwrap();
    let m = std::fs::metadata(&log).unwrap();
    let script = format!(
        "exec env JOURNAL_STREAM={}:{} {BIN} daemon -c {cfg}",
        m.dev(),
        m.ino()
    );
    let pid = spawn_sh(&d, &a, &script);
    wait_master(&d, &a);
    // A warning: the link goes down.
    d.lab.ip(&a, &["link", "set", "eth0", "down"]);
    d.lab.wait_until("the link-down warning", 10 * SEC, || {
        read(&log).contains("link down").then_some(())
    });
    assert!(d.lab.signal(pid, "TERM"));
    assert!(d.lab.wait_exit(pid, 10 * SEC).is_some());
    let text = read(&log);
    assert!(!text.is_empty());
    for line in text.lines() {
        let ok = ["<3>", "<4>", "<6>", "<7>"]
            .iter()
            .any(|p| line.starts_with(p));
        assert!(ok, "line without a priority prefix: {line:?}\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("<6>INIT -> BACKUP") && l.contains("group=web vhid=10")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("<4>link down") && l.contains("group=web")),
        "{text}"
    );

    // $JOURNAL_STREAM set but stderr elsewhere (inherited by a child whose
    // output was redirected): plain text.
    let other = d.host("b", "192.0.2.2/24");
    let cfg_b = d.write(&other, TIMING, &[web(&["203.0.113.10"])]);
    let script = format!(
        "exec env JOURNAL_STREAM={}:{} {BIN} daemon -c {cfg_b}",
        m.dev(),
        m.ino()
    );
    let pid = spawn_sh(&d, &other, &script);
    d.wait_group(&other, "web", "up", 15 * SEC, |g| g.state != "INIT");
    assert!(d.lab.signal(pid, "TERM"));
    assert!(d.lab.wait_exit(pid, 10 * SEC).is_some());
    let text_b = d.log(&other);
    assert!(text_b.contains(" INFO "), "{text_b}");
    assert!(!text_b.starts_with('<'), "{text_b}");
}
