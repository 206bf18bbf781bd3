//! Raw sockets for CARP adverts (IP protocol 112) on one interface: IPv4
//! ([`CarpSocket`], 224.0.0.18) and IPv6 ([`CarpSocket6`], ff02::12), as
//! FreeBSD advertises a vhid on each family it has addresses of
//! (`docs/design.md` §4.7).

use std::io::IoSliceMut;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::caps::CAP_NET_RAW;
use super::{bind_to_device, recv, register, send_to};
use crate::sys::SysError;

/// IP protocol number of CARP (shared with VRRP).
pub const IPPROTO_CARP: i32 = 112;
/// Multicast group CARP adverts are sent to.
pub const CARP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of CARP adverts (FreeBSD `carp_multicast_setup`).
pub const CARP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// TTL of sent adverts; receivers drop anything else (CARP, RFC 3768 §5.2.3
/// for VRRP), so a routed (forged) advert cannot reach us.
const CARP_TTL: u32 = 255;

/// One interface's CARP socket: sends adverts to 224.0.0.18 from `source`
/// and receives every protocol-112 datagram arriving on that interface.
pub struct CarpSocket {
    fd: AsyncFd<Socket>,
    group_dst: SockAddr,
}

impl CarpSocket {
    /// Opens the socket for `ifname` (index `ifindex`), sending from
    /// `source`. Must be called inside a tokio runtime.
    pub fn open_v4(ifname: &str, ifindex: u32, source: Ipv4Addr) -> Result<CarpSocket, SysError> {
        const OP: &str = "open the CARP socket (raw IP protocol 112)";
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_CARP)))
            .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
        bind_to_device(&sock, ifname, OP)?;
        let io = |op: &'static str| move |e| SysError::os(op, CAP_NET_RAW, e);
        // Without this a raw socket receives the groups joined by any socket
        // on any interface (field notes; ip(7) IP_MULTICAST_ALL).
        sock.set_multicast_all_v4(false)
            .map_err(io("CARP socket: IP_MULTICAST_ALL"))?;
        sock.join_multicast_v4_n(&CARP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENODEV) => SysError::NoSuchInterface(format!("with index {ifindex}")),
                _ => SysError::os("CARP socket: join 224.0.0.18", CAP_NET_RAW, e),
            })?;
        set_multicast_if(&sock, ifindex, source).map_err(io("CARP socket: IP_MULTICAST_IF"))?;
        sock.set_multicast_ttl_v4(CARP_TTL)
            .map_err(io("CARP socket: IP_MULTICAST_TTL"))?;
        sock.set_ttl_v4(CARP_TTL)
            .map_err(io("CARP socket: IP_TTL"))?;
        sock.set_multicast_loop_v4(false)
            .map_err(io("CARP socket: IP_MULTICAST_LOOP"))?;
        Ok(CarpSocket {
            fd: register(sock, OP)?,
            group_dst: SockAddr::from(SocketAddrV4::new(CARP_GROUP_V4, 0)),
        })
    }

    /// Sends one CARP message (header and HMAC, no IP header) to
    /// 224.0.0.18; the kernel adds the IPv4 header with TTL 255.
    pub async fn send(&self, carp_payload: &[u8]) -> Result<(), SysError> {
        send_whole(&self.fd, carp_payload, &self.group_dst, "send CARP advert").await
    }

    /// Receives one datagram: the whole IPv4 packet including its header
    /// (Linux raw socket behaviour), so the caller can check TTL and source.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize, SysError> {
        recv(&self.fd, buf)
            .await
            .map_err(|e| SysError::os("receive CARP advert", CAP_NET_RAW, e))
    }
}

/// One datagram from [`CarpSocket6::recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recv6 {
    /// Payload length (the CARP header; Linux strips the IPv6 header).
    pub len: usize,
    /// IPv6 source address.
    pub src: Ipv6Addr,
    /// Hop limit of the IPv6 header (`IPV6_RECVHOPLIMIT`); `None` if the
    /// kernel did not say, which the receive path rejects.
    pub hop_limit: Option<u8>,
}

/// One interface's IPv6 CARP socket: sends adverts to ff02::12 (the kernel
/// picks the source: the interface's link-local address, the only address
/// of link scope) and receives every protocol-112 datagram sent to ff02::12
/// on that interface, with its hop limit.
pub struct CarpSocket6 {
    fd: AsyncFd<Socket>,
    group_dst: SockAddr,
}

