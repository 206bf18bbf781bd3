//! ICMP echo ("ping") to many targets at once, on one interface, and the
//! IPv6 counterpart of gratuitous ARP (unsolicited Neighbor Advertisement).
//!
//! Raw sockets bound to the device (SO_BINDTODEVICE): with an output
//! interface fixed and no route, Linux sends IPv4 on-link (ARP for the
//! target) instead of failing, so a floating IP outside the NIC's subnets
//! is still probed. A target that cannot be reached at all (sendto fails,
//! or an ICMP error comes back) simply does not answer: it is never "live".

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use pnet_packet::icmp::echo_reply::EchoReplyPacket;
use pnet_packet::icmp::echo_request::MutableEchoRequestPacket;
use pnet_packet::icmp::{self, IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::{Icmpv6Packet, Icmpv6Types};
use pnet_packet::Packet;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::time::{timeout_at, Instant};

use super::caps::CAP_NET_RAW;
use super::{bind_to_device, recv_from, register, send_to};
use crate::sys::SysError;

/// Payload of our echo requests, also a marker when capturing traffic.
const PAYLOAD: &[u8] = b"ipfail-probe";
const ICMP_HEADER_LEN: usize = 8;
/// Large enough for hundreds of replies arriving together (field notes).
const RCVBUF: usize = 1 << 20;

/// Echo identifier per call: concurrent calls and other pingers on the
/// host (raw sockets see all ICMP) are told apart by it.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// Pings every target once (and again after `timeout / 3` if silent) and
/// collects echo replies until `timeout`. Returns target -> reply source
/// for the targets that answered; a reply counts only when its source is
/// the target and its identifier and sequence number are ours.
pub async fn ping_many(
    ifname: &str,
    targets: &[Ipv4Addr],
    timeout: Duration,
) -> Result<HashMap<Ipv4Addr, Ipv4Addr>, SysError> {
    let ips: Vec<IpAddr> = targets.iter().map(|&t| IpAddr::V4(t)).collect();
    Ok(echo_many(ifname, false, &ips, timeout)
        .await?
        .into_iter()
        .filter_map(|(t, from)| match (t, from) {
            (IpAddr::V4(t), IpAddr::V4(from)) => Some((t, from)),
            _ => None,
        })
        .collect())
}

/// [`ping_many`] for IPv6 (ICMPv6 echo; the kernel fills in the checksum).
/// Targets without a route on `ifname` are unreachable, i.e. silent.
pub async fn ping6_many(
    ifname: &str,
    targets: &[Ipv6Addr],
    timeout: Duration,
) -> Result<HashMap<Ipv6Addr, Ipv6Addr>, SysError> {
    let ips: Vec<IpAddr> = targets.iter().map(|&t| IpAddr::V6(t)).collect();
    Ok(echo_many(ifname, true, &ips, timeout)
        .await?
        .into_iter()
        .filter_map(|(t, from)| match (t, from) {
            (IpAddr::V6(t), IpAddr::V6(from)) => Some((t, from)),
            _ => None,
        })
        .collect())
}

async fn echo_many(
    ifname: &str,
    v6: bool,
    targets: &[IpAddr],
    timeout: Duration,
) -> Result<HashMap<IpAddr, IpAddr>, SysError> {
    let mut found = HashMap::new();
    if targets.is_empty() {
        return Ok(found);
    }
    let fd = open(ifname, v6)?;
    let id = NEXT_ID
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(std::process::id() as u16);
    // Sequence number = position in `targets` (wraps beyond 65536 targets;
    // replies are matched by source address as well).
    let seq_of: HashMap<IpAddr, u16> = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, i as u16))
        .collect();

    let start = Instant::now();
    let deadline = start + timeout;
    let mut resend_at = Some(start + timeout / 3);
    send_requests(&fd, v6, id, seq_of.iter(), deadline).await?;

    let mut buf = [0u8; 2048];
    while found.len() < seq_of.len() {
        let wake = resend_at.unwrap_or(deadline).min(deadline);
        match timeout_at(wake, recv_from(&fd, &mut buf)).await {
            Ok(Ok((n, Some(from)))) => {
                let Some(msg) = buf.get(..n) else { continue };
                let reply = if v6 {
                    parse_echo_reply_v6(msg)
                } else {
                    parse_echo_reply_v4(msg).map(|(_, id_seq)| id_seq)
                };
                if let Some((rid, rseq)) = reply {
                    if rid == id && seq_of.get(&from) == Some(&rseq) {
                        found.insert(from, from);
                    }
                }
            }
            Ok(Ok((_, None))) => {}
            // An ICMP error reported on the socket concerns one target,
            // which thereby stays silent; the others are still collected.
            Ok(Err(e)) if is_unreachable(&e) => {
                tracing::debug!("ping on {ifname}: {e}; counted as no answer");
            }
            Ok(Err(e)) => return Err(SysError::os("receive ICMP echo reply", CAP_NET_RAW, e)),
            Err(_elapsed) if resend_at.is_some() && Instant::now() < deadline => {
                resend_at = None;
                let silent = seq_of.iter().filter(|(t, _)| !found.contains_key(*t));
                send_requests(&fd, v6, id, silent, deadline).await?;
            }
            Err(_elapsed) => break,
        }
    }
    Ok(found)
}

