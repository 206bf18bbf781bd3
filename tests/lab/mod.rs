//! Network-namespace lab for ipfail's end-to-end tests, demo and benchmark.
//!
//! Topology: one bridge namespace holding a Linux bridge `br0`, and one
//! namespace per host joined to it by a veth pair (host side `eth0`, bridge
//! side [`Host::bridge_port`]). Everything is created with `ip -n` /
//! `ip netns exec`; the root namespace's links are never touched.
//!
//! Use it from integration tests as `mod lab;` and from examples as
//! `#[path = "../tests/lab/mod.rs"] mod lab;`. It depends only on std and the
//! `ip`, `ping` and `kill` commands (iproute2, iputils-ping, procps).
//!
//! Safety rules it enforces:
//! - addresses only in 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
//!   2001:db8::/32 (anything else panics, see `safety.rs`);
//! - it signals and kills only processes it spawned, by PID, and only while
//!   they are unreaped (so the PID cannot have been reused);
//! - every wait has a deadline;
//! - [`Lab`]'s `Drop` kills its children and deletes its namespaces, also
//!   during a panic unwind. Namespaces left by a killed test process (no
//!   unwind) are deleted by the next [`Lab::new`] (see [`sweep_stale`]).
//!
//! Namespace names are `<prefix><pid hex>-<counter>-<tag>-<host>`, unique per
//! process and per Lab. The prefix is `ipf`, or `$IPFAIL_LAB_PREFIX` if set.
//! Interface names need no global uniqueness (each Lab has its own bridge
//! namespace) and stay within 15 bytes.
#![allow(dead_code)]

mod capture;
mod daemons;
mod pair;
mod safety;
mod sample;
pub mod veth;

// Each test uses a subset of the lab; unused re-exports are expected.
#[allow(unused_imports)]
pub use capture::{AdvertCapture, Gaps};
#[allow(unused_imports)]
pub use daemons::{
    all_in, exchange, ip_states, line_of, read, socket_path, sorted, state_path, text,
    write_config, Daemons, Group, Run, TIMING,
};
#[allow(unused_imports)]
pub use pair::{pair_config, web, Pair, PAIR_IPS};
#[allow(unused_imports)]
pub use safety::{is_lab_addr, lab_addr, lab_cidr};
#[allow(unused_imports)]
pub use sample::{longest_double_hold, longest_gap, no_holder, Sample, Sampler};
#[allow(unused_imports)]
pub use veth::VethLab;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use safety::{lab_cidr_v4, sanitize, IFNAME_MAX};

/// Namespace name prefix unless `$IPFAIL_LAB_PREFIX` overrides it.
const DEFAULT_PREFIX: &str = "ipf";
/// Poll interval of every wait loop.
const POLL: Duration = Duration::from_millis(10);
/// Signals [`Lab::signal`] accepts (names as `kill -s` takes them).
const SIGNALS: [&str; 8] = ["TERM", "KILL", "INT", "HUP", "USR1", "USR2", "STOP", "CONT"];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One host of the lab: a namespace with `lo` and `eth0`.
#[derive(Clone, Debug)]
pub struct Host {
    /// Logical name given to [`Lab::add_host`], e.g. "a".
    pub name: String,
    /// Network namespace name.
    pub ns: String,
    /// The address given to [`Lab::add_host`] (without prefix length).
    pub addr: Ipv4Addr,
    /// MAC of the host's eth0, lower case `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The veth end on the bridge, in the bridge namespace.
    pub bridge_port: String,
}

struct Tracked {
    child: Child,
    /// Set once reaped; from then on the PID is never signalled again.
    status: Option<ExitStatus>,
    log: PathBuf,
    what: String,
}

/// A bridge namespace plus hosts. All methods take `&self`, so a `Lab` can be
/// shared with helper threads.
pub struct Lab {
    id: String,
    tag: String,
    bridge_ns: String,
    /// Namespaces created, in order; deleted in reverse on drop.
    namespaces: Mutex<Vec<String>>,
    hosts: Mutex<Vec<Host>>,
    /// Numbers bridge ports, so concurrent `add_host` calls never clash.
    next_port: AtomicU32,
    children: Mutex<Vec<Tracked>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a command, panicking only if it cannot be started at all.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("lab: cannot run `{program}`: {e} (is it installed?)"))
}

