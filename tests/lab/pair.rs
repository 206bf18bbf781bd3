//! Two `ipfail daemon` hosts and a client on one lab bridge: the
//! harness most end-to-end tests start from.
//!
//! Hosts: a = 192.0.2.1 (advskew 0, preferred), b = 192.0.2.2 (advskew
//! 100), client c = 192.0.2.100 with an on-link route to 203.0.113.0/24.
//! The group `web` (vhid 10, pass `secret`) floats [`PAIR_IPS`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use super::{ipfail_bin, workdir, Host, Lab};

pub const PAIR_IPS: [&str; 3] = ["203.0.113.10", "203.0.113.11", "203.0.113.12"];

pub struct Pair {
    pub lab: Lab,
    pub a: Host,
    pub b: Host,
    pub c: Host,
    pub dir: PathBuf,
    bin: PathBuf,
}

/// A daemon config for `host` in `dir`; `extra` lines go into `[web]`.
pub fn pair_config(dir: &Path, host: &str, advskew: u8, extra: &str) -> PathBuf {
    let path = dir.join(format!("{host}.cfg"));
    let text = format!(
        "[ipfail]\n\
         control_socket = {sock}\n\
         state_dir = {state}\n\
         probe_timeout = 0.2\n\
         reprobe_interval = 0.3\n\
         garp_interval = 0.2\n\
         \n\
         [web]\n\
         interface = eth0\n\
         vhid = 10\n\
         advskew = {advskew}\n\
         pass = secret\n\
         {extra}\
         ips : {ips}\n",
        sock = dir.join(host).join("ipfail.sock").display(),
        state = dir.join(format!("{host}-state")).display(),
        ips = PAIR_IPS.join("\n      "),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

impl Pair {
    /// `bin`: the ipfail binary (`env!("CARGO_BIN_EXE_ipfail")` in tests).
    pub fn new(test: &str, bin: &Path) -> Pair {
        let lab = Lab::new(test);
        let a = lab.add_host("a", "192.0.2.1/24");
        let b = lab.add_host("b", "192.0.2.2/24");
        let c = lab.add_host("c", "192.0.2.100/24");
        lab.route_onlink(&c, "203.0.113.0/24");
        let dir = workdir(test);
        pair_config(&dir, "a", 0, "");
        pair_config(&dir, "b", 100, "");
        Pair {
            lab,
            a,
            b,
            c,
            dir,
            bin: bin.to_path_buf(),
        }
    }

    pub fn new_default(test: &str) -> Pair {
        Pair::new(test, &ipfail_bin())
    }

    pub fn cfg(&self, host: &Host) -> String {
        self.dir
            .join(format!("{}.cfg", host.name))
            .to_string_lossy()
            .into_owned()
    }

    /// Starts the daemon on `host`; its log is `<dir>/<host>.log`.
    pub fn start(&self, host: &Host) -> u32 {
        let log = self.dir.join(format!("{}.log", host.name));
        let cfg = self.cfg(host);
        self.lab
            .spawn(host, &self.bin, &["daemon", "-c", &cfg], &log)
    }

    /// `ipfail ARGS -c CFG` inside the host's namespace.
    pub fn ipfail(&self, host: &Host, args: &[&str]) -> Output {
        let cfg = self.cfg(host);
        let b = self.bin.to_string_lossy().into_owned();
        let mut all: Vec<&str> = vec![b.as_str()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-c", &cfg]);
        self.lab.sh(host, &all)
    }

    /// The pair's IPs that `host` holds now.
    pub fn held(&self, host: &Host) -> Vec<&'static str> {
        let addrs = self.lab.addrs(host);
        PAIR_IPS
            .iter()
            .copied()
            .filter(|ip| addrs.contains(&ip.parse::<IpAddr>().expect("literal")))
            .collect()
    }

    pub fn holds_all(&self, host: &Host) -> bool {
        self.held(host).len() == PAIR_IPS.len()
    }

    pub fn log(&self, host: &Host) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", host.name))).unwrap_or_default()
    }

    /// Waits until `host` holds every IP and `other` none; returns when.
    pub fn wait_holder(&self, host: &Host, other: &Host, timeout: Duration) -> Instant {
        self.lab.wait_until(
            &format!("{} holds all IPs and {} none", host.name, other.name),
            timeout,
            || (self.holds_all(host) && self.held(other).is_empty()).then(Instant::now),
        )
    }
}
