//! IPv6 counterpart of the RFC 5227 ARP probe: a Duplicate-Address-
//! Detection-style Neighbor Solicitation (RFC 4862 §5.4.2) for addresses
//! we are about to take. Every node holding the target answers it with a
//! Neighbor Advertisement to all nodes, also one that ignores echo requests.
//!
//! The solicitation must have source address :: (so no host learns a
//! neighbor entry from it), which a raw ICMPv6 socket cannot send: the
//! kernel picks a source address for it. It is therefore sent as a whole
//! IPv6 packet through an AF_PACKET socket (send only, it receives
//! nothing), like the ARP probe; such frames are not looped back to this
//! host. Answers are read from a raw ICMPv6 socket bound to the interface.

use std::collections::{HashMap, HashSet};
use std::io::{self, IoSliceMut};
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::time::{timeout_at, Instant};

use super::caps::CAP_NET_RAW;
use super::{bind_to_device, register, send_to};
use crate::sys::SysError;

/// IPv6 header (40) + Neighbor Solicitation without options (24).
const NS_PACKET_LEN: usize = 64;
const IPV6_HEADER_LEN: usize = 40;
/// Type, code, checksum, reserved/flags, target address (RFC 4861 §4.3/§4.4).
const ND_MSG_LEN: usize = 24;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// RFC 4861 §7.1.1/§7.1.2: ND messages are sent and accepted with 255 only.
const ND_HOP_LIMIT: u8 = 255;
/// Target Link-Layer Address option (RFC 4861 §4.6.1).
const OPT_TARGET_LLADDR: u8 = 2;
/// `ICMP6_FILTER` socket option (linux/icmpv6.h); not exported by libc.
const ICMP6_FILTER: libc::c_int = 1;
const RCVBUF: usize = 1 << 20;

/// Sends a DAD-style Neighbor Solicitation for every target on interface
/// `ifname` (index `ifindex`), again after `timeout / 3` for targets still
/// silent, and collects Neighbor Advertisements until `timeout`. Returns
/// target -> the answering host's MAC (from the Target Link-Layer Address
/// option; all zero when the answer carries none). Returns early when every
/// target has answered. Failing to send is an error, never "nobody
/// answered".
pub async fn ns_probe(
    ifname: &str,
    ifindex: u32,
    targets: &[Ipv6Addr],
    timeout: Duration,
) -> Result<HashMap<Ipv6Addr, [u8; 6]>, SysError> {
    let mut found = HashMap::new();
    let wanted: HashSet<Ipv6Addr> = targets.iter().copied().collect();
    if wanted.is_empty() {
        return Ok(found);
    }
    // Listen first, so no answer to the first solicitation is missed.
    let rx = open_listener(ifname)?;
    let tx = open_sender()?;

    let start = Instant::now();
    let deadline = start + timeout;
    let mut resend_at = Some(start + timeout / 3);
    send_solicitations(&tx, ifindex, wanted.iter(), deadline).await?;

    let mut buf = [0u8; 2048];
    while found.len() < wanted.len() {
        let wake = resend_at.unwrap_or(deadline).min(deadline);
        match timeout_at(wake, recv_with_hop_limit(&rx, &mut buf)).await {
            Ok(Ok((n, hop_limit))) => {
                // RFC 4861 §7.1.2: a hop limit below 255 means the message
                // was routed, i.e. did not come from this link.
                if hop_limit != Some(i32::from(ND_HOP_LIMIT)) {
                    continue;
                }
                let Some((target, mac)) = buf.get(..n).and_then(parse_na) else {
                    continue;
                };
                if wanted.contains(&target) {
                    found.entry(target).or_insert(mac.unwrap_or([0; 6]));
                }
            }
            Ok(Err(e)) => {
                return Err(SysError::os(
                    "receive neighbor advertisement",
                    CAP_NET_RAW,
                    e,
                ))
            }
            Err(_elapsed) if resend_at.is_some() && Instant::now() < deadline => {
                resend_at = None;
                let silent: Vec<&Ipv6Addr> = wanted
                    .iter()
                    .filter(|ip| !found.contains_key(*ip))
                    .collect();
                send_solicitations(&tx, ifindex, silent.into_iter(), deadline).await?;
            }
            Err(_elapsed) => break,
        }
    }
    Ok(found)
}

/// Raw ICMPv6 socket on `ifname` that passes only Neighbor Advertisements
/// and reports each one's hop limit.
fn open_listener(ifname: &str) -> Result<AsyncFd<Socket>, SysError> {
    const OP: &str = "open the neighbor discovery socket (raw ICMPv6)";
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
    bind_to_device(&sock, ifname, OP)?;
    setsockopt(&sock, sockopt::Ipv6RecvHopLimit, &true)
        .map_err(|e| SysError::os(OP, CAP_NET_RAW, e.into()))?;
    // Only a load reduction (everything else is parsed and ignored anyway).
    if let Err(e) = only_neighbor_adverts(&sock) {
        tracing::debug!("neighbor discovery socket: ICMP6_FILTER: {e}");
    }
    if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
        if let Err(e) = sock.set_recv_buffer_size(RCVBUF) {
            tracing::debug!("neighbor discovery socket: SO_RCVBUF: {e}");
        }
    }
    register(sock, OP)
}