/// Runs `ip ARGS` and panics with its stderr if it fails.
fn ip_ok(args: &[&str]) -> Output {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "lab: `ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// The addresses on `eth0` of namespace `ns`, in one `ip` call.
pub(crate) fn read_addrs(ns: &str) -> Result<Vec<IpAddr>, String> {
    let out = run("ip", &["-n", ns, "-o", "addr", "show", "dev", "eth0"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(parse_addrs(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `ip -o addr show` output: the word after `inet`/`inet6` is ADDR/LEN.
pub fn parse_addrs(text: &str) -> Vec<IpAddr> {
    let mut addrs = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" || w == "inet6" {
                let addr = words.next().unwrap_or("");
                let addr = addr.split('/').next().unwrap_or("");
                if let Ok(ip) = addr.parse() {
                    addrs.push(ip);
                }
                break;
            }
        }
    }
    addrs
}

/// Polls `f` every 10 ms until it returns `Some`, or panics naming `what`
/// once `timeout` has passed.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= timeout {
            panic!("lab: timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// True if this process may build labs. If not (not root, or `ip netns`
/// unusable): panics when `$CI` is `true`, otherwise prints
/// `SKIPPED <test>: ...` to stderr and returns false, so the caller returns.
pub fn require_root() -> bool {
    let test = thread::current().name().unwrap_or("this test").to_string();
    let why = if effective_uid() != Some(0) {
        Some("not root".to_string())
    } else {
        match Command::new("ip")
            .args(["netns", "list"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "`ip netns list` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Some(format!("cannot run `ip`: {e}")),
        }
    };
    let Some(why) = why else { return true };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root and ip netns (CI must run it): {why}");
    }
    // Through io::stderr(), not eprintln!, which libtest would capture and
    // hide for a passing test: a skip must be visible.
    // One write, so lines of parallel tests do not interleave.
    let line = format!("SKIPPED {test}: needs root and ip netns ({why})\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Effective UID from /proc/self/status (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The ipfail binary under test.
///
/// Integration tests should prefer `env!("CARGO_BIN_EXE_ipfail")`, which
/// cargo sets (and builds) only for tests and benches. For examples this
/// returns `$IPFAIL_BIN` if set, else `ipfail` in the profile directory of the
/// running executable (`target/<profile>/{deps,examples}/x` ->
/// `target/<profile>/ipfail`); it never mixes profiles. Cargo does not build
/// the binary for `cargo run --example`, so run `cargo build --release` first.
pub fn ipfail_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("IPFAIL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("lab: cannot find the current executable: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if matches!(
        dir.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    ) {
        dir.pop();
    }
    let bin = dir.join("ipfail");
    assert!(
        bin.is_file(),
        "lab: {} not found; build it with the same profile first (e.g. `cargo build --release`) or set IPFAIL_BIN",
        bin.display()
    );
    bin
}

/// Namespace name prefix: `$IPFAIL_LAB_PREFIX` (sanitized) or `ipf`.
pub fn prefix() -> String {
    match std::env::var("IPFAIL_LAB_PREFIX") {
        Ok(p) if !sanitize(&p, 16).is_empty() => sanitize(&p, 16),
        _ => DEFAULT_PREFIX.to_string(),
    }
}

/// Deletes namespaces named `<prefix><pid hex>-<n>-...` whose creating
/// process no longer exists (a test killed before its `Lab` could drop).
/// Namespaces of live processes and other names are left alone.
pub fn sweep_stale(prefix: &str) {
    let out = run("ip", &["netns", "list"]);
    if !out.status.success() {
        return;
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Lines look like `name` or `name (id: 3)`.
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = stale_owner(prefix, name) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Another process may be sweeping too; failure is harmless.
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// The creator PID encoded in a lab namespace name, if `name` is one.
pub fn stale_owner(prefix: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, rest) = rest.split_once('-')?;
    let (counter, _) = rest.split_once('-')?;
    if pid.is_empty()
        || !pid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    if counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    u32::from_str_radix(pid, 16).ok()
}

impl Lab {
    /// Creates the bridge namespace with `br0` up. `tag` (e.g. the test
    /// name) only makes namespace names readable. Panics if `ip` fails.
    pub fn new(tag: &str) -> Lab {
        let prefix = prefix();
        sweep_stale(&prefix);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{prefix}{:x}-{n}", std::process::id());
        let tag = sanitize(tag, 24);
        let lab = Lab {
            bridge_ns: format!("{id}-{tag}-br"),
            id,
            tag,
            namespaces: Mutex::new(Vec::new()),
            hosts: Mutex::new(Vec::new()),
            next_port: AtomicU32::new(0),
            children: Mutex::new(Vec::new()),
        };
        // From here on a panic drops `lab`, which deletes what exists.
        lab.add_ns(&lab.bridge_ns);
        let br = lab.bridge_ns.as_str();
        // Snooping off: with no MLD/IGMP querier a snooping bridge may stop
        // flooding groups such as ff02::12; a dumb hub is what tests want.
        ip_ok(&[
            "-n",
            br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip_ok(&["-n", br, "link", "set", "br0", "up"]);
        lab
    }

    fn add_ns(&self, ns: &str) {
        ip_ok(&["netns", "add", ns]);
        lock(&self.namespaces).push(ns.to_string());
    }

    /// Adds a bare namespace `<id>-<tag>-<name>` with only `lo` up, not on
    /// the bridge, deleted with the Lab; for topologies of their own such
    /// as [`VethLab`]. Returns its name.
    pub fn add_bare_ns(&self, name: &str) -> String {
        let clean = sanitize(name, 32);
        assert!(
            !clean.is_empty() && clean == name && name != "br",
            "lab: namespace name {name:?} must be non-empty [A-Za-z0-9_-], at most 32 bytes, not \"br\""
        );
        let ns = format!("{}-{}-{name}", self.id, self.tag);
        self.add_ns(&ns);
        ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// `<prefix><pid>-<n>`: unique per Lab; all its namespaces start with it.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn bridge_ns(&self) -> &str {
        &self.bridge_ns
    }

    pub fn hosts(&self) -> Vec<Host> {
        lock(&self.hosts).clone()
    }

    /// Adds a host namespace joined to the bridge: `lo` up, `eth0` up with
    /// `addr` (e.g. "192.0.2.1/24"; without a length it is a /32).
    pub fn add_host(&self, name: &str, addr: &str) -> Host {
        let clean = sanitize(name, 32);
        assert!(
            !clean.is_empty() && clean == name,
            "lab: host name {name:?} must be non-empty [A-Za-z0-9_-], at most 32 bytes"
        );
        assert!(
            name != "br",
            "lab: host name \"br\" is the bridge namespace's"
        );
        let (ip, _) = lab_cidr_v4(addr);
        assert!(
            lock(&self.hosts).iter().all(|h| h.name != name),
            "lab: host {name:?} already exists"
        );
        let index = self.next_port.fetch_add(1, Ordering::Relaxed);
        let ns = format!("{}-{}-{name}", self.id, self.tag);
        // "p<index>-" alone makes it unique within this Lab's bridge namespace.
        let mut port = format!("p{index}-{name}");
        port.truncate(IFNAME_MAX);

        self.add_ns(&ns);
        let br = self.bridge_ns.as_str();
        ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        ip_ok(&[
            "-n", br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip_ok(&["-n", br, "link", "set", &port, "master", "br0", "up"]);
        ip_ok(&["-n", &ns, "addr", "add", addr, "dev", "eth0"]);
        ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
        let link = ip_ok(&["-n", &ns, "-o", "link", "show", "dev", "eth0"]);
        let link = String::from_utf8_lossy(&link.stdout).to_string();
        let mac = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("lab: no MAC in `ip link show` output: {link}"))
            .to_ascii_lowercase();

        let host = Host {
            name: name.to_string(),
            ns,
            addr: ip,
            mac,
            bridge_port: port,
        };
        lock(&self.hosts).push(host.clone());
        host
    }

    /// `ip route replace PREFIX dev eth0`: makes PREFIX (e.g. the floating
    /// IPs' 203.0.113.0/24) on-link, so the host can reach it without a
    /// gateway.
    pub fn route_onlink(&self, host: &Host, prefix: &str) {
        lab_cidr(prefix);
        ip_ok(&["-n", &host.ns, "route", "replace", prefix, "dev", "eth0"]);
    }

    /// Adds an address (v4 or v6, with optional length; default host
    /// length) to the host's eth0, e.g. to leave a floating IP behind as a
    /// crashed daemon would. IPv6 addresses get `nodad` so they are usable
    /// at once.
    pub fn add_addr(&self, host: &Host, cidr: &str) {
        let (ip, len) = lab_cidr(cidr);
        let full = format!("{ip}/{len}");
        let mut args = vec![
            "-n",
            host.ns.as_str(),
            "addr",
            "add",
            full.as_str(),
            "dev",
            "eth0",
        ];
        if ip.is_ipv6() {
            args.push("nodad");
        }
        ip_ok(&args);
    }

    /// Removes an address from the host's eth0 (panics if it is absent).
    pub fn del_addr(&self, host: &Host, cidr: &str) {
        let (ip, len) = lab_cidr(cidr);
        let full = format!("{ip}/{len}");
        ip_ok(&["-n", &host.ns, "addr", "del", &full, "dev", "eth0"]);
    }

    /// `ip netns exec NS ARGS...`; the caller checks the status.
    pub fn sh(&self, host: &Host, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", host.ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip -n NS ARGS...` (cheaper than `sh` for `ip` commands); the caller
    /// checks the status.
    pub fn ip(&self, host: &Host, args: &[&str]) -> Output {
        let mut all = vec!["-n", host.ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Sets `sysctl KEY=VALUE` inside the host's namespace (panics on
    /// failure), e.g. `net.ipv4.conf.eth0.arp_announce`.
    pub fn sysctl(&self, host: &Host, key: &str, value: &str) {
        let kv = format!("{key}={value}");
        let out = self.sh(host, &["sysctl", "-q", "-w", &kv]);
        assert!(
            out.status.success(),
            "lab: sysctl {kv} in {} failed: {}",
            host.ns,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Starts `program args...` inside the host's namespace with stdin
    /// closed and stdout+stderr appended to `log`. Returns its PID (`ip
    /// netns exec` execs the program, so this is the program's PID). The
    /// process is killed when the Lab drops.
    pub fn spawn(&self, host: &Host, program: &Path, args: &[&str], log: &Path) -> u32 {
        assert!(
            program.is_file(),
            "lab: program {} does not exist",
            program.display()
        );
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("lab: cannot open log {}: {e}", log.display()))
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(open())
            .stderr(open())
            .spawn()
            .unwrap_or_else(|e| panic!("lab: cannot spawn {}: {e}", program.display()));
        let pid = child.id();
        lock(&self.children).push(Tracked {
            child,
            status: None,
            log: log.to_path_buf(),
            what: format!("{} {} on {}", program.display(), args.join(" "), host.name),
        });
        pid
    }

    /// Runs `f` on the tracked child `pid`, reaping it if it has exited.
    /// Panics if this Lab did not spawn `pid`.
    fn with_child<R>(&self, pid: u32, f: impl FnOnce(&mut Tracked) -> R) -> R {
        let mut children = lock(&self.children);
        let t = children
            .iter_mut()
            .find(|t| t.child.id() == pid)
            .unwrap_or_else(|| panic!("lab: pid {pid} was not spawned by this lab"));
        if t.status.is_none() {
            t.status = t.child.try_wait().ok().flatten();
        }
        f(t)
    }

    /// Sends signal `sig` ("TERM", "KILL", "INT", "HUP", "USR1", "USR2",
    /// "STOP", "CONT") to a child this Lab spawned. Returns false, sending
    /// nothing, if it has already exited. Panics for other PIDs.
    pub fn signal(&self, pid: u32, sig: &str) -> bool {
        assert!(SIGNALS.contains(&sig), "lab: unsupported signal {sig:?}");
        // Holding the lock with the child unreaped guarantees the PID is
        // still ours while `kill` runs.
        self.with_child(pid, |t| {
            if t.status.is_some() {
                return false;
            }
            let out = run("kill", &["-s", sig, &pid.to_string()]);
            assert!(
                out.status.success(),
                "lab: kill -s {sig} {pid} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            true
        })
    }

    /// Exit status of a child this Lab spawned, if it has exited.
    pub fn exit_status(&self, pid: u32) -> Option<ExitStatus> {
        self.with_child(pid, |t| t.status)
    }

    /// Waits up to `timeout` for a child this Lab spawned to exit.
    pub fn wait_exit(&self, pid: u32, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.exit_status(pid) {
                return Some(s);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// Sets the host's bridge port down: its eth0 loses carrier, as if its
    /// cable were pulled.
    pub fn cut(&self, host: &Host) {
        ip_ok(&[
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &host.bridge_port,
            "down",
        ]);
    }

    /// Undoes [`Lab::cut`].
    pub fn restore(&self, host: &Host) {
        ip_ok(&[
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &host.bridge_port,
            "up",
        ]);
    }

    /// The addresses on the host's eth0 right now (v4 and v6, including
    /// link-local).
    pub fn addrs(&self, host: &Host) -> Vec<IpAddr> {
        read_addrs(&host.ns)
            .unwrap_or_else(|e| panic!("lab: cannot read addresses of {}: {e}", host.ns))
    }

    /// True if the host's eth0 holds `ip`.
    pub fn has_addr(&self, host: &Host, ip: &str) -> bool {
        self.addrs(host).contains(&lab_addr(ip))
    }

    /// One ICMP echo from the host to `target`; true if answered within
    /// `timeout` (iputils ping, which accepts fractional `-W`).
    pub fn ping(&self, host: &Host, target: &str, timeout: Duration) -> bool {
        let target = lab_addr(target).to_string();
        let wait = format!("{:.3}", timeout.as_secs_f64().max(0.01));
        let out = self.sh(host, &["ping", "-c1", "-n", "-q", "-W", &wait, &target]);
        out.status.success()
    }

    /// The MAC the host's neighbour table resolves `ip` to on eth0, if a
    /// usable entry exists (not INCOMPLETE/FAILED).
    pub fn neigh_mac(&self, host: &Host, ip: &str) -> Option<String> {
        let ip = lab_addr(ip).to_string();
        let out = self.ip(host, &["neigh", "show", "to", &ip, "dev", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next()?;
        if line.contains("FAILED") || line.contains("INCOMPLETE") {
            return None;
        }
        let mac = line
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)?;
        Some(mac.to_ascii_lowercase())
    }

    /// Polls `f` every 10 ms until it returns `Some`; panics naming `what`
    /// and `timeout` on expiry.
    pub fn wait_until<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        wait_until(what, timeout, f)
    }

    /// Starts sampling the hosts' addresses every 20 ms; see [`Sampler`]
    /// and [`longest_double_hold`].
    pub fn sampler(&self, hosts: &[&Host]) -> Sampler {
        Sampler::start(hosts, Duration::from_millis(20))
    }
}

/// Last `max` bytes of a log file (lossy UTF-8), for failure reports.
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::new();
    if len > max {
        use std::io::{Seek, SeekFrom};
        let _ = f.seek(SeekFrom::Start(len - max));
    }
    let _ = f.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

impl Drop for Lab {
    /// Kills (SIGKILL, then reap) every child still running, then deletes
    /// every namespace. Never panics: failures are printed.
    fn drop(&mut self) {
        let panicking = thread::panicking();
        let children = std::mem::take(&mut *lock(&self.children));
        let mut logs: Vec<(String, PathBuf)> = Vec::new();
        for mut t in children {
            if t.status.is_none() {
                if let Ok(None) = t.child.try_wait() {
                    // Unreaped, so the PID is still this child's.
                    let _ = t.child.kill();
                }
                let _ = t.child.wait();
            }
            if !logs.iter().any(|(_, l)| *l == t.log) {
                logs.push((t.what, t.log));
            }
        }
        // A failing test is easier to read with the daemons' last words.
        if panicking {
            for (what, log) in &logs {
                eprintln!(
                    "---- lab {}: tail of {} ({what}) ----\n{}",
                    self.id,
                    log.display(),
                    log_tail(log, 4000)
                );
            }
        }
        let namespaces = std::mem::take(&mut *lock(&self.namespaces));
        for ns in namespaces.iter().rev() {
            // No panic here: a panic during unwinding aborts the process.
            match Command::new("ip").args(["netns", "del", ns]).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "lab: cannot delete namespace {ns}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => eprintln!("lab: cannot run `ip netns del {ns}`: {e}"),
            }
        }
    }
}

/// A fresh scratch directory for one test's configs and logs
/// (`$TMPDIR/ipfail-<pid>-<test>`), emptied if it exists.
pub fn workdir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ipfail-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}
