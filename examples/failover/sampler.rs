//! Who holds each floating IP, every 10 ms: a thread that dumps the IPv4
//! addresses of every host over rtnetlink sockets opened inside the
//! hosts' namespaces (no process per sample, so 10 ms holds on 2 cores).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// The sampling period.
pub const PERIOD: Duration = Duration::from_millis(10);
/// A sampler never runs longer than this.
const MAX_RUN: Duration = Duration::from_secs(20 * 60);

/// One sampling round: for each host (in the order given to
/// [`Sampler::start`]), which of the watched IPs it held.
#[derive(Clone, Debug)]
pub struct Round {
    pub at: SystemTime,
    pub held: Vec<Vec<bool>>,
}

impl Round {
    pub fn holds_all(&self, host: usize) -> bool {
        self.held[host].iter().all(|h| *h)
    }
    pub fn holds_none(&self, host: usize) -> bool {
        !self.held[host].iter().any(|h| *h)
    }
    /// `host` holds every IP and every other host none.
    pub fn alone(&self, host: usize) -> bool {
        self.holds_all(host) && (0..self.held.len()).all(|h| h == host || self.holds_none(h))
    }
    /// Some IP is held by two hosts or more.
    pub fn double(&self) -> bool {
        let n = self.held.first().map_or(0, Vec::len);
        (0..n).any(|i| self.held.iter().filter(|h| h[i]).count() >= 2)
    }
}

pub struct Sampler {
    rounds: Arc<Mutex<Vec<Round>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Samples the namespaces `ns` (one per host) for `ips` every [`PERIOD`].
    pub fn start(ns: &[String], ips: &[Ipv4Addr]) -> Sampler {
        let index: HashMap<Ipv4Addr, usize> =
            ips.iter().enumerate().map(|(i, ip)| (*ip, i)).collect();
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, ns) = (Arc::clone(&rounds), Arc::clone(&stop), ns.to_vec());
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                // This thread enters each namespace to open its socket; the
                // sockets stay in their namespaces.
                let socks: io::Result<Vec<OwnedFd>> = ns.iter().map(|n| open_in(n)).collect();
                match socks {
                    Ok(socks) => {
                        let _ = tx.send(Ok(()));
                        run(&socks, &index, &r, &s);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .expect("start the sampler thread");
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("sampler: cannot open netlink sockets: {e}"),
            Err(_) => panic!("sampler thread died"),
        }
        Sampler {
            rounds,
            stop,
            handle: Some(handle),
        }
    }

    pub fn latest(&self) -> Option<Round> {
        self.lock().last().cloned()
    }

    /// The rounds taken from `from` to `to`.
    pub fn window(&self, from: SystemTime, to: SystemTime) -> Vec<Round> {
        self.lock()
            .iter()
            .filter(|r| r.at >= from && r.at <= to)
            .cloned()
            .collect()
    }

    /// The first round from `from` on where `f` holds.
    pub fn first(&self, from: SystemTime, f: impl Fn(&Round) -> bool) -> Option<SystemTime> {
        self.lock()
            .iter()
            .find(|r| r.at >= from && f(r))
            .map(|r| r.at)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Round>> {
        self.rounds.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Time during which `f` held, summing the intervals that start at a
/// round where it does (accurate to one period).
pub fn time_where(rounds: &[Round], f: impl Fn(&Round) -> bool) -> Duration {
    rounds
        .windows(2)
        .filter(|w| f(&w[0]))
        .map(|w| w[1].at.duration_since(w[0].at).unwrap_or_default())
        .sum()
}

/// The time the rounds span.
pub fn span(rounds: &[Round]) -> Duration {
    match (rounds.first(), rounds.last()) {
        (Some(a), Some(z)) => z.at.duration_since(a.at).unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

fn run(
    socks: &[OwnedFd],
    index: &HashMap<Ipv4Addr, usize>,
    out: &Mutex<Vec<Round>>,
    stop: &AtomicBool,
) {
    let end = Instant::now() + MAX_RUN;
    let mut next = Instant::now();
    let mut seq = 1u32;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let mut held = Vec::with_capacity(socks.len());
        for s in socks {
            seq = seq.wrapping_add(1);
            let mut v = vec![false; index.len()];
            // A namespace that is gone yields an empty host.
            if let Ok(addrs) = dump_v4(s, seq) {
                for a in addrs {
                    if let Some(i) = index.get(&a) {
                        v[*i] = true;
                    }
                }
            }
            held.push(v);
        }
        let round = Round {
            at: SystemTime::now(),
            held,
        };
        out.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(round);
        next += PERIOD;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// Moves the calling thread into network namespace `ns` (`ip netns` name).
pub fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns only changes this thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A NETLINK_ROUTE socket created inside namespace `ns`.
fn open_in(ns: &str) -> io::Result<OwnedFd> {
    enter(ns)?;
    // SAFETY: plain socket(2) call; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: valid pointer and length of a timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    Ok(fd)
}

/// RTM_GETADDR dump of the IPv4 addresses (IFA_LOCAL) of the namespace.
fn dump_v4(fd: &OwnedFd, seq: u32) -> io::Result<Vec<Ipv4Addr>> {
    let mut req = [0u8; 24];
    req[0..4].copy_from_slice(&24u32.to_ne_bytes());
    req[4..6].copy_from_slice(&libc::RTM_GETADDR.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    req[16] = libc::AF_INET as u8;
    // SAFETY: req is a valid buffer of its length.
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addrs = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: buf is a valid writable buffer of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut msg = &buf[..n as usize];
        while msg.len() >= 16 {
            let len = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize;
            let kind = u16::from_ne_bytes([msg[4], msg[5]]);
            let mseq = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
            if len < 16 || len > msg.len() {
                break;
            }
            if mseq == seq {
                match i32::from(kind) {
                    libc::NLMSG_DONE => return Ok(addrs),
                    libc::NLMSG_ERROR => return Err(io::Error::other("netlink error")),
                    k if k == i32::from(libc::RTM_NEWADDR) => {
                        if let Some(a) = ifa_local(&msg[16..len]) {
                            addrs.push(a);
                        }
                    }
                    _ => {}
                }
            }
            msg = msg.get((len + 3) & !3..).unwrap_or(&[]);
        }
    }
}

/// IFA_LOCAL (else IFA_ADDRESS) of one ifaddrmsg payload.
fn ifa_local(p: &[u8]) -> Option<Ipv4Addr> {
    let mut attrs = p.get(8..)?;
    let mut address = None;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        if len == 8 {
            let ip = Ipv4Addr::new(attrs[4], attrs[5], attrs[6], attrs[7]);
            match kind {
                libc::IFA_LOCAL => return Some(ip),
                libc::IFA_ADDRESS => address = Some(ip),
                _ => {}
            }
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    address
}