impl CarpSocket6 {
    /// Opens the socket for `ifname` (index `ifindex`). The caller checks
    /// that the interface has a link-local address to send from
    /// (`docs/design.md` §4.7). Must be called inside a tokio runtime.
    pub fn open_v6(ifname: &str, ifindex: u32) -> Result<CarpSocket6, SysError> {
        const OP: &str = "open the IPv6 CARP socket (raw IPv6, next header 112)";
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_CARP)))
            .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
        bind_to_device(&sock, ifname, OP)?;
        let io = |op: &'static str| move |e| SysError::os(op, CAP_NET_RAW, e);
        // As for IPv4: only groups joined on this socket's own interface.
        sock.set_multicast_all_v6(false)
            .map_err(io("IPv6 CARP socket: IPV6_MULTICAST_ALL"))?;
        sock.join_multicast_v6(&CARP_GROUP_V6, ifindex)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENODEV) => SysError::NoSuchInterface(format!("with index {ifindex}")),
                _ => SysError::os("IPv6 CARP socket: join ff02::12", CAP_NET_RAW, e),
            })?;
        sock.set_multicast_if_v6(ifindex)
            .map_err(io("IPv6 CARP socket: IPV6_MULTICAST_IF"))?;
        sock.set_multicast_hops_v6(CARP_TTL)
            .map_err(io("IPv6 CARP socket: IPV6_MULTICAST_HOPS"))?;
        sock.set_unicast_hops_v6(CARP_TTL)
            .map_err(io("IPv6 CARP socket: IPV6_UNICAST_HOPS"))?;
        sock.set_multicast_loop_v6(false)
            .map_err(io("IPv6 CARP socket: IPV6_MULTICAST_LOOP"))?;
        // The hop limit of each received datagram comes as ancillary data:
        // anything but 255 is dropped (RFC 3768 §7.1, FreeBSD `carp6_input`).
        sock.set_recv_hoplimit_v6(true)
            .map_err(io("IPv6 CARP socket: IPV6_RECVHOPLIMIT"))?;
        // IPV6_CHECKSUM stays at its default, off for raw sockets other
        // than ICMPv6 (raw(7), ipv6(7)): the CARP checksum covers the CARP
        // header only, no pseudo-header, and is computed by the codec.
        Ok(CarpSocket6 {
            fd: register(sock, OP)?,
            group_dst: SockAddr::from(SocketAddrV6::new(CARP_GROUP_V6, 0, 0, ifindex)),
        })
    }

    /// Sends one CARP message (header and HMAC) to ff02::12 with hop limit
    /// 255; the kernel adds the IPv6 header.
    pub async fn send(&self, carp_payload: &[u8]) -> Result<(), SysError> {
        send_whole(
            &self.fd,
            carp_payload,
            &self.group_dst,
            "send IPv6 CARP advert",
        )
        .await
    }

    /// Receives one datagram: the payload after the IPv6 header (Linux raw
    /// IPv6 sockets do not deliver the header), its source and hop limit.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Recv6, SysError> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| SysError::os("receive IPv6 CARP advert", CAP_NET_RAW, e))?;
            if let Ok(res) = guard.try_io(|inner| recv6(inner.as_raw_fd(), buf)) {
                return res.map_err(|e| SysError::os("receive IPv6 CARP advert", CAP_NET_RAW, e));
            }
        }
    }
}

fn recv6(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<Recv6> {
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(std::io::Error::from)?;
    let hop_limit = msg
        .cmsgs()
        .map_err(std::io::Error::from)?
        .find_map(|c| match c {
            ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
            _ => None,
        });
    let Some(src) = msg.address else {
        return Err(std::io::Error::other("datagram without a source address"));
    };
    Ok(Recv6 {
        len: msg.bytes,
        src: src.ip(),
        hop_limit,
    })
}

/// IP_MULTICAST_IF with `struct ip_mreqn`: interface by index, and the
/// source address of outgoing multicast (Linux uses `imr_address` as the
/// source of multicast sent on a raw socket, net/ipv4/raw.c raw_sendmsg).
/// socket2 only offers the address form.
fn set_multicast_if(sock: &Socket, ifindex: u32, source: Ipv4Addr) -> std::io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr {
            s_addr: u32::from(source).to_be(),
        },
        imr_ifindex: i32::try_from(ifindex)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::ENODEV))?,
    };
    // SAFETY: `mreqn` is a fully initialised ip_mreqn that outlives the call
    // and the length passed is its exact size; the fd is an open socket.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreqn as *const libc::ip_mreqn).cast(),
            mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends `carp_payload` to `dst` in one datagram; a short send is an error.
async fn send_whole(
    fd: &AsyncFd<Socket>,
    carp_payload: &[u8],
    dst: &SockAddr,
    op: &'static str,
) -> Result<(), SysError> {
    let sent = send_to(fd, carp_payload, dst)
        .await
        .map_err(|e| SysError::os(op, CAP_NET_RAW, e))?;
    if sent != carp_payload.len() {
        return Err(SysError::Io {
            op,
            source: std::io::Error::other(format!("sent {sent} of {} bytes", carp_payload.len())),
        });
    }
    Ok(())
}
