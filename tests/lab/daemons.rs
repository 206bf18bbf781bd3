//! `ipfail` daemons on lab hosts, driven the way an operator drives them:
//! config files, `ipfail` commands inside the host's namespace, the
//! control socket and its status document (docs/design.md §8.4, §8.5).
//!
//! Per name (usually the host's), everything lives in the test's work
//! directory: `<name>.cfg`, `<name>.log`, the control socket
//! `<name>/ipfail.sock` (the directory also holds the group lock files) and
//! the state directory `<name>-state`.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use ipfail::control::schema::{GroupStatus, Status};

use super::{workdir, Host, Lab};

/// `[ipfail]` timing of most tests: fast probes, re-probes and GARPs.
pub const TIMING: &str = "probe_timeout = 0.2\nreprobe_interval = 0.3\ngarp_interval = 0.2\n";

/// One group section of a daemon config, on eth0.
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    pub name: &'a str,
    pub vhid: u8,
    /// None: no `advskew` line (the default, 0).
    pub advskew: Option<u8>,
    pub pass: &'a str,
    /// Lines put in just before `ips`, each ending in `\n`.
    pub extra: &'a str,
    /// One per line.
    pub ips: &'a [&'a str],
}

impl Group<'_> {
    fn section(&self) -> String {
        let mut text = format!("[{}]\ninterface = eth0\nvhid = {}\n", self.name, self.vhid);
        if let Some(skew) = self.advskew {
            text.push_str(&format!("advskew = {skew}\n"));
        }
        text.push_str(&format!(
            "pass = {}\n{}ips : {}\n",
            self.pass,
            self.extra,
            self.ips.join("\n      ")
        ));
        text
    }
}

/// The control socket of the daemon configured as `name` in `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("ipfail.sock")
}

/// The state directory of the daemon configured as `name` in `dir`.
pub fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-state"))
}

/// Writes `<dir>/<name>.cfg`: `[ipfail]` with [`socket_path`],
/// [`state_path`] and the `global` lines (e.g. [`TIMING`]), then `groups`,
/// each after a blank line. Returns its path.
pub fn write_config(dir: &Path, name: &str, global: &str, groups: &[Group]) -> String {
    let mut text = format!(
        "[ipfail]\ncontrol_socket = {}\nstate_dir = {}\n{global}",
        socket_path(dir, name).display(),
        state_path(dir, name).display(),
    );
    for g in groups {
        text.push('\n');
        text.push_str(&g.section());
    }
    let path = dir.join(format!("{name}.cfg"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// The 1-based number of the last line of the file at `path` containing
/// `needle` (0 if none), for checking `file:line` in error messages.
pub fn line_of(path: &str, needle: &str) -> usize {
    read(Path::new(path))
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(0)
}

/// The file's text, or "" if it cannot be read (a log not written yet).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// stdout then stderr of a command, lossily decoded.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The strings of `ips`, sorted.
pub fn sorted(ips: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// (ip, state) of each address of a group, in status order.
pub fn ip_states(g: &GroupStatus) -> Vec<(String, String)> {
    g.ips
        .iter()
        .map(|i| (i.ip.clone(), i.state.clone()))
        .collect()
}

/// The group has addresses and every one is in `state`.
pub fn all_in(g: &GroupStatus, state: &str) -> bool {
    !g.ips.is_empty() && g.ips.iter().all(|i| i.state == state)
}

/// Sends `data` on a fresh connection to the control socket `sock` and
/// returns the reply line, if any.
pub fn exchange(sock: &Path, data: &[u8]) -> Option<String> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(7))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(7))).ok()?;
    // The daemon may answer and close before reading it all: ignore EPIPE.
    let _ = s.write_all(data);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).ok()?;
    Some(line)
}

/// The result of one `ipfail` run.
pub struct Run {
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

impl Run {
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }

    pub fn says(&self, text: &str) -> &Run {
        assert!(
            self.out.contains(text) || self.err.contains(text),
            "expected {text:?} in the output:\n{self}"
        );
        self
    }

