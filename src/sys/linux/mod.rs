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
pub mod sd;

pub use crate::sys::SysError;
pub use arp::{ArpSocket, ArpView};
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
