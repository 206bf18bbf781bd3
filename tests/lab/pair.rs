//! Two `ipfail daemon` hosts and a client on one lab bridge: the
//! harness most end-to-end tests start from.
//!
//! Hosts: a = 192.0.2.1 (advskew 0, preferred), b = 192.0.2.2 (advskew
//! 100), client c = 192.0.2.100 with an on-link route to 203.0.113.0/24.
//! The group `web` (vhid 10, pass `secret`) floats [`PAIR_IPS`]. Everything
//! of [`Daemons`] (configs, `ipfail` commands, status) is reachable through
//! the pair.

use std::net::IpAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::daemons::{write_config, Daemons, Group, TIMING};
use super::Host;

pub const PAIR_IPS: [&str; 3] = ["203.0.113.10", "203.0.113.11", "203.0.113.12"];

pub struct Pair {
    daemons: Daemons,
    pub a: Host,
    pub b: Host,
    pub c: Host,
}

impl Deref for Pair {
    type Target = Daemons;

    fn deref(&self) -> &Daemons {
        &self.daemons
    }
}

/// The pair's group `web` with `advskew`; `extra` lines go before `ips`.
pub fn web(advskew: u8, extra: &str) -> Group<'_> {
    Group {
        name: "web",
        vhid: 10,
        advskew: Some(advskew),
        pass: "secret",
        extra,
        ips: &PAIR_IPS,
    }
}

/// A daemon config for `host` in `dir`: [`TIMING`] and [`web`].
pub fn pair_config(dir: &Path, host: &str, advskew: u8, extra: &str) -> PathBuf {
    PathBuf::from(write_config(dir, host, TIMING, &[web(advskew, extra)]))
}

impl Pair {
    /// `bin`: the ipfail binary (`env!("CARGO_BIN_EXE_ipfail")` in tests).
    pub fn new(test: &str, bin: &Path) -> Pair {
        let daemons = Daemons::new(test, bin);
        let a = daemons.host("a", "192.0.2.1/24");
        let b = daemons.host("b", "192.0.2.2/24");
        let c = daemons.host("c", "192.0.2.100/24");
        daemons.lab.route_onlink(&c, "203.0.113.0/24");
        pair_config(&daemons.dir, "a", 0, "");
        pair_config(&daemons.dir, "b", 100, "");
        Pair { daemons, a, b, c }
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

    /// Waits until `host` holds every IP and `other` none; returns when.
    pub fn wait_holder(&self, host: &Host, other: &Host, timeout: Duration) -> Instant {
        self.lab.wait_until(
            &format!("{} holds all IPs and {} none", host.name, other.name),
            timeout,
            || (self.holds_all(host) && self.held(other).is_empty()).then(Instant::now),
        )
    }
}