fn is_unreachable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ECONNREFUSED)
    )
}

fn open(ifname: &str, v6: bool) -> Result<AsyncFd<Socket>, SysError> {
    const OP: &str = "open the ICMP socket (raw)";
    let sock = if v6 {
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
    } else {
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
    }
    .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
    bind_to_device(&sock, ifname, OP)?;
    // SO_RCVBUFFORCE passes rmem_max (needs CAP_NET_ADMIN); else best effort.
    if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
        if let Err(e) = sock.set_recv_buffer_size(RCVBUF) {
            tracing::debug!("ICMP socket: SO_RCVBUF: {e}");
        }
    }
    register(sock, OP)
}

/// Sends one echo request per target. A target the kernel refuses to send
/// to (no route, unreachable, filtered) is logged and left silent. Requests
/// that could not all be sent by `deadline` make the probe fail.
async fn send_requests<'a>(
    fd: &AsyncFd<Socket>,
    v6: bool,
    id: u16,
    targets: impl Iterator<Item = (&'a IpAddr, &'a u16)>,
    deadline: Instant,
) -> Result<(), SysError> {
    let all = async {
        for (&target, &seq) in targets {
            let msg = if v6 {
                echo_request_v6(id, seq)
            } else {
                echo_request_v4(id, seq)
            };
            let dst = SockAddr::from(SocketAddr::new(target, 0));
            if let Err(e) = send_to(fd, &msg, &dst).await {
                tracing::debug!("ping {target}: {e}; counted as no answer");
            }
        }
    };
    timeout_at(deadline, all).await.map_err(|_| SysError::Io {
        op: "send ICMP echo requests",
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the interface did not accept the requests in time",
        ),
    })
}

/// Announces that this host now holds `ip` on `ifname` (IPv6's gratuitous
/// ARP): an unsolicited Neighbor Advertisement to all nodes (ff02::1) with
/// the Override flag and our link-layer address, RFC 4861 §7.2.6. `ip` must
/// already be on the interface (added with nodad), it is the source.
pub async fn announce_v6(ifname: &str, ip: Ipv6Addr, mac: [u8; 6]) -> Result<(), SysError> {
    const OP: &str = "send unsolicited neighbor advertisement";
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
    bind_to_device(&sock, ifname, OP)?;
    let io = |e| SysError::os(OP, CAP_NET_RAW, e);
    // Receivers drop ND messages whose hop limit is not 255 (RFC 4861 §7.1.2).
    sock.set_multicast_hops_v6(255).map_err(io)?;
    sock.set_unicast_hops_v6(255).map_err(io)?;
    sock.bind(&SockAddr::from(SocketAddr::new(IpAddr::V6(ip), 0)))
        .map_err(io)?;
    let fd = register(sock, OP)?;
    let all_nodes = SockAddr::from(SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
        0,
    ));
    send_to(&fd, &unsolicited_na(ip, mac), &all_nodes)
        .await
        .map(drop)
        .map_err(io)
}

/// Neighbor Advertisement (RFC 4861 §4.4): type 136, flags Override, the
/// target address, and a Target Link-Layer Address option (type 2, length
/// 1 = 8 bytes). The checksum is left to the kernel.
fn unsolicited_na(ip: Ipv6Addr, mac: [u8; 6]) -> [u8; 32] {
    let mut msg = [0u8; 32];
    msg[0] = Icmpv6Types::NeighborAdvert.0;
    msg[4] = 0x20; // R=0 (not a router), S=0 (unsolicited), O=1
    msg[8..24].copy_from_slice(&ip.octets());
    msg[24] = 2;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&mac);
    msg
}

/// ICMP echo request (RFC 792) with its checksum.
fn echo_request_v4(id: u16, seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; ICMP_HEADER_LEN + PAYLOAD.len()];
    if let Some(mut pkt) = MutableEchoRequestPacket::new(&mut buf) {
        pkt.set_icmp_type(IcmpTypes::EchoRequest);
        pkt.set_identifier(id);
        pkt.set_sequence_number(seq);
        pkt.set_payload(PAYLOAD);
    }
    let sum = IcmpPacket::new(&buf).map(|p| icmp::checksum(&p));
    if let (Some(sum), Some(field)) = (sum, buf.get_mut(2..4)) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
    buf
}

