//! Nothing on the advert path waits on netlink (docs/design.md §3): while
//! 1000 addresses are added and removed in a loop on the master's own
//! interface (every change an event the daemon receives), its adverts,
//! captured on the wire by a third host, stay on time.
//!
//! A file of its own, so no other test's lab competes for the CPU while
//! the intervals are measured (cargo runs test binaries one at a time).

mod lab;

use lab::{AdvertCapture, Pair};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

/// `ip -batch` lines adding (or deleting) 1000 IPv6 documentation
/// addresses on eth0.
fn batch(dir: &Path, verb: &str) -> PathBuf {
    let path = dir.join(format!("{verb}.batch"));
    let mut text = String::new();
    for i in 1..=1000u32 {
        let extra = if verb == "add" { " nodad" } else { "" };
        text.push_str(&format!(
            "addr {verb} 2001:db8:99::{i:x}/128 dev eth0{extra}\n"
        ));
    }
    std::fs::write(&path, text).expect("write batch");
    path
}

#[test]
fn adverts_stay_on_time_while_netlink_is_busy_with_1000_addresses() {
    if !lab::require_root() {
        return;
    }
    let p = Pair::new("advjitter", Path::new(env!("CARGO_BIN_EXE_ipfail")));
    p.start(&p.a);
    p.start(&p.b);
    p.wait_holder(&p.a, &p.b, 10 * SEC);

    let capture = AdvertCapture::start(&p.lab, &p.c, &p.dir.join("carp.pcap.txt"));
    let add = batch(&p.dir, "add");
    let del = batch(&p.dir, "del");
    // At most 60 rounds and at most 8 s: bounded whatever the machine.
    let script = format!(
        "end=$(( $(date +%s) + 8 )); i=0; \
         while [ $i -lt 60 ] && [ $(date +%s) -lt $end ]; do \
           ip -batch {add} && ip -batch {del} || exit 1; i=$((i+1)); \
         done; echo rounds=$i",
        add = add.display(),
        del = del.display()
    );
    let load_log = p.dir.join("load.log");
    let load = p
        .lab
        .spawn(&p.a, Path::new("/bin/sh"), &["-c", &script], &load_log);
    let status = p.lab.wait_exit(load, 30 * SEC).expect("load loop ends");
    let load_out = std::fs::read_to_string(&load_log).unwrap_or_default();
    assert!(status.success(), "address loop failed: {load_out}");
    // One more advert after the load, so the last gap is closed.
    std::thread::sleep(Duration::from_millis(1500));
    let gaps = capture.stop(&p.lab, "192.0.2.1");
    assert!(
        gaps.gaps.len() >= 7,
        "too few adverts captured:\n{}",
        gaps.text
    );
    let worst = gaps.worst();
    eprintln!(
        "adverts under netlink load ({}): {} intervals, min {:.1} ms, max {:.1} ms (advbase 1 s)",
        load_out.trim(),
        gaps.gaps.len(),
        gaps.best() * 1000.0,
        worst * 1000.0
    );
    assert!(
        worst <= 1.050,
        "an advert came {:.1} ms after the previous one (bound advbase + 50 ms)",
        worst * 1000.0
    );
    assert!(p.holds_all(&p.a) && p.held(&p.b).is_empty(), "no takeover");
}
