//! Linux back end: rtnetlink for links and addresses, raw sockets for CARP
//! (IP protocol 112), ARP (AF_PACKET), ICMP echo and IPv6 neighbor
//! solicitation probes. Every socket is nonblocking and driven by the tokio
//! reactor through `AsyncFd`.

pub mod arp;
pub mod caps;
pub mod carp_socket;
pub mod events;
pub mod icmp;
pub mod ndp;
pub mod netlink;

pub use crate::sys::SysError;
pub use arp::ArpSocket;
pub use caps::{missing_capabilities, CAP_NET_ADMIN, CAP_NET_RAW};
pub use carp_socket::{CarpSocket, CarpSocket6, Recv6, CARP_GROUP_V4, CARP_GROUP_V6, IPPROTO_CARP};
pub use events::{NetEvent, NetEvents, NetListener};
pub use icmp::{announce_v6, ping6_many, ping_many};
pub use ndp::ns_probe;
pub use netlink::{AddrChange, AddrInfo, Lifetime, LinkInfo, Netlink, ADDR_PROTO_IPFAIL};

use std::io::{self, Read};
use std::os::fd::AsRawFd;

use nix::sys::socket::SockaddrStorage;
use socket2::{SockAddr, Socket};
use tokio::io::unix::AsyncFd;

/// Linux interface names are at most IFNAMSIZ - 1 = 15 bytes.
const IFNAMSIZ: usize = 16;

/// Whether `name` can be a Linux interface name at all (net/core/dev.c
/// `dev_valid_name`): checked up front so a typo gets "no interface", not
/// a kernel EINVAL.
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// SO_BINDTODEVICE: the socket only sends and receives on `ifname`.
pub(crate) fn bind_to_device(
    sock: &Socket,
    ifname: &str,
    op: &'static str,
) -> Result<(), SysError> {
    if !valid_ifname(ifname) {
        return Err(SysError::NoSuchInterface(ifname.to_string()));
    }
    sock.bind_device(Some(ifname.as_bytes()))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV) => SysError::NoSuchInterface(ifname.to_string()),
            _ => SysError::os(op, CAP_NET_RAW, e),
        })
}

/// Makes `sock` nonblocking and registers it with the current tokio runtime.
/// (AsyncFd panics outside a runtime; this returns an error instead.)
pub(crate) fn register(sock: Socket, op: &'static str) -> Result<AsyncFd<Socket>, SysError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SysError::Io {
            op,
            source: io::Error::other("not running inside a tokio runtime"),
        });
    }
    sock.set_nonblocking(true)
        .map_err(|source| SysError::Io { op, source })?;
    // SAFETY: socket2::Socket owns its fd and closes it only when dropped;
    // as_raw_fd always returns that same fd, which stays open for as long as
    // the AsyncFd owns the Socket.
    unsafe { AsyncFd::register(sock) }.map_err(|e| SysError::Io {
        op,
        source: e.into(),
    })
}

/// Sends one datagram to `addr`, waiting while the send buffer is full.
pub(crate) async fn send_to(
    fd: &AsyncFd<Socket>,
    buf: &[u8],
    addr: &SockAddr,
) -> io::Result<usize> {
    loop {
        let mut guard = fd.writable().await?;
        if let Ok(res) = guard.try_io(|inner| inner.get_ref().send_to(buf, addr)) {
            return res;
        }
    }
}

/// Sends one frame on a socket that is bound to its destination.
pub(crate) async fn send(fd: &AsyncFd<Socket>, buf: &[u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.writable().await?;
        if let Ok(res) = guard.try_io(|inner| inner.get_ref().send(buf)) {
            return res;
        }
    }
}

/// Receives one datagram (truncated to `buf`).
pub(crate) async fn recv(fd: &AsyncFd<Socket>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        if let Ok(res) = guard.try_io(|inner| {
            let mut sock: &Socket = inner.get_ref();
            sock.read(buf)
        }) {
            return res;
        }
    }
}

/// Receives one datagram and the address it came from.
pub(crate) async fn recv_from(
    fd: &AsyncFd<Socket>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<std::net::IpAddr>)> {
    loop {
        let mut guard = fd.readable().await?;
        if let Ok(res) = guard.try_io(|inner| {
            nix::sys::socket::recvfrom::<SockaddrStorage>(inner.as_raw_fd(), buf)
                .map_err(io::Error::from)
        }) {
            return res.map(|(n, from)| (n, from.and_then(|a| storage_ip(&a))));
        }
    }
}

fn storage_ip(addr: &SockaddrStorage) -> Option<std::net::IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(v4.ip().into());
    }
    addr.as_sockaddr_in6().map(|v6| v6.ip().into())
}

/// Throws away whatever is queued on the socket (frames that arrived before
/// the caller started listening for answers).
pub(crate) fn drain(fd: &AsyncFd<Socket>) {
    let mut buf = [0u8; 2048];
    let mut sock: &Socket = fd.get_ref();
    // Bounded so a flood cannot keep us here forever.
    for _ in 0..100_000 {
        if sock.read(&mut buf).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_ifname;

    #[test]
    fn interface_names_are_checked_like_the_kernel() {
        assert!(valid_ifname("eth0"));
        assert!(valid_ifname("igb1.100"));
        assert!(valid_ifname("abcdefghijklmno")); // 15 bytes
        assert!(!valid_ifname("abcdefghijklmnop")); // 16 bytes
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("eth0/x"));
        assert!(!valid_ifname("eth 0"));
        assert!(!valid_ifname(".."));
    }
}

