//! Interop with a real CARP peer: `ipfail daemon` and `ucarp` (Debian
//! package) on the same vhid and pass elect by advbase/advskew and fail over
//! in both directions (issue 2, item 7).
//!
//! ucarp hashes exactly its one `-a` address into the HMAC, so ipfail sets
//! `hmac_addrs` to that address (DESIGN.md §4).

mod lab;

use lab::{Host, Lab};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const VIP: &str = "203.0.113.10";
const SEC: Duration = Duration::from_secs(1);

struct Mixed {
    lab: Lab,
    /// runs ipfail
    a: Host,
    /// runs ucarp
    b: Host,
    dir: PathBuf,
}

impl Mixed {
    fn new(test: &str, ipfail_advskew: u8) -> Mixed {
        let lab = Lab::new(test);
        let a = lab.add_host("a", "192.0.2.1/24");
        let b = lab.add_host("b", "192.0.2.2/24");
        let dir = lab::workdir(test);
        let cfg = format!(
            "[ipfail]\ncontrol_socket = {}\nprobe_timeout = 0.2\n\n\
             [vip]\ninterface = eth0\nvhid = 42\nadvskew = {ipfail_advskew}\npass = interop\n\
             hmac_addrs = {VIP}\nips = {VIP}\n",
            dir.join("a.sock").display()
        );
        std::fs::write(dir.join("a.cfg"), cfg).expect("write config");
        // ucarp runs these as `script <interface> <vaddr>`.
        script(&dir.join("up.sh"), "ip addr add \"$2\"/32 dev \"$1\"\n");
        script(
            &dir.join("down.sh"),
            "ip addr del \"$2\"/32 dev \"$1\" 2>/dev/null || true\n",
        );
        Mixed { lab, a, b, dir }
    }

    fn start_ipfail(&self) -> u32 {
        let cfg = self.dir.join("a.cfg").to_string_lossy().into_owned();
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_ipfail"));
        self.lab.spawn(
            &self.a,
            &bin,
            &["daemon", "-c", &cfg],
            &self.dir.join("a.log"),
        )
    }

    fn start_ucarp(&self, advskew: u8) -> u32 {
        let up = self.dir.join("up.sh").to_string_lossy().into_owned();
        let down = self.dir.join("down.sh").to_string_lossy().into_owned();
        let skew = advskew.to_string();
        let args = [
            "--interface=eth0",
            "--srcip=192.0.2.2",
            "--vhid=42",
            "--pass=interop",
            "--addr=203.0.113.10",
            "--advbase=1",
            "--advskew",
            &skew,
            "--preempt",
            "--shutdown",
            "--upscript",
            &up,
            "--downscript",
            &down,
        ];
        self.lab.spawn(
            &self.b,
            Path::new("/usr/sbin/ucarp"),
            &args,
            &self.dir.join("b.log"),
        )
    }

    fn holds(&self, h: &Host) -> bool {
        self.lab.has_addr(h, VIP)
    }

    fn wait_holder(&self, holder: &Host, other: &Host, what: &str, timeout: Duration) -> Duration {
        let t = Instant::now();
        self.lab.wait_until(what, timeout, || {
            (self.holds(holder) && !self.holds(other)).then_some(())
        });
        t.elapsed()
    }

    fn ipfail_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("a.log")).unwrap_or_default()
    }
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn ucarp_installed() -> bool {
    let ok = Path::new("/usr/sbin/ucarp").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ucarp is not installed (scripts/deps installs it); CI must run this test"
        );
        eprintln!("SKIPPED: ucarp not installed (run scripts/deps)");
    }
    ok
}

#[test]
fn ipfail_preferred_over_ucarp_fails_over_and_back() {
    if !lab::require_root() || !ucarp_installed() {
        return;
    }
    let m = Mixed::new("ucarp1", 0);
    let a = m.start_ipfail();
    m.start_ucarp(100);
    m.wait_holder(
        &m.a,
        &m.b,
        "ipfail (advskew 0) is master over ucarp (advskew 100)",
        10 * SEC,
    );
    // Stable: ucarp accepts our adverts (HMAC, checksum) and stays backup.
    std::thread::sleep(4 * SEC);
    assert!(m.holds(&m.a) && !m.holds(&m.b), "ucarp stayed backup");
    assert!(!m.ipfail_log().contains("rejected"), "{}", m.ipfail_log());

    assert!(m.lab.signal(a, "TERM"));
    let took = m.wait_holder(&m.b, &m.a, "ucarp takes over after ipfail stops", 6 * SEC);
    eprintln!(
        "ipfail SIGTERM -> ucarp holds {VIP}: {} ms",
        took.as_millis()
    );
    m.lab.wait_exit(a, 5 * SEC).expect("ipfail exited");

    m.start_ipfail();
    let back = m.wait_holder(&m.a, &m.b, "ipfail preempts ucarp again", 10 * SEC);
    eprintln!(
        "ipfail restart -> ipfail holds {VIP}: {} ms",
        back.as_millis()
    );
    let log = m.ipfail_log();
    assert!(
        log.contains("BACKUP -> MASTER: preempted less preferred master 192.0.2.2"),
        "{log}"
    );
}

#[test]
fn ucarp_preferred_over_ipfail_fails_over_and_back() {
    if !lab::require_root() || !ucarp_installed() {
        return;
    }
    let m = Mixed::new("ucarp2", 100);
    let u = m.start_ucarp(0);
    m.wait_holder(&m.b, &m.a, "ucarp (advskew 0) is master", 10 * SEC);
    m.start_ipfail();
    // ipfail hears ucarp's adverts, authenticates them and stays backup.
    m.lab.wait_until("ipfail is BACKUP", 5 * SEC, || {
        m.ipfail_log().contains("INIT -> BACKUP").then_some(())
    });
    std::thread::sleep(5 * SEC);
    assert!(m.holds(&m.b) && !m.holds(&m.a), "ipfail stayed backup");
    let log = m.ipfail_log();
    assert!(
        !log.contains("-> MASTER") && !log.contains("rejected"),
        "{log}"
    );

    assert!(m.lab.signal(u, "TERM"));
    let took = m.wait_holder(&m.a, &m.b, "ipfail takes over from ucarp", 8 * SEC);
    eprintln!(
        "ucarp SIGTERM -> ipfail holds {VIP}: {} ms",
        took.as_millis()
    );
    m.lab.wait_exit(u, 5 * SEC).expect("ucarp exited");

    m.start_ucarp(0);
    let back = m.wait_holder(&m.b, &m.a, "ucarp preempts ipfail again", 10 * SEC);
    eprintln!(
        "ucarp restart -> ucarp holds {VIP}: {} ms",
        back.as_millis()
    );
    assert!(
        m.ipfail_log()
            .contains("MASTER -> BACKUP: more preferred master 192.0.2.2"),
        "{}",
        m.ipfail_log()
    );
}