    pub fn never_says(&self, text: &str) -> &Run {
        assert!(
            !self.out.contains(text) && !self.err.contains(text),
            "did not expect {text:?} in the output:\n{self}"
        );
        self
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A lab plus a work directory for daemon configs and logs.
pub struct Daemons {
    pub lab: Lab,
    pub dir: PathBuf,
    bin: PathBuf,
}

impl Daemons {
    /// `bin`: the ipfail binary (`env!("CARGO_BIN_EXE_ipfail")` in tests).
    pub fn new(test: &str, bin: &Path) -> Daemons {
        Daemons {
            lab: Lab::new(test),
            dir: workdir(test),
            bin: bin.to_path_buf(),
        }
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn host(&self, name: &str, addr: &str) -> Host {
        self.lab.add_host(name, addr)
    }

    /// `<dir>/<host>.cfg`.
    pub fn cfg(&self, host: &Host) -> String {
        self.dir
            .join(format!("{}.cfg", host.name))
            .to_string_lossy()
            .into_owned()
    }

    pub fn socket(&self, host: &Host) -> PathBuf {
        socket_path(&self.dir, &host.name)
    }

    pub fn state_dir(&self, host: &Host) -> PathBuf {
        state_path(&self.dir, &host.name)
    }

    /// Writes the host's config (see [`write_config`]).
    pub fn write(&self, host: &Host, global: &str, groups: &[Group]) -> String {
        write_config(&self.dir, &host.name, global, groups)
    }

    /// Starts the daemon on `host` with its config; its log is
    /// `<dir>/<host>.log`.
    pub fn start(&self, host: &Host) -> u32 {
        let log = self.dir.join(format!("{}.log", host.name));
        let cfg = self.cfg(host);
        self.lab
            .spawn(host, &self.bin, &["daemon", "-c", &cfg], &log)
    }

    /// [`Daemons::start`], then waits (10 s at most) until the control
    /// socket answers `status`, so a test never races the start.
    pub fn start_ready(&self, host: &Host) -> u32 {
        let pid = self.start(host);
        self.lab.wait_until(
            &format!("{} answers status", host.name),
            Duration::from_secs(10),
            || self.try_status(host),
        );
        pid
    }

    pub fn log(&self, host: &Host) -> String {
        read(&self.dir.join(format!("{}.log", host.name)))
    }

    /// `ipfail ARGS -c CFG` inside the host's namespace, with the host's config.
    pub fn ipfail(&self, host: &Host, args: &[&str]) -> Output {
        self.ipfail_cfg(host, &self.cfg(host), args)
    }

    /// `ipfail ARGS -c CFG` inside the host's namespace.
    pub fn ipfail_cfg(&self, host: &Host, cfg: &str, args: &[&str]) -> Output {
        let b = self.bin.to_string_lossy().into_owned();
        let mut all: Vec<&str> = vec![b.as_str()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-c", cfg]);
        self.lab.sh(host, &all)
    }

    /// `ipfail hook -c CFG ARGS...` inside the host's namespace.
    pub fn hook(&self, host: &Host, cfg: &str, args: &[&str]) -> Run {
        let b = self.bin.to_string_lossy().into_owned();
        let mut all = vec![b.as_str(), "hook", "-c", cfg];
        all.extend_from_slice(args);
        self.lab.sh(host, &all).into()
    }

    /// `ipfail status --json`, if it succeeds and parses.
    pub fn try_status(&self, host: &Host) -> Option<Status> {
        let out = self.ipfail(host, &["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `ipfail status --json`; panics unless it succeeds and parses.
    pub fn status(&self, host: &Host) -> Status {
        let out = self.ipfail(host, &["status", "--json"]);
        assert!(
            out.status.success(),
            "status on {} failed: {}{}",
            host.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not a status document: {e}"))
    }

    /// Group `name` of the host's status; panics if absent.
    pub fn group(&self, host: &Host, name: &str) -> GroupStatus {
        self.status(host)
            .groups
            .into_iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no group {name} in the status of {}", host.name))
    }

    /// Waits until `cond` holds for the host's group `name`; returns it.
    pub fn wait_group(
        &self,
        host: &Host,
        name: &str,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&GroupStatus) -> bool,
    ) -> GroupStatus {
        self.lab
            .wait_until(&format!("{}: {name} {what}", host.name), timeout, || {
                let s = self.try_status(host)?;
                s.groups.into_iter().find(|g| g.name == name && cond(g))
            })
    }

    /// The host holds every one of `ips`.
    pub fn holds(&self, host: &Host, ips: &[&str]) -> bool {
        let addrs = self.lab.addrs(host);
        ips.iter()
            .all(|ip| addrs.contains(&ip.parse::<IpAddr>().expect("literal")))
    }

    /// The host holds none of `ips`.
    pub fn holds_none(&self, host: &Host, ips: &[&str]) -> bool {
        let addrs = self.lab.addrs(host);
        !ips.iter()
            .any(|ip| addrs.contains(&ip.parse::<IpAddr>().expect("literal")))
    }

    /// Waits until `host` holds all of `ips` and `other` none; returns when.
    pub fn wait_holds(
        &self,
        host: &Host,
        other: &Host,
        ips: &[&str],
        timeout: Duration,
    ) -> Instant {
        self.lab.wait_until(
            &format!("{} holds {ips:?} and {} none", host.name, other.name),
            timeout,
            || (self.holds(host, ips) && self.holds_none(other, ips)).then(Instant::now),
        )
    }

    /// The 203.0.113.0/24 addresses on the host's eth0, sorted.
    pub fn floating(&self, host: &Host) -> Vec<String> {
        let mut ips: Vec<String> = self
            .lab
            .addrs(host)
            .into_iter()
            .filter(|ip| matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [203, 0, 113]))
            .map(|ip| ip.to_string())
            .collect();
        ips.sort();
        ips
    }
}
