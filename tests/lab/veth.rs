//! Two namespaces joined directly by veth pairs, for the tests of the Linux
//! back end (`tests/sys_linux.rs`), which drive `ipfail::sys::linux` in
//! place of a daemon (docs/design.md §8.4).
//!
//! Namespaces A and B are joined by va/vb (192.0.2.1/24, 192.0.2.2/24,
//! 2001:db8::1/64, 2001:db8::2/64) and by a second pair va2/vb2
//! (203.0.113.193/27, 203.0.113.194/27). 198.51.100.0/24 has no route
//! anywhere. The namespaces belong to a [`Lab`], whose `Drop` deletes them,
//! also when a test panics.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{ip_ok, lab_addr, lab_cidr, require_root, Lab};

pub struct VethLab {
    /// Owns the namespaces.
    pub lab: Lab,
    /// Namespace A (va, va2); [`VethLab::run`] starts there.
    pub a: String,
    /// Namespace B (vb, vb2).
    pub b: String,
}

impl VethLab {
    /// Builds the lab, or returns None when the test has to be skipped
    /// (see [`require_root`]: under `CI=true` a missing capability panics).
    /// `tag` (e.g. the test name) only makes namespace names readable.
    pub fn new(tag: &str) -> Option<VethLab> {
        if !require_root() {
            return None;
        }
        let lab = Lab::new(tag);
        let a = lab.add_bare_ns("A");
        let b = lab.add_bare_ns("B");
        let veth = VethLab { lab, a, b };
        let (a, b) = (veth.a.as_str(), veth.b.as_str());
        for (x, y, xa, ya) in [
            ("va", "vb", "192.0.2.1/24", "192.0.2.2/24"),
            ("va2", "vb2", "203.0.113.193/27", "203.0.113.194/27"),
        ] {
            lab_cidr(xa);
            lab_cidr(ya);
            veth.ip(
                a,
                &[
                    "link", "add", x, "type", "veth", "peer", "name", y, "netns", b,
                ],
            );
            veth.ip(a, &["addr", "add", xa, "dev", x]);
            veth.ip(b, &["addr", "add", ya, "dev", y]);
            veth.ip(a, &["link", "set", x, "up"]);
            veth.ip(b, &["link", "set", y, "up"]);
        }
        veth.ip(a, &["addr", "add", "2001:db8::1/64", "dev", "va", "nodad"]);
        veth.ip(b, &["addr", "add", "2001:db8::2/64", "dev", "vb", "nodad"]);
        Some(veth)
    }

    /// `ip -n NS ARGS...`; panics with ip's stderr when it fails.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// MAC address of `dev` in `ns`, from `ip link show`.
    pub fn mac(&self, ns: &str, dev: &str) -> [u8; 6] {
        let out = self.ip(ns, &["link", "show", "dev", dev]);
        let text = out
            .split("link/ether ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no MAC in: {out}"));
        parse_mac(text)
    }

    /// Runs `test` on its own thread with a current_thread runtime (as
    /// the daemon does). The thread starts in namespace A; [`enter`]
    /// switches it, and sockets keep the namespace they were made in.
    pub fn run<F, Fut>(&self, test: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let a = self.a.clone();
        let joined = std::thread::spawn(move || {
            enter(&a);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(test());
        })
        .join();
        if let Err(panic) = joined {
            std::panic::resume_unwind(panic);
        }
    }

    /// `sysctl -w KEY=VALUE` inside namespace `ns`; panics on failure.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        let kv = format!("{key}={value}");
        let out = super::run("ip", &["netns", "exec", ns, "sysctl", "-qw", &kv]);
        assert!(
            out.status.success(),
            "sysctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `net.ipv6.icmp.echo_ignore_all=1` inside namespace `ns`.
    pub fn set_echo_ignore_all(&self, ns: &str) {
        self.sysctl(ns, "net.ipv6.icmp.echo_ignore_all", "1");
    }

    /// Seeds a stale neighbour entry for `ip` on vb in `ns` pointing at a
    /// MAC nobody has, so a test can watch an announcement replace it.
    pub fn seed_stale_neigh(&self, ns: &str, ip: &str) {
        lab_addr(ip);
        self.ip(
            ns,
            &[
                "neigh",
                "replace",
                ip,
                "lladdr",
                "02:00:00:00:00:99",
                "dev",
                "vb",
                "nud",
                "stale",
            ],
        );
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("open /run/netns/{ns}: {e}"));
    // SAFETY: setns(2) only changes the network namespace of this thread;
    // the fd is valid for the duration of the call.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// `ip ARGS...`, returning stdout; panics with ip's stderr when it fails.
/// Usable inside [`VethLab::run`], where the lab itself is not.
pub fn run(args: &[&str]) -> String {
    String::from_utf8_lossy(&ip_ok(args).stdout).into_owned()
}

/// A probe that found not every target waits out its timeout, and not
/// much longer.
pub fn assert_waited_timeout(took: Duration, timeout: Duration) {
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );
}

/// `ip neigh` spelling of a MAC: `lladdr 02:00:...`.
pub fn lladdr(mac: [u8; 6]) -> String {
    let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("lladdr {}", hex.join(":"))
}

pub fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.trim().split(':').collect();
    assert_eq!(parts.len(), 6, "bad MAC {text}");
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    mac
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
