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
        const OP: &str = "send IPv6 CARP advert";
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::linux::lab::{enter, Lab};
    use std::time::Duration;
    use tokio::time::timeout;

    /// A CARP-like payload (content does not matter to this layer).
    const PAYLOAD: [u8; 36] = [
        0x21, 0x01, 0x00, 0x07, 0x00, 0x01, 0x9c, 0x90, 1, 2, 3, 4, 5, 6, 7, 8, 0x26, 0x07, 0xd3,
        0x55, 0x74, 0xe9, 0xab, 0xf3, 0x6e, 0x30, 0x26, 0x7e, 0xf6, 0xef, 0x7e, 0xdc, 0x0e, 0x58,
        0xff, 0x44,
    ];

    /// Sends adverts until `rx` receives one (the link may still be coming
    /// up); gives up after 5 s.
    async fn send_until_heard(tx: &CarpSocket, rx: &CarpSocket, buf: &mut [u8]) -> usize {
        for _ in 0..25 {
            tx.send(&PAYLOAD).await.unwrap();
            if let Ok(got) = timeout(Duration::from_millis(200), rx.recv(buf)).await {
                return got.unwrap();
            }
        }
        panic!("no advert received within 5 s");
    }

    #[test]
    fn advert_crosses_the_link_with_ttl_255() {
        let Some(lab) = Lab::new() else { return };
        let (a, b) = (lab.a.clone(), lab.b.clone());
        lab.run(move || async move {
            enter(&b);
            let nl_b = crate::sys::Netlink::new().unwrap();
            let vb = nl_b.link("vb").await.unwrap();
            let rx = CarpSocket::open_v4("vb", vb.index, Ipv4Addr::new(192, 0, 2, 2)).unwrap();
            enter(&a);
            let nl_a = crate::sys::Netlink::new().unwrap();
            let va = nl_a.link("va").await.unwrap();
            let tx = CarpSocket::open_v4("va", va.index, Ipv4Addr::new(192, 0, 2, 1)).unwrap();

            // The sender does not hear itself (IP_MULTICAST_LOOP 0); the peer does.
            let mut buf = [0u8; 1500];
            let got = send_until_heard(&tx, &rx, &mut buf).await;
            let pkt = &buf[..got];
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            assert_eq!(pkt[0] >> 4, 4);
            assert_eq!(pkt[8], 255, "TTL");
            assert_eq!(pkt[9], 112, "protocol");
            assert_eq!(&pkt[12..16], &[192, 0, 2, 1], "source");
            assert_eq!(&pkt[16..20], &[224, 0, 0, 18], "destination");
            assert_eq!(&pkt[ihl..], &PAYLOAD);
            assert!(
                timeout(Duration::from_millis(300), tx.recv(&mut buf))
                    .await
                    .is_err(),
                "sender received its own advert"
            );
        });
    }

    /// The IPv6 socket: ff02::12 from the link-local address, hop limit
    /// 255 reported to the receiver, no loopback to the sender.
    #[test]
    fn ipv6_advert_crosses_the_link_from_link_local_with_hop_limit_255() {
        let Some(lab) = Lab::new() else { return };
        let (a, b) = (lab.a.clone(), lab.b.clone());
        lab.run(move || async move {
            enter(&b);
            let nl_b = crate::sys::Netlink::new().unwrap();
            let vb = nl_b.link("vb").await.unwrap();
            let rx = CarpSocket6::open_v6("vb", vb.index).unwrap();
            enter(&a);
            let nl_a = crate::sys::Netlink::new().unwrap();
            let va = nl_a.link("va").await.unwrap();
            let tx = CarpSocket6::open_v6("va", va.index).unwrap();
            let mut buf = [0u8; 1500];
            // The link-local address may still be tentative (DAD) at first.
            let mut heard = None;
            for _ in 0..50 {
                tx.send(&PAYLOAD).await.unwrap();
                if let Ok(got) = timeout(Duration::from_millis(200), rx.recv(&mut buf)).await {
                    let got = got.unwrap();
                    if got.src.segments()[0] == 0xfe80 {
                        heard = Some(got);
                        break;
                    }
                    // Until DAD ends the kernel picks the global address.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            let got = heard.expect("no advert from a link-local source within 10 s");
            assert_eq!(got.hop_limit, Some(255));
            assert_eq!(&buf[..got.len], &PAYLOAD);
            assert!(
                timeout(Duration::from_millis(300), tx.recv(&mut buf))
                    .await
                    .is_err(),
                "sender received its own IPv6 advert"
            );
        });
    }

    /// IP_MULTICAST_ALL=0 and SO_BINDTODEVICE: a socket on vb must not see
    /// adverts that arrive on vb2, although another socket joined the group
    /// there.
    #[test]
    fn no_adverts_from_other_interfaces() {
        let Some(lab) = Lab::new() else { return };
        let (a, b) = (lab.a.clone(), lab.b.clone());
        lab.run(move || async move {
            enter(&b);
            let nl_b = crate::sys::Netlink::new().unwrap();
            let vb = nl_b.link("vb").await.unwrap();
            let vb2 = nl_b.link("vb2").await.unwrap();
            let on_vb = CarpSocket::open_v4("vb", vb.index, Ipv4Addr::new(192, 0, 2, 2)).unwrap();
            let on_vb2 =
                CarpSocket::open_v4("vb2", vb2.index, Ipv4Addr::new(203, 0, 113, 194)).unwrap();
            enter(&a);
            let nl_a = crate::sys::Netlink::new().unwrap();
            let va2 = nl_a.link("va2").await.unwrap();
            let tx =
                CarpSocket::open_v4("va2", va2.index, Ipv4Addr::new(203, 0, 113, 193)).unwrap();

            let mut buf = [0u8; 1500];
            let got = send_until_heard(&tx, &on_vb2, &mut buf).await;
            assert_eq!(&buf[12..16], &[203, 0, 113, 193]);
            assert!(got > 20);
            tx.send(&PAYLOAD).await.unwrap();
            assert!(
                timeout(Duration::from_millis(500), on_vb.recv(&mut buf))
                    .await
                    .is_err(),
                "socket on vb received an advert that arrived on vb2"
            );
        });
    }

    #[test]
    fn unknown_interface_is_reported() {
        let Some(lab) = Lab::new() else { return };
        lab.run(move || async move {
            match CarpSocket::open_v4("nosuch0", 999, Ipv4Addr::new(192, 0, 2, 1)) {
                Err(SysError::NoSuchInterface(n)) => assert_eq!(n, "nosuch0"),
                Err(e) => panic!("expected NoSuchInterface, got {e}"),
                Ok(_) => panic!("opened a socket on a missing interface"),
            }
        });
    }
}
