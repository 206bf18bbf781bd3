//! One lab for one agent: dispatchers `a` (preferred) and `b` (standby),
//! a client `c`, the floating IPs, the sampler and the client's ping.
//! Dropping it stops the agents (keepalived gracefully, so that its VRRP
//! child goes too), then the lab kills what is left and deletes the
//! namespaces, also when a scenario panicked.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::agents::Agent;
use crate::client::Client;
use crate::lab::{self, Host, Lab};
use crate::sampler::{Round, Sampler};

/// A host index in the sampler's rounds.
pub const A: usize = 0;
pub const B: usize = 1;

pub type Res<T> = Result<T, String>;

pub struct Setup {
    // Fields drop in this order: sampler and client before the lab.
    pub sampler: Sampler,
    pub client: Option<Client>,
    pub lab: Lab,
    pub a: Host,
    pub b: Host,
    pub c: Host,
    pub dir: PathBuf,
    pub ips: Vec<String>,
    pub agent: Agent,
    /// The running agent's PID on a and b.
    pub pids: [Option<u32>; 2],
}

/// `n` floating IPs: 203.0.113.10.. for a few; for many, all of
/// 203.0.113.0/24 and 198.51.100.0/24 (1..254), then 192.0.2.3.. (the
/// hosts' own .1, .2, .100 skipped).
pub fn floating_ips(n: usize) -> Vec<String> {
    if n <= 200 {
        return (0..n).map(|i| format!("203.0.113.{}", 10 + i)).collect();
    }
    let nets = (1..=254).map(|i| format!("203.0.113.{i}"));
    let nets = nets.chain((1..=254).map(|i| format!("198.51.100.{i}")));
    let nets = nets.chain(
        (3..=254)
            .filter(|i| *i != 100)
            .map(|i| format!("192.0.2.{i}")),
    );
    let ips: Vec<String> = nets.take(n).collect();
    assert_eq!(
        ips.len(),
        n,
        "at most 759 floating IPs fit the documentation ranges"
    );
    ips
}

impl Setup {
    /// The lab, configured agents (not started) and the sampler.
    pub fn new(tag: &str, agent: Agent, n_ips: usize) -> Setup {
        let lab = Lab::new(tag);
        let a = lab.add_host("a", "192.0.2.1/24");
        let b = lab.add_host("b", "192.0.2.2/24");
        let c = lab.add_host("c", "192.0.2.100/24");
        lab.route_onlink(&c, "203.0.113.0/24");
        lab.route_onlink(&c, "198.51.100.0/24");
        let dir = lab::workdir(tag);
        let ips = floating_ips(n_ips);
        agent.configure(&dir, "a", true, &ips);
        agent.configure(&dir, "b", false, &ips);
        let v4: Vec<Ipv4Addr> = ips.iter().map(|i| i.parse().expect("own IPs")).collect();
        let sampler = Sampler::start(&[a.ns.clone(), b.ns.clone()], &v4);
        Setup {
            sampler,
            client: None,
            lab,
            a,
            b,
            c,
            dir,
            ips,
            agent,
            pids: [None, None],
        }
    }

    pub fn host(&self, i: usize) -> &Host {
        if i == A {
            &self.a
        } else {
            &self.b
        }
    }

    pub fn start(&mut self, i: usize) {
        let pid = self
            .agent
            .start(&self.lab, &self.dir, self.host(i), i == A, &self.ips);
        self.pids[i] = Some(pid);
    }

    /// Sends `sig` to the agent on host `i`; returns when it was sent.
    pub fn signal(&self, i: usize, sig: &str) -> Res<SystemTime> {
        let pid = self.pids[i].ok_or("no agent running")?;
        let t = SystemTime::now();
        if self.lab.signal(pid, sig) {
            Ok(t)
        } else {
            Err(format!("agent on {} had already exited", self.host(i).name))
        }
    }

    /// Waits for the agent on host `i` to exit after a signal.
    pub fn reap(&mut self, i: usize, timeout: Duration) -> Res<()> {
        let pid = self.pids[i].ok_or("no agent running")?;
        self.lab.wait_exit(pid, timeout).ok_or_else(|| {
            format!(
                "agent on {} still running after {timeout:?}",
                self.host(i).name
            )
        })?;
        self.pids[i] = None;
        Ok(())
    }

    /// Starts the client pinging the first floating IP.
    pub fn start_client(&mut self) {
        let ip = self.ips[0].parse().expect("own IPs");
        self.client = Some(Client::start(&self.c.ns, ip));
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("client started")
    }

    /// The first sampled round from `from` on where `f` holds, or an
    /// error naming `what` after `timeout`.
    pub fn wait(
        &self,
        what: &str,
        from: SystemTime,
        timeout: Duration,
        f: impl Fn(&Round) -> bool,
    ) -> Res<SystemTime> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(t) = self.sampler.first(from, &f) {
                return Ok(t);
            }
            if Instant::now() >= end {
                return Err(format!("{what}: not within {timeout:?}"));
            }
            std::thread::sleep(crate::sampler::PERIOD);
        }
    }

    /// Waits until `a` alone has held every IP for `stable` without a
    /// break (and the client is served, once started).
    pub fn settle(&self, stable: Duration, timeout: Duration) -> Res<SystemTime> {
        let end = Instant::now() + timeout;
        let mut since: Option<SystemTime> = None;
        loop {
            match self.sampler.latest() {
                Some(r) if r.alone(A) => {
                    let s = *since.get_or_insert(r.at);
                    if r.at.duration_since(s).unwrap_or_default() >= stable {
                        let served = self
                            .client
                            .as_ref()
                            .is_none_or(|c| c.served_after(s, Duration::from_millis(0)).is_some());
                        if served {
                            return Ok(r.at);
                        }
                    }
                }
                _ => since = None,
            }
            if Instant::now() >= end {
                return Err(format!(
                    "a did not hold the IPs alone for {stable:?} within {timeout:?}"
                ));
            }
            std::thread::sleep(crate::sampler::PERIOD);
        }
    }

    /// The end of a measuring window after the IPs moved at `moved`: the
    /// client's first reply after that (at most 5 s), plus 500 ms.
    pub fn close_window(&self, moved: SystemTime) -> SystemTime {
        let served = self
            .client()
            .served_after(moved, Duration::from_secs(5))
            .unwrap_or(moved);
        let end = served.max(moved) + Duration::from_millis(500);
        if let Ok(left) = end.duration_since(SystemTime::now()) {
            std::thread::sleep(left);
        }
        end
    }

    /// Runs `ipfail ARGS -c <host>.cfg` in host `i`'s namespace.
    pub fn ipfail(&self, i: usize, args: &[&str]) -> Res<()> {
        let cfg = self.dir.join(format!("{}.cfg", self.host(i).name));
        let bin = lab::ipfail_bin();
        let mut all: Vec<&str> = vec![bin.to_str().ok_or("ipfail path")?];
        all.extend_from_slice(args);
        let cfg = cfg.to_string_lossy().into_owned();
        all.extend_from_slice(&["-c", &cfg]);
        let out = self.lab.sh(self.host(i), &all);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ipfail {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if !matches!(self.agent, Agent::Keepalived { .. }) {
            return;
        }
        for i in [A, B] {
            let Some(pid) = self.pids[i] else { continue };
            // keepalived's parent stops its VRRP child on SIGTERM; a
            // SIGKILL (the lab's) would orphan the child.
            if self.lab.signal(pid, "TERM") {
                let _ = self.lab.wait_exit(pid, Duration::from_secs(5));
            }
            crate::keepalived::kill_orphan(&self.dir, self.host(i));
        }
    }
}
