//! Background sampling of the addresses each host holds, and the
//! "exactly one holder" check over those samples.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{read_addrs, Host};

/// What one host's eth0 held at one instant.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the `ip` call that read the addresses returned (a read takes ~2 ms).
    pub at: Instant,
    /// Logical host name (`Host::name`).
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

/// A sampler never runs longer than this, even if nobody stops it.
const MAX_RUN: Duration = Duration::from_secs(30 * 60);

/// A thread reading the addresses of several hosts every `period` until
/// [`Sampler::stop`] (or drop). Hosts are read one after the other, so the
/// samples of one round carry slightly different instants.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    pub fn start(hosts: &[&Host], period: Duration) -> Sampler {
        let targets: Vec<(String, String)> = hosts
            .iter()
            .map(|h| (h.name.clone(), h.ns.clone()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("lab-sampler".into())
            .spawn(move || run(&targets, period, &flag))
            .unwrap_or_else(|e| panic!("lab: cannot start sampler thread: {e}"));
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops sampling and returns every sample taken, in time order.
    pub fn stop(mut self) -> Vec<Sample> {
        self.finish()
    }

    fn finish(&mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(samples)) => samples,
            Some(Err(_)) => panic!("lab: sampler thread panicked"),
            None => Vec::new(),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(targets: &[(String, String)], period: Duration, stop: &AtomicBool) -> Vec<Sample> {
    let deadline = Instant::now() + MAX_RUN;
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for (name, ns) in targets {
            // A namespace that is gone (lab dropped) simply yields no sample.
            if let Ok(addrs) = read_addrs(ns) {
                samples.push(Sample {
                    at: Instant::now(),
                    host: name.clone(),
                    addrs,
                });
            }
        }
        next += period;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now; // fell behind: do not burst to catch up
        }
    }
    samples
}

/// The longest contiguous time during which some IP was held by two or more
/// hosts at once, and that IP (`None` if no IP was ever doubly held).
///
/// Each host's holdings are taken to be those of its latest sample. A double
/// hold starts at the sample that first shows it and ends at the sample that
/// first no longer does (or at the last sample), so it may be overestimated by
/// up to one sampling period, never underestimated by more than that.
pub fn longest_double_hold(samples: &[Sample]) -> (Duration, Option<IpAddr>) {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at);

    let mut held: HashMap<&str, BTreeSet<IpAddr>> = HashMap::new();
    let mut since: HashMap<IpAddr, Instant> = HashMap::new();
    let mut best: (Duration, Option<IpAddr>) = (Duration::ZERO, None);
    let mut consider = |ip: IpAddr, len: Duration| {
        if best.1.is_none() || len > best.0 {
            best = (len, Some(ip));
        }
    };

    for s in &sorted {
        held.insert(s.host.as_str(), s.addrs.iter().copied().collect());
        let mut count: HashMap<IpAddr, usize> = HashMap::new();
        for ip in held.values().flatten() {
            *count.entry(*ip).or_default() += 1;
        }
        for (ip, n) in &count {
            if *n >= 2 {
                since.entry(*ip).or_insert(s.at);
            }
        }
        since.retain(|ip, start| {
            let still = count.get(ip).is_some_and(|n| *n >= 2);
            if !still {
                consider(*ip, s.at.saturating_duration_since(*start));
            }
            still
        });
    }
    if let Some(last) = sorted.last() {
        for (ip, start) in since {
            consider(ip, last.at.saturating_duration_since(start));
        }
    }
    best
}

/// Client outage as the samples show it: the total time during which at
/// least one of `ips` was held by no host, and the longest such stretch.
/// Like [`longest_double_hold`], accurate to about one sampling period.
pub fn no_holder(samples: &[Sample], ips: &[IpAddr]) -> (Duration, Duration) {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at);
    let mut held: HashMap<&str, BTreeSet<IpAddr>> = HashMap::new();
    let (mut total, mut longest) = (Duration::ZERO, Duration::ZERO);
    let mut since: Option<Instant> = None;
    for s in &sorted {
        held.insert(s.host.as_str(), s.addrs.iter().copied().collect());
        let missing = ips.iter().any(|ip| !held.values().any(|h| h.contains(ip)));
        match (missing, since) {
            (true, None) => since = Some(s.at),
            (false, Some(start)) => {
                let len = s.at.saturating_duration_since(start);
                total += len;
                longest = longest.max(len);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(start), Some(last)) = (since, sorted.last()) {
        let len = last.at.saturating_duration_since(start);
        total += len;
        longest = longest.max(len);
    }
    (total, longest)
}

/// The longest time in which no sampled host held `ip`, from the first
/// sample on (each host's holdings are those of its latest sample).
pub fn longest_gap(samples: &[Sample], ip: IpAddr) -> Duration {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at);
    let mut held: HashMap<&str, bool> = HashMap::new();
    let mut gap_start: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    for s in sorted {
        held.insert(s.host.as_str(), s.addrs.contains(&ip));
        let anyone = held.values().any(|h| *h);
        match (anyone, gap_start) {
            (false, None) => gap_start = Some(s.at),
            (true, Some(start)) => {
                longest = longest.max(s.at - start);
                gap_start = None;
            }
            _ => {}
        }
    }
    longest
}
