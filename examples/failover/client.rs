//! The client: an ICMP echo to one floating IP every 10 ms from its own
//! namespace (a raw socket opened there by a thread of this process),
//! for the whole life of a lab. Every echo's send and reply times are
//! kept, so outages are measured on the echoes actually sent, whatever
//! the scheduler did to the cadence.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// The echo interval.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// A reply later than this counts as lost.
const LATE: Duration = Duration::from_millis(500);
const MAX_RUN: Duration = Duration::from_secs(20 * 60);

#[derive(Clone, Copy)]
struct Echo {
    sent: SystemTime,
    reply: Option<SystemTime>,
}

pub struct Client {
    echoes: Arc<Mutex<Vec<Echo>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Client {
    /// Starts echoing `ip` from namespace `ns` every 10 ms.
    pub fn start(ns: &str, ip: Ipv4Addr) -> Client {
        let echoes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s, ns) = (Arc::clone(&echoes), Arc::clone(&stop), ns.to_string());
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = thread::Builder::new()
            .name("client".into())
            .spawn(
                move || match crate::sampler::enter(&ns).and_then(|()| open()) {
                    Ok(fd) => {
                        let _ = tx.send(Ok(()));
                        run(&fd, ip, &e, &s);
                    }
                    Err(err) => {
                        let _ = tx.send(Err(err));
                    }
                },
            )
            .expect("start the client thread");
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("client: cannot open an ICMP socket: {e}"),
            Err(_) => panic!("client thread died"),
        }
        Client {
            echoes,
            stop,
            handle: Some(handle),
        }
    }

    fn echoes(&self) -> Vec<Echo> {
        self.echoes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (at most `timeout`) for an echo sent after `after` to be
    /// answered; returns when the reply came.
    pub fn served_after(&self, after: SystemTime, timeout: Duration) -> Option<SystemTime> {
        let end = Instant::now() + timeout;
        loop {
            let first = self
                .echoes()
                .iter()
                .filter(|e| e.sent > after)
                .find_map(|e| e.reply);
            if first.is_some() || Instant::now() >= end {
                return first;
            }
            thread::sleep(INTERVAL);
        }
    }

    /// Client outage in `[from, to]`: summed over every run of unanswered
    /// echoes sent in the window, from the first lost echo's sending to
    /// the next answered one's (or `to`). One lost echo is about 10 ms;
    /// nothing lost is 0.
    pub fn outage(&self, from: SystemTime, to: SystemTime) -> Duration {
        let echoes: Vec<Echo> = self
            .echoes()
            .into_iter()
            .filter(|e| e.sent >= from && e.sent <= to)
            .collect();
        let answered = |e: &Echo| {
            e.reply
                .is_some_and(|r| r.duration_since(e.sent).unwrap_or_default() <= LATE)
        };
        let mut lost = Duration::ZERO;
        let mut since: Option<SystemTime> = None;
        for e in &echoes {
            match (answered(e), since) {
                (false, None) => since = Some(e.sent),
                (true, Some(s)) => {
                    lost += e.sent.duration_since(s).unwrap_or_default();
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(s) = since {
            lost += to.duration_since(s).unwrap_or_default();
        }
        lost
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn run(fd: &OwnedFd, ip: Ipv4Addr, out: &Mutex<Vec<Echo>>, stop: &AtomicBool) {
    let id = (std::process::id() & 0xffff) as u16;
    let end = Instant::now() + MAX_RUN;
    let mut next = Instant::now();
    let mut seq: u16 = 0;
    let base = out.lock().unwrap_or_else(PoisonError::into_inner).len();
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        if Instant::now() >= next {
            send(fd, ip, id, seq);
            out.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Echo {
                    sent: SystemTime::now(),
                    reply: None,
                });
            seq = seq.wrapping_add(1);
            next += INTERVAL;
            if next < Instant::now() {
                next = Instant::now() + INTERVAL;
            }
        }
        // Replies until the next send is due.
        let wait = next.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(10) as i32) };
        if n > 0 {
            while let Some(rseq) = recv(fd, ip, id) {
                let now = SystemTime::now();
                let mut echoes = out.lock().unwrap_or_else(PoisonError::into_inner);
                // seq wraps at 65536 echoes (11 minutes): index from the end.
                let count = echoes.len() - base;
                let sent_seq = seq.wrapping_sub(1);
                let back = usize::from(sent_seq.wrapping_sub(rseq));
                if back < count {
                    let i = echoes.len() - 1 - back;
                    echoes[i].reply.get_or_insert(now);
                }
            }
        }
    }
}

fn send(fd: &OwnedFd, ip: Ipv4Addr, id: u16, seq: u16) {
    let mut pkt = [0u8; 16];
    pkt[0] = 8; // echo request
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    let sum = checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: valid buffer and sockaddr_in. An error (no route, no ARP
    // answer) is an unanswered echo, which is what we measure.
    unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
}

/// The sequence number of one echo reply from `ip` to us, if one is queued.
fn recv(fd: &OwnedFd, ip: Ipv4Addr, id: u16) -> Option<u16> {
    let mut buf = [0u8; 1500];
    loop {
        // SAFETY: valid writable buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return None;
        }
        let p = &buf[..n as usize];
        let hl = usize::from(p.first()? & 0x0f) * 4;
        let icmp = p.get(hl..hl + 8)?;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        if icmp[0] == 0 && src == ip && u16::from_be_bytes([icmp[4], icmp[5]]) == id {
            return Some(u16::from_be_bytes([icmp[6], icmp[7]]));
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