/// ICMP6_FILTER (RFC 3542 §3.2): on Linux a set bit blocks that type.
fn only_neighbor_adverts(sock: &Socket) -> io::Result<()> {
    let mut filter = [u32::MAX; 8];
    let t = usize::from(Icmpv6Types::NeighborAdvert.0);
    filter[t >> 5] &= !(1u32 << (t & 31));
    // SAFETY: `filter` is a live [u32; 8], the layout of struct
    // icmp6_filter, and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// AF_PACKET datagram socket for sending whole IPv6 packets; protocol 0,
/// so it is never handed any received frame.
fn open_sender() -> Result<AsyncFd<Socket>, SysError> {
    const OP: &str = "open the neighbor solicitation socket (AF_PACKET)";
    let sock = Socket::new(Domain::PACKET, Type::DGRAM, None)
        .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
    register(sock, OP)
}

/// Receives one ICMPv6 message and the hop limit it arrived with.
async fn recv_with_hop_limit(
    fd: &AsyncFd<Socket>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<i32>)> {
    loop {
        let mut guard = fd.readable().await?;
        let res = guard.try_io(|inner| {
            let mut iov = [IoSliceMut::new(&mut *buf)];
            let mut cmsg = nix::cmsg_space!(libc::c_int);
            let msg = recvmsg::<SockaddrStorage>(
                inner.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let hop_limit = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::Ipv6HopLimit(h) => Some(h),
                    _ => None,
                })
            });
            Ok((msg.bytes, hop_limit))
        });
        if let Ok(res) = res {
            return res;
        }
    }
}

/// Sends one solicitation per target. Solicitations that could not all be
/// sent by `deadline` make the probe fail.
async fn send_solicitations(
    fd: &AsyncFd<Socket>,
    ifindex: u32,
    targets: impl Iterator<Item = &Ipv6Addr>,
    deadline: Instant,
) -> Result<(), SysError> {
    const OP: &str = "send neighbor solicitation";
    let index = i32::try_from(ifindex)
        .map_err(|_| SysError::NoSuchInterface(format!("with index {ifindex}")))?;
    let all = async {
        for target in targets {
            let group = solicited_node(*target);
            let dst = packet_addr(index, multicast_mac(group));
            send_to(fd, &ns_packet(*target), &dst)
                .await
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENODEV | libc::ENXIO) => {
                        SysError::NoSuchInterface(format!("with index {ifindex}"))
                    }
                    _ => SysError::os(OP, CAP_NET_RAW, e),
                })?;
        }
        Ok(())
    };
    timeout_at(deadline, all).await.map_err(|_| SysError::Io {
        op: OP,
        source: io::Error::new(
            io::ErrorKind::TimedOut,
            "the interface did not accept the solicitations in time",
        ),
    })?
}

/// `struct sockaddr_ll` addressing an IPv6 frame to `mac` on `ifindex`.
fn packet_addr(ifindex: i32, mac: [u8; 6]) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is a sockaddr type of this platform and fits in
    // sockaddr_storage (view_as asserts the size); all-zero is a valid value.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as libc::sa_family_t;
    ll.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
    ll.sll_ifindex = ifindex;
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&mac);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as socket2::socklen_t;
    // SAFETY: the first `len` bytes hold the initialised sockaddr_ll.
    unsafe { SockAddr::new(storage, len) }
}

