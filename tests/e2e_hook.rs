//! `ipfail hook` end to end (issue 3): real hosts in network namespaces on
//! one bridge, real addresses, ARP and lock files.
//!
//! Hosts: a = 192.0.2.1 runs the hook; b = 192.0.2.2 plays the other
//! holder; client c = 192.0.2.100 has an on-link route to 203.0.113.0/24.
//! The config is the legacy example file (etc/mas_ip_manager.cfg) with its
//! addresses moved to 203.0.113.0/24 and its interface to eth0: [carp1]
//! floats 203.0.113.2-4, [carp2] 203.0.113.5-6.

mod lab;

use lab::{sorted, Pair};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LEGACY: &str = include_str!("../etc/mas_ip_manager.cfg");
const CARP1: [&str; 3] = ["203.0.113.2", "203.0.113.3", "203.0.113.4"];
const CARP2: [&str; 2] = ["203.0.113.5", "203.0.113.6"];
const SEC: Duration = Duration::from_secs(1);

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ipfail"))
}

/// `[ipfail]` timing unless a test gives its own.
const DEFAULT_TIMING: &str = "probe_timeout = 0.2\ngarp_interval = 0.1\n";

/// The legacy file, addresses and interface swapped for lab ones, with an
/// `[ipfail]` section in front (lock files under `dir/run`, `global` or
/// [`DEFAULT_TIMING`] below it).
fn legacy_config(dir: &Path, name: &str, carp2_vhid: bool, global: &str) -> String {
    let mut text = LEGACY
        .replace("208.43.48.", "203.0.113.")
        .replace("igb1", "eth0");
    assert!(!text.contains("208.43.48"), "every legacy address swapped");
    if carp2_vhid {
        assert!(text.contains("[carp2]\n"));
        text = text.replacen("[carp2]\n", "[carp2]\nvhid = 2\n", 1);
    }
    let path = dir.join(format!("{name}.cfg"));
    let full = format!(
        "[ipfail]\ncontrol_socket = {}\n{}\n{text}",
        dir.join("run").join("ipfail.sock").display(),
        if global.is_empty() {
            DEFAULT_TIMING
        } else {
            global
        }
    );
    std::fs::write(&path, full).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// The lab pair's hosts: a runs the hook, b plays the other holder, c is
/// the client; configs and logs go in `s.dir`.
fn site(test: &str) -> Pair {
    Pair::new(&format!("hook-{test}"), &bin())
}

#[test]
fn link_up_takes_exactly_carp2_and_announces_it_link_down_releases_and_both_are_idempotent() {
    if !lab::require_root() {
        return;
    }
    let s = site("updown");
    let cfg = legacy_config(&s.dir, "legacy", false, "");
    // b served 203.0.113.5 until now, so the client's ARP cache points at b.
    s.lab.add_addr(&s.b, "203.0.113.5/32");
    assert!(s.lab.ping(&s.c, "203.0.113.5", 2 * SEC), "c reaches b");
    assert_eq!(s.lab.neigh_mac(&s.c, "203.0.113.5"), Some(s.b.mac.clone()));
    s.lab.del_addr(&s.b, "203.0.113.5/32");

    let t = Instant::now();
    let up = s.hook(&s.a, &cfg, &["--carp=carp2", "--action=LINK_UP"]);
    eprintln!("LINK_UP run took {} ms", t.elapsed().as_millis());
    up.expect(0)
        .says("ipfail hook carp2 LINK_UP: acquiring 2 IPs on eth0")
        .says("ipfail hook carp2 LINK_UP: added 203.0.113.5/32 on eth0")
        .says("ipfail hook carp2 LINK_UP: added 203.0.113.6/32 on eth0")
        .says("announced 203.0.113.5, 203.0.113.6 on eth0 (3 times, 0.1 s apart)")
        .says("ipfail hook carp2 LINK_UP: done: all 2 IPs on eth0");
    assert_eq!(s.floating(&s.a), sorted(&CARP2), "exactly carp2's IPs");
    assert!(s.lab.has_addr(&s.a, "192.0.2.1"), "own address untouched");
    // The gratuitous ARP moved the client's cache entry without the client
    // asking (no ping here: that would resolve the address afresh).
    s.lab
        .wait_until("c's ARP cache points 203.0.113.5 at a", 2 * SEC, || {
            (s.lab.neigh_mac(&s.c, "203.0.113.5") == Some(s.a.mac.clone())).then_some(())
        });
    assert!(s.lab.ping(&s.c, "203.0.113.6", 2 * SEC), "c reaches a");

    // Separate-word options; a second LINK_UP changes nothing.
    s.hook(&s.a, &cfg, &["--carp", "carp2", "--action", "LINK_UP"])
        .expect(0)
        .says("203.0.113.5/32 already on eth0")
        .says("203.0.113.6/32 already on eth0")
        .never_says("added");
    assert_eq!(s.floating(&s.a), sorted(&CARP2));

    s.hook(&s.a, &cfg, &["--carp=carp2", "--action=LINK_DOWN"])
        .expect(0)
        .says("ipfail hook carp2 LINK_DOWN: releasing 2 IPs from eth0")
        .says("ipfail hook carp2 LINK_DOWN: removed 203.0.113.5/32 from eth0")
        .says("ipfail hook carp2 LINK_DOWN: removed 203.0.113.6/32 from eth0")
        .says("done: none of the 2 IPs on eth0");
    assert!(s.floating(&s.a).is_empty());
    assert!(s.lab.has_addr(&s.a, "192.0.2.1"), "own address untouched");

    s.hook(&s.a, &cfg, &["--carp=carp2", "--action=LINK_DOWN"])
        .expect(0)
        .says("203.0.113.5/32 not on eth0")
        .never_says("removed");
    assert!(s.floating(&s.a).is_empty());
}

#[test]
fn vhid_at_interface_selects_the_section_with_that_vhid() {
    if !lab::require_root() {
        return;
    }
    let s = site("vhid");
    let cfg = legacy_config(&s.dir, "vhid", true, "");
    s.hook(&s.a, &cfg, &["--carp=2@eth0", "--action=MASTER"])
        .expect(0)
        .says("ipfail hook carp2 MASTER: acquiring 2 IPs on eth0 (selected by 2@eth0)")
        .says("added 203.0.113.5/32 on eth0");
    assert_eq!(s.floating(&s.a), sorted(&CARP2));

    // Lower case works too.
    s.hook(&s.a, &cfg, &["--carp", "2@eth0", "--action", "backup"])
        .expect(0)
        .says("ipfail hook carp2 BACKUP: releasing 2 IPs from eth0")
        .says("removed 203.0.113.6/32 from eth0");
    assert!(s.floating(&s.a).is_empty());

    for (carp, why) in [
        ("3@eth0", "no section has vhid 3 on interface eth0"),
        ("2@eth1", "no section has vhid 2 on interface eth1"),
    ] {
        s.hook(&s.a, &cfg, &["--carp", carp, "--action=MASTER"])
            .expect(2)
            .says(why)
            .says("(sections with a vhid: 2@eth0 [carp2])")
            .says("nothing touched");
    }
    assert!(s.floating(&s.a).is_empty());
}

#[test]
fn an_ip_live_on_another_host_is_not_added_unless_forced() {
    if !lab::require_root() {
        return;
    }
    let s = site("live");
    let cfg = legacy_config(&s.dir, "live", false, "");
    s.lab.add_addr(&s.b, "203.0.113.6/32");

    s.hook(&s.a, &cfg, &["--carp=carp2", "--action=LINK_UP"])
        .expect(1)
        .says("added 203.0.113.5/32 on eth0")
        .says(&format!(
            "ipfail hook carp2 LINK_UP: 203.0.113.6/32: not added: answered ARP from {}",
            s.b.mac
        ))
        .says("incomplete: 1 of 2 IPs not added");
    assert_eq!(s.floating(&s.a), ["203.0.113.5"]);

    // The operator knows b is a zombie: --force skips the probe.
    s.hook(&s.a, &cfg, &["--carp=carp2", "--action=LINK_UP", "--force"])
        .expect(0)
        .says("probe skipped (--force)")
        .says("203.0.113.5/32 already on eth0")
        .says("added 203.0.113.6/32 on eth0");
    assert_eq!(s.floating(&s.a), sorted(&CARP2));
}

#[test]
fn dry_run_reports_what_it_would_do_and_changes_nothing() {
    if !lab::require_root() {
        return;
    }
    let s = site("dry");
    let cfg = legacy_config(&s.dir, "dry", false, "");
    s.lab.add_addr(&s.b, "203.0.113.6/32");

    s.hook(
        &s.a,
        &cfg,
        &["--carp=carp2", "--action=LINK_UP", "--dry-run"],
    )
    .expect(1)
    .says("acquiring 2 IPs on eth0 (dry run: changing nothing)")
    .says("would add 203.0.113.5/32 on eth0")
    .says(&format!(
        "203.0.113.6/32: would not be added: answered ARP from {}",
        s.b.mac
    ))
    .says("dry run done: nothing changed; 1 of 2 IPs would not be added")
    .never_says("announced");
    assert!(s.floating(&s.a).is_empty());

    s.hook(
        &s.a,
        &cfg,
        &["--carp=carp2", "--action=LINK_UP", "--dry-run", "--force"],
    )
    .expect(0)
    .says("would add 203.0.113.6/32 on eth0");
    assert!(s.floating(&s.a).is_empty());

    s.lab.add_addr(&s.a, "203.0.113.5/32");
    s.hook(
        &s.a,
        &cfg,
        &["--carp=carp2", "--action=LINK_DOWN", "--dry-run"],
    )
    .expect(0)
    .says("would remove 203.0.113.5/32 from eth0")
    .says("203.0.113.6/32 not on eth0")
    .says("dry run done: nothing changed");
    assert_eq!(s.floating(&s.a), ["203.0.113.5"]);
}

/// Twenty runs, alternating LINK_UP and LINK_DOWN, all started at once:
/// they take the group's lock one at a time (their lines never interleave)
/// and the group ends in the state of the last one to take it.
#[test]
fn twenty_concurrent_alternating_runs_end_in_the_last_ones_state() {
    if !lab::require_root() {
        return;
    }
    let s = site("race");
    let cfg = legacy_config(
        &s.dir,
        "race",
        false,
        "probe_timeout = 0.1\ngarp_count = 2\ngarp_interval = 0.05\n",
    );
    let log = s.dir.join("runs.log");
    let t = Instant::now();
    let mut pids = Vec::new();
    for i in 0..20 {
        let action = if i % 2 == 0 {
            "--action=LINK_UP"
        } else {
            "--action=LINK_DOWN"
        };
        let args = ["hook", "-c", cfg.as_str(), "--carp=carp2", action];
        pids.push(s.lab.spawn(&s.a, &bin(), &args, &log));
    }
    for pid in &pids {
        let status = s.lab.wait_exit(*pid, 60 * SEC);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let status = status.unwrap_or_else(|| panic!("run {pid} did not finish:\n{text}"));
        assert!(status.success(), "run {pid}: {status}\n{text}");
    }
    eprintln!("20 concurrent runs took {} ms", t.elapsed().as_millis());

    // Every line is written under the lock: a run's first line (acquiring
    // / releasing) must follow the previous run's last line (done).
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut open: Option<&str> = None;
    let mut order = Vec::new();
    let mut waited = 0;
    for line in text.lines() {
        let action = if line.contains("LINK_UP: ") {
            "LINK_UP"
        } else {
            "LINK_DOWN"
        };
        if line.contains(": acquiring ") || line.contains(": releasing ") {
            assert!(open.is_none(), "runs interleaved at {line:?}:\n{text}");
            open = Some(action);
            order.push(action);
            waited += usize::from(line.contains("; waited"));
        } else if line.contains(": done: ") {
            assert_eq!(open, Some(action), "at {line:?}:\n{text}");
            open = None;
        }
        assert!(
            !line.contains("incomplete")
                && !line.contains("not added")
                && !line.contains("not removed"),
            "{line}\n{text}"
        );
    }
    assert_eq!(open, None, "{text}");
    assert_eq!(order.len(), 20, "{text}");
    assert!(waited > 0, "runs contended for the lock:\n{text}");
    let last = order.last().copied();
    let expected = if last == Some("LINK_UP") {
        sorted(&CARP2)
    } else {
        Vec::new()
    };
    eprintln!(
        "lock order: {}; {waited} runs waited",
        order.iter().map(|a| &a[5..]).collect::<Vec<_>>().join(" ")
    );
    assert_eq!(s.floating(&s.a), expected, "last to lock: {last:?}\n{text}");
}

#[test]
fn unknown_section_unknown_action_and_a_bad_config_touch_nothing() {
    if !lab::require_root() {
        return;
    }
    let s = site("bad");
    let cfg = legacy_config(&s.dir, "good", false, "");
    for ip in CARP2 {
        s.lab.add_addr(&s.a, &format!("{ip}/32"));
    }
    let bad = s.dir.join("bad.cfg");
    let bad_text = std::fs::read_to_string(&cfg).unwrap_or_default()
        + "[carp3]\ninterface = eth0\nips : 203.0.113.7\n      203.0.113.300\n";
    std::fs::write(&bad, &bad_text).unwrap_or_else(|e| panic!("{e}"));
    let bad = bad.to_string_lossy().into_owned();
    let bad_line = bad_text.lines().count();
    let missing = s.dir.join("missing.cfg").to_string_lossy().into_owned();

    let cases: [(&str, Vec<&str>, String); 6] = [
        (
            cfg.as_str(),
            vec!["--carp=carp9", "--action=LINK_DOWN"],
            "no section [carp9] (sections: carp1, carp2); nothing touched".to_string(),
        ),
        (
            cfg.as_str(),
            vec!["--carp=carp2", "--action=LINK_SIDEWAYS"],
            "unknown action 'LINK_SIDEWAYS' (allowed: LINK_UP or MASTER".to_string(),
        ),
        (
            cfg.as_str(),
            vec!["--carp=carp2"],
            "--action <EVENT>".to_string(),
        ),
        (
            bad.as_str(),
            vec!["--carp=carp2", "--action=LINK_DOWN"],
            format!("{bad}:{bad_line}: key 'ips' in [carp3]: '203.0.113.300': not an IP address"),
        ),
        (
            bad.as_str(),
            vec!["--carp=carp1", "--action=LINK_UP"],
            "nothing touched".to_string(),
        ),
        (
            missing.as_str(),
            vec!["--carp=carp2", "--action=LINK_DOWN"],
            format!("{missing}: cannot read"),
        ),
    ];
    for (cfg, args, why) in cases {
        s.hook(&s.a, cfg, &args).expect(2).says(&why);
        assert_eq!(s.floating(&s.a), sorted(&CARP2), "after {args:?}");
    }
}

#[test]
fn a_group_the_running_daemon_elects_is_left_alone() {
    if !lab::require_root() {
        return;
    }
    let s = site("daemon");
    // The daemon elects [carp2] (vhid 2); [carp1] has no vhid: hook only.
    let cfg = legacy_config(&s.dir, "daemon", true, "");
    let pid = s.lab.spawn(
        &s.a,
        &bin(),
        &["daemon", "-c", &cfg],
        &s.dir.join("daemon.log"),
    );
    s.lab
        .wait_until("the daemon (alone) holds carp2", 15 * SEC, || {
            (s.floating(&s.a) == sorted(&CARP2)).then_some(())
        });
    let lock = s.dir.join("run").join("carp2.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap_or_default(),
        format!("daemon {pid}\n")
    );
    let mode = std::fs::metadata(s.dir.join("run")).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o755), "lock directory created 0755");

    let owned = format!(
        "[carp2] is managed by the running ipfail daemon (pid {pid}); not touching its addresses"
    );
    for args in [
        ["--carp=carp2", "--action=LINK_DOWN"],
        ["--carp=2@eth0", "--action=BACKUP"],
    ] {
        let t = Instant::now();
        s.hook(&s.a, &cfg, &args).expect(3).says(&owned);
        assert!(t.elapsed() < 5 * SEC, "gave up at once");
        assert_eq!(s.floating(&s.a), sorted(&CARP2), "after {args:?}");
    }

    // A group the daemon does not elect is the hook's.
    s.hook(&s.a, &cfg, &["--carp=carp1", "--action=LINK_UP"])
        .expect(0)
        .says("added 203.0.113.2/32 on eth0");
    let mut both = sorted(&CARP1);
    both.extend(sorted(&CARP2));
    assert_eq!(s.floating(&s.a), both);

    // Once the daemon is gone its lock file no longer stops anyone.
    assert!(s.lab.signal(pid, "TERM"));
    let status = s.lab.wait_exit(pid, 10 * SEC).expect("the daemon exits");
    assert!(status.success(), "{status}");
    assert_eq!(
        s.floating(&s.a),
        sorted(&CARP1),
        "the daemon released carp2"
    );
    s.hook(&s.a, &cfg, &["--carp=carp2", "--action=LINK_UP"])
        .expect(0)
        .says("added 203.0.113.5/32 on eth0");
    assert_eq!(s.floating(&s.a), both);
}