/// A two-namespace lab for the tests in this back end: namespaces A and B
/// joined by veth pair va/vb (192.0.2.1/24, 192.0.2.2/24, 2001:db8::1/64,
/// 2001:db8::2/64) and a second pair va2/vb2 (203.0.113.193/27,
/// 203.0.113.194/27). 198.51.100.0/24 has no route anywhere. Removed again on drop, also when a test panics.
#[cfg(test)]
pub(crate) mod lab {
    use std::future::Future;
    use std::os::fd::AsRawFd;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    pub(crate) struct Lab {
        pub a: String,
        pub b: String,
        created: Vec<String>,
    }

    /// Namespace tests need root. On CI (CI=true) a missing root is a
    /// failure; elsewhere the test is skipped with a note.
    pub(crate) fn have_root() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("namespace test needs root, and CI=true");
        }
        println!("skipped: needs root");
        false
    }

    static NEXT: AtomicU32 = AtomicU32::new(0);

    impl Lab {
        /// Builds the lab, or returns None when the test has to be skipped.
        pub(crate) fn new() -> Option<Lab> {
            if !have_root() {
                return None;
            }
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let suffix = format!("{}x{}", std::process::id(), n);
            let mut lab = Lab {
                a: format!("ipfhsysA{suffix}"),
                b: format!("ipfhsysB{suffix}"),
                created: Vec::new(),
            };
            for ns in [lab.a.clone(), lab.b.clone()] {
                run(&["netns", "add", &ns]);
                lab.created.push(ns.clone());
                lab.ip(&ns, &["link", "set", "lo", "up"]);
            }
            let (a, b) = (lab.a.clone(), lab.b.clone());
            for (x, y, xa, ya) in [
                ("va", "vb", "192.0.2.1/24", "192.0.2.2/24"),
                ("va2", "vb2", "203.0.113.193/27", "203.0.113.194/27"),
            ] {
                lab.ip(
                    &a,
                    &[
                        "link", "add", x, "type", "veth", "peer", "name", y, "netns", &b,
                    ],
                );
                lab.ip(&a, &["addr", "add", xa, "dev", x]);
                lab.ip(&b, &["addr", "add", ya, "dev", y]);
                lab.ip(&a, &["link", "set", x, "up"]);
                lab.ip(&b, &["link", "set", y, "up"]);
            }
            lab.ip(&a, &["addr", "add", "2001:db8::1/64", "dev", "va", "nodad"]);
            lab.ip(&b, &["addr", "add", "2001:db8::2/64", "dev", "vb", "nodad"]);
            Some(lab)
        }

        /// `ip -n NS ARGS...`; panics with ip's stderr when it fails.
        pub(crate) fn ip(&self, ns: &str, args: &[&str]) -> String {
            let mut full = vec!["-n", ns];
            full.extend_from_slice(args);
            run(&full)
        }

        /// MAC address of `dev` in `ns`, from `ip link show`.
        pub(crate) fn mac(&self, ns: &str, dev: &str) -> [u8; 6] {
            let out = self.ip(ns, &["link", "show", "dev", dev]);
            let text = out
                .split("link/ether ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no MAC in: {out}"));
            parse_mac(text)
        }

        /// Runs `test` on its own thread with a current_thread runtime (as
        /// the daemon does). The thread starts in namespace A; `enter`
        /// switches it, and sockets keep the namespace they were made in.
        pub(crate) fn run<F, Fut>(&self, test: F)
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
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for ns in &self.created {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }

    /// Moves the calling thread into network namespace `ns`.
    pub(crate) fn enter(ns: &str) {
        let file = std::fs::File::open(format!("/run/netns/{ns}"))
            .unwrap_or_else(|e| panic!("open /run/netns/{ns}: {e}"));
        // SAFETY: setns(2) only changes the network namespace of this thread;
        // the fd is valid for the duration of the call.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
    }

    pub(crate) fn run(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A probe that found not every target waits out its timeout, and not
    /// much longer.
    pub(crate) fn assert_waited_timeout(took: Duration, timeout: Duration) {
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(1),
            "{took:?}"
        );
    }

    /// `ip neigh` spelling of a MAC: `lladdr 02:00:...`.
    pub(crate) fn lladdr(mac: [u8; 6]) -> String {
        let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
        format!("lladdr {}", hex.join(":"))
    }

    /// Seeds a stale neighbour entry for `ip` on vb in `ns` pointing at a
    /// MAC nobody has, so a test can watch an announcement replace it.
    pub(crate) fn seed_stale_neigh(lab: &Lab, ns: &str, ip: &str) {
        lab.ip(
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

    pub(crate) fn parse_mac(text: &str) -> [u8; 6] {
        let mut mac = [0u8; 6];
        let parts: Vec<&str> = text.trim().split(':').collect();
        assert_eq!(parts.len(), 6, "bad MAC {text}");
        for (byte, part) in mac.iter_mut().zip(parts) {
            *byte = u8::from_str_radix(part, 16).expect("hex MAC");
        }
        mac
    }

    /// Polls `cond` until it holds or `limit` passes; returns whether it held.
    pub(crate) async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
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
}
