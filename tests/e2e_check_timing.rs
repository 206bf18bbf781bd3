//! Health checks never hold up the election (docs/design.md §6.12): with
//! 10 `exec` checks that hang until their timeout kills them, over and
//! over, the master's adverts captured on a third host stay on time.
//!
//! A file of its own, so no other test competes for the CPU while the
//! intervals are measured (cargo runs test binaries one at a time).

mod lab;

use lab::{pair_config, AdvertCapture, Pair};
use std::path::Path;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn adverts_stay_on_time_while_ten_checks_hang() {
    if !lab::require_root() {
        return;
    }
    let p = Pair::new("chkjitter", Path::new(env!("CARGO_BIN_EXE_ipfail")));
    // 10 checks that hang until their timeout kills them, every 0.5 s:
    // each a different command line, so none is shared.
    let mut checks = String::from("check : exec /bin/sleep 30\n");
    for i in 1..10 {
        checks.push_str(&format!("        exec /bin/sleep {}\n", 30 + i));
    }
    checks.push_str("check_interval = 0.5\ncheck_timeout = 0.3\n");
    pair_config(&p.dir, "a", 0, &checks);
    // a alone: never healthy, yet master of a silent LAN (a degraded
    // server beats none), advertising every second as least preferred.
    p.start(&p.a);
    p.lab.wait_until("a holds the IPs", 15 * SEC, || {
        p.holds_all(&p.a).then_some(())
    });

    let capture = AdvertCapture::start(&p.lab, &p.c, &p.dir.join("carp.pcap.txt"));
    std::thread::sleep(8 * SEC);
    let gaps = capture.stop(&p.lab, "192.0.2.1");
    assert!(
        gaps.gaps.len() >= 5,
        "too few adverts captured:\n{}",
        gaps.text
    );
    let worst = gaps.worst();
    eprintln!(
        "adverts while 10 checks hang and are killed every 0.5 s: {} intervals, min {:.1} ms, max {:.1} ms (advbase 1 s)",
        gaps.gaps.len(),
        gaps.best() * 1000.0,
        worst * 1000.0
    );
    assert!(worst <= 1.050, "worst gap {:.1} ms", worst * 1000.0);
    let h = p.status(&p.a).groups[0].health.clone().expect("health");
    let killed = h
        .checks
        .iter()
        .filter(|c| {
            c.last_detail
                .as_deref()
                .is_some_and(|d| d.contains("timeout"))
        })
        .count();
    assert_eq!(killed, 10, "every check was killed at its timeout: {h:?}");
    assert!(!h.healthy);
}