/// ICMPv6 echo request (RFC 4443 §4.1); the checksum, which covers a
/// pseudo-header with the source address, is filled in by the kernel.
fn echo_request_v6(id: u16, seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; ICMP_HEADER_LEN + PAYLOAD.len()];
    buf[0] = Icmpv6Types::EchoRequest.0;
    buf[4..6].copy_from_slice(&id.to_be_bytes());
    buf[6..8].copy_from_slice(&seq.to_be_bytes());
    buf[ICMP_HEADER_LEN..].copy_from_slice(PAYLOAD);
    buf
}

/// Parses an IPv4 datagram (as a raw socket returns it, header included)
/// holding an ICMP echo reply with a valid checksum: (source, (id, seq)).
fn parse_echo_reply_v4(datagram: &[u8]) -> Option<(Ipv4Addr, (u16, u16))> {
    let first = *datagram.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || datagram.get(9) != Some(&1) {
        return None;
    }
    let src = Ipv4Addr::new(
        *datagram.get(12)?,
        *datagram.get(13)?,
        *datagram.get(14)?,
        *datagram.get(15)?,
    );
    let msg = datagram.get(header_len..)?;
    let icmp = IcmpPacket::new(msg)?;
    if icmp.get_icmp_type() != IcmpTypes::EchoReply
        || icmp.get_icmp_code().0 != 0
        || icmp::checksum(&icmp) != icmp.get_checksum()
    {
        return None;
    }
    let reply = EchoReplyPacket::new(msg)?;
    Some((src, (reply.get_identifier(), reply.get_sequence_number())))
}

/// Parses an ICMPv6 message (raw IPv6 sockets return no IP header; the
/// kernel has checked the checksum) holding an echo reply: (id, seq).
fn parse_echo_reply_v6(msg: &[u8]) -> Option<(u16, u16)> {
    let icmp = Icmpv6Packet::new(msg)?;
    if icmp.get_icmpv6_type() != Icmpv6Types::EchoReply || icmp.get_icmpv6_code().0 != 0 {
        return None;
    }
    let rest = icmp.payload();
    let id = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
    let seq = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
    Some((id, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_bytes_and_checksum() {
        let msg = echo_request_v4(0x1234, 0x0001);
        // type 8, code 0, checksum, id 0x1234, seq 1, "ipfail-probe"
        let mut want = vec![8, 0, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01];
        want.extend_from_slice(b"ipfail-probe");
        // RFC 1071 one's complement sum, computed independently below.
        let sum = rfc1071(&want);
        want[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(msg, want);
        assert_eq!(rfc1071(&msg), 0, "a correct checksum sums to zero");
        // Golden value, so the test does not only agree with itself.
        assert_eq!(&msg[2..4], &[0xaa, 0x47]);
    }

    #[test]
    fn unsolicited_na_bytes() {
        let ip: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let mac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
        let mut want = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
        want.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend_from_slice(&[2, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
        assert_eq!(unsolicited_na(ip, mac).to_vec(), want);
    }

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

    fn ipv4_wrap(src: [u8; 4], icmp: &[u8]) -> Vec<u8> {
        let mut d = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        d.extend_from_slice(&src);
        d.extend_from_slice(&[192, 0, 2, 1]);
        d.extend_from_slice(icmp);
        d
    }

    #[test]
    fn echo_reply_parsing() {
        let mut reply = echo_request_v4(7, 9);
        reply[0] = 0; // echo reply
        let sum = rfc1071(&{
            let mut r = reply.clone();
            r[2] = 0;
            r[3] = 0;
            r
        });
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        let d = ipv4_wrap([192, 0, 2, 2], &reply);
        assert_eq!(
            parse_echo_reply_v4(&d),
            Some((Ipv4Addr::new(192, 0, 2, 2), (7, 9)))
        );
        // Bad checksum, a request instead of a reply, truncation: ignored.
        let mut bad = d.clone();
        bad[22] ^= 1;
        assert_eq!(parse_echo_reply_v4(&bad), None);
        assert_eq!(
            parse_echo_reply_v4(&ipv4_wrap([192, 0, 2, 2], &echo_request_v4(7, 9))),
            None
        );
        for n in 0..28 {
            assert_eq!(parse_echo_reply_v4(&d[..n]), None, "len {n}");
        }
        let mut v6 = echo_request_v6(7, 9);
        v6[0] = 129;
        assert_eq!(parse_echo_reply_v6(&v6), Some((7, 9)));
        assert_eq!(parse_echo_reply_v6(&echo_request_v6(7, 9)), None);
        assert_eq!(parse_echo_reply_v6(&v6[..6]), None);
    }
}