/// Solicited-node multicast address of `ip`: ff02::1:ff00:0/104 plus the
/// low 24 bits of `ip` (RFC 4291 §2.7.1).
fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Ethernet address of an IPv6 multicast group: 33:33 and the low 32 bits
/// (RFC 2464 §7).
fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The IPv6 packet of a DAD Neighbor Solicitation for `target` (RFC 4862
/// §5.4.2, RFC 4861 §4.3): source ::, destination the target's
/// solicited-node group, hop limit 255, and no Source Link-Layer Address
/// option (forbidden with source ::, RFC 4861 §7.1.1).
fn ns_packet(target: Ipv6Addr) -> [u8; NS_PACKET_LEN] {
    let dst = solicited_node(target);
    let mut pkt = [0u8; NS_PACKET_LEN];
    pkt[0] = 0x60; // version 6, traffic class and flow label 0
    pkt[4..6].copy_from_slice(&(ND_MSG_LEN as u16).to_be_bytes());
    pkt[6] = NEXT_HEADER_ICMPV6;
    pkt[7] = ND_HOP_LIMIT;
    // Source (bytes 8..24) stays ::.
    pkt[24..40].copy_from_slice(&dst.octets());
    let msg = &mut pkt[IPV6_HEADER_LEN..];
    msg[0] = Icmpv6Types::NeighborSolicit.0;
    msg[8..24].copy_from_slice(&target.octets());
    // RFC 4443 §2.3: over the pseudo-header (source, destination, length,
    // next header) and the message, with the checksum field zero.
    let sum = Icmpv6Packet::new(msg)
        .map(|p| icmpv6::checksum(&p, &Ipv6Addr::UNSPECIFIED, &dst))
        .unwrap_or(0);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    pkt
}

/// Parses an ICMPv6 message (no IP header; the kernel has checked the
/// checksum) holding a Neighbor Advertisement: (target, MAC from the
/// Target Link-Layer Address option if any). None for anything else or a
/// malformed advertisement (RFC 4861 §7.1.2).
fn parse_na(msg: &[u8]) -> Option<(Ipv6Addr, Option<[u8; 6]>)> {
    if msg.len() < ND_MSG_LEN
        || msg.first() != Some(&Icmpv6Types::NeighborAdvert.0)
        || msg.get(1) != Some(&0)
    {
        return None;
    }
    let target: [u8; 16] = msg.get(8..24)?.try_into().ok()?;
    let target = Ipv6Addr::from(target);
    if target.is_multicast() {
        return None;
    }
    let mut mac = None;
    let mut opts = msg.get(ND_MSG_LEN..)?;
    while !opts.is_empty() {
        let kind = *opts.first()?;
        // Length in units of 8 bytes; 0 makes the whole message invalid.
        let len = usize::from(*opts.get(1)?) * 8;
        if len == 0 {
            return None;
        }
        let opt = opts.get(..len)?;
        if kind == OPT_TARGET_LLADDR && len == 8 {
            mac = opt.get(2..8).and_then(|m| m.try_into().ok());
        }
        opts = opts.get(len..)?;
    }
    Some((target, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc1071(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for chunk in data.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn solicited_node_address_and_mac() {
        let ip: Ipv6Addr = "2001:db8::1:2345:6789".parse().unwrap();
        let group = solicited_node(ip);
        assert_eq!(group, "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap());
        assert_eq!(multicast_mac(group), [0x33, 0x33, 0xff, 0x45, 0x67, 0x89]);
    }

    #[test]
    fn ns_packet_bytes_and_checksum() {
        let target: Ipv6Addr = "2001:db8::1:2345:6789".parse().unwrap();
        let pkt = ns_packet(target);
        let group: [u8; 16] = "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap().octets();
        let t = target.octets();
        // IPv6 header: version 6, payload 24, next header 58, hop limit 255,
        // source ::, destination the solicited-node group.
        assert_eq!(&pkt[..8], &[0x60, 0, 0, 0, 0, 24, 58, 255]);
        assert_eq!(&pkt[8..24], &[0u8; 16]);
        assert_eq!(&pkt[24..40], &group);
        // ICMPv6: type 135, code 0, checksum, reserved zero, target, no options.
        assert_eq!(&pkt[40..42], &[135, 0]);
        assert_eq!(&pkt[44..48], &[0, 0, 0, 0]);
        assert_eq!(&pkt[48..64], &t);
        // The checksum, checked independently: the sum over pseudo-header
        // and message is zero.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&[0u8; 16]);
        pseudo.extend_from_slice(&group);
        pseudo.extend_from_slice(&[0, 0, 0, 24, 0, 0, 0, 58]);
        pseudo.extend_from_slice(&pkt[40..]);
        assert_eq!(rfc1071(&pseudo), 0);
        assert_ne!(&pkt[42..44], &[0, 0]);
    }

    #[test]
    fn neighbor_advert_parsing() {
        let target: Ipv6Addr = "2001:db8::77".parse().unwrap();
        let mac = [0x02, 0, 0x5e, 1, 2, 3];
        let mut na = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
        na.extend_from_slice(&target.octets());
        assert_eq!(parse_na(&na), Some((target, None)));
        // An unknown option (nonce, type 14) before the TLLA is skipped.
        na.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        na.extend_from_slice(&[2, 1]);
        na.extend_from_slice(&mac);
        assert_eq!(parse_na(&na), Some((target, Some(mac))));
        // Truncation, option length 0, other type or code: ignored.
        for n in 0..ND_MSG_LEN {
            assert_eq!(parse_na(&na[..n]), None, "len {n}");
        }
        assert_eq!(parse_na(&na[..na.len() - 1]), None);
        let mut zero_len = na.clone();
        zero_len[25] = 0;
        assert_eq!(parse_na(&zero_len), None);
        let mut ns = na.clone();
        ns[0] = 135;
        assert_eq!(parse_na(&ns), None);
        let mut code = na.clone();
        code[1] = 1;
        assert_eq!(parse_na(&code), None);
        let mut mcast = na;
        mcast[8] = 0xff;
        assert_eq!(parse_na(&mcast), None);
    }
}