/// The devd actions of packaging/devd.conf, run as devd would (through
/// sh, with $subsystem and $type filled in), move the group.
#[test]
fn the_packaged_devd_actions_run_the_hook() {
    if !lab::require_root() {
        return;
    }
    let s = site("devd");
    let cfg = legacy_config(&s.dir, "devd", true, "");
    let conf =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/devd.conf"))
            .unwrap_or_else(|e| panic!("packaging/devd.conf: {e}"));
    let actions: Vec<String> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("action \""))
        .filter_map(|l| l.strip_suffix("\";"))
        .map(|a| {
            a.replace("/usr/local/sbin/ipfail", bin().to_str().unwrap_or_default())
                .replace("/usr/local/etc/mas_ip_manager.cfg", &cfg)
                // Not the build machine's syslog.
                .replace("/usr/bin/logger -t ipfail-hook", "cat")
        })
        .collect();
    assert_eq!(actions.len(), 2, "one action per event model:\n{conf}");
    assert!(conf.contains("match \"subsystem\"\t\"(carp1|carp2)\";"));
    assert!(conf.contains("match \"type\"\t\t\"(MASTER|BACKUP|INIT)\";"));
    // Only one rule runs per event (devd.conf(5)): ours match only the
    // config's events, never every vhid, at the priority the comment explains.
    assert!(
        conf.contains("match \"subsystem\"\t\"(1|2)@igb1\";"),
        "{conf}"
    );
    assert!(!conf.contains("[0-9]+@"), "a catch-all CARP match:\n{conf}");
    let priorities: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("notify "))
        .collect();
    assert_eq!(priorities, ["10 {", "10 {"], "{conf}");

    let run = |action: &str, subsystem: &str, event: &str| -> String {
        let line = action
            .replace("$subsystem", subsystem)
            .replace("$type", event);
        let out = s.lab.sh(&s.a, &["sh", "-c", &line]);
        assert!(out.status.success(), "{line}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // FreeBSD <= 9: IFNET carpN link events.
    let out = run(&actions[0], "carp2", "LINK_UP");
    assert!(out.contains("done: all 2 IPs on eth0"), "{out}");
    assert_eq!(s.floating(&s.a), sorted(&CARP2));
    let out = run(&actions[0], "carp2", "LINK_DOWN");
    assert!(out.contains("done: none of the 2 IPs"), "{out}");
    assert!(s.floating(&s.a).is_empty());
    // FreeBSD >= 10: CARP events, VHID@IFACE.
    run(&actions[1], "2@eth0", "MASTER");
    assert_eq!(s.floating(&s.a), sorted(&CARP2));
    run(&actions[1], "2@eth0", "INIT");
    assert!(s.floating(&s.a).is_empty());
}

/// ucarp elects, packaging/ucarp-updown.sh (linked as -up and -down) runs
/// the hook, and the whole group follows ucarp's state.
#[test]
fn ucarp_moves_the_group_through_the_packaged_script() {
    if !lab::require_root() {
        return;
    }
    if !Path::new("/usr/sbin/ucarp").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ucarp is not installed (scripts/deps installs it); CI must run this test"
        );
        eprintln!("SKIPPED: ucarp not installed (run scripts/deps)");
        return;
    }
    let s = site("ucarp");
    let cfg = legacy_config(&s.dir, "ucarp", false, "");
    let script = s.dir.join("ucarp-updown");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/ucarp-updown.sh"),
        &script,
    )
    .unwrap_or_else(|e| panic!("copy the script: {e}"));
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    for name in ["ucarp-up", "ucarp-down"] {
        std::os::unix::fs::symlink("ucarp-updown", s.dir.join(name))
            .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
    }
    let (up, down) = (
        s.dir.join("ucarp-up").to_string_lossy().into_owned(),
        s.dir.join("ucarp-down").to_string_lossy().into_owned(),
    );
    let ipfail = format!("IPFAIL={}", bin().display());
    let config = format!("IPFAIL_CONFIG={cfg}");
    let log = s.dir.join("ucarp.log");
    let pid = s.lab.spawn(
        &s.a,
        Path::new("/usr/bin/env"),
        &[
            &ipfail,
            &config,
            "/usr/sbin/ucarp",
            "--interface=eth0",
            "--srcip=192.0.2.1",
            "--vhid=7",
            "--pass=hook",
            "--addr=203.0.113.50",
            "--advbase=1",
            "--xparam=carp2",
            "--shutdown",
            "--upscript",
            &up,
            "--downscript",
            &down,
        ],
        &log,
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    s.lab.wait_until(
        "ucarp becomes master and the hook takes carp2",
        15 * SEC,
        || (s.floating(&s.a) == sorted(&CARP2)).then_some(()),
    );
    s.lab.wait_until("the hook reports", 5 * SEC, || {
        read_log()
            .contains("ipfail hook carp2 MASTER: done: all 2 IPs on eth0")
            .then_some(())
    });
    // --shutdown: ucarp runs the down script as it exits.
    assert!(s.lab.signal(pid, "TERM"));
    s.lab
        .wait_until("the down script releases carp2", 10 * SEC, || {
            s.floating(&s.a).is_empty().then_some(())
        });
    assert!(
        read_log().contains("ipfail hook carp2 BACKUP: removed 203.0.113.5/32 from eth0"),
        "{}",
        read_log()
    );
}
