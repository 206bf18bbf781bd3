//! Raw IPv4 socket for CARP adverts (IP protocol 112) on one interface.

use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::caps::CAP_NET_RAW;
use super::{bind_to_device, recv, register, send_to};
use crate::sys::SysError;

/// IP protocol number of CARP (shared with VRRP).
pub const IPPROTO_CARP: i32 = 112;
/// Multicast group CARP adverts are sent to.
pub const CARP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

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
        const OP: &str = "send CARP advert";
        let sent = send_to(&self.fd, carp_payload, &self.group_dst)
            .await
            .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
        if sent != carp_payload.len() {
            return Err(SysError::Io {
                op: OP,
                source: std::io::Error::other(format!(
                    "sent {sent} of {} bytes",
                    carp_payload.len()
                )),
            });
        }
        Ok(())
    }

    /// Receives one datagram: the whole IPv4 packet including its header
    /// (Linux raw socket behaviour), so the caller can check TTL and source.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize, SysError> {
        recv(&self.fd, buf)
            .await
            .map_err(|e| SysError::os("receive CARP advert", CAP_NET_RAW, e))
    }
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
