//! ARP on one interface through an AF_PACKET socket: gratuitous ARP after
//! taking an address, and RFC 5227 probes before taking it.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use pnet_packet::arp::{
    ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket,
};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::{MutablePacket, Packet};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::Mutex;
use tokio::time::{timeout_at, Instant};

use super::caps::CAP_NET_RAW;
use super::{drain, recv, register, send};
use crate::sys::SysError;

const BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet header (14) + ARP for IPv4 over Ethernet (28).
const ARP_FRAME_LEN: usize = 42;
/// Frames are padded to the Ethernet minimum (60 bytes without FCS); some
/// drivers do not pad frames handed to them by packet sockets.
const MIN_FRAME_LEN: usize = 60;

/// An AF_PACKET socket bound to ETH_P_ARP on one interface.
pub struct ArpSocket {
    fd: AsyncFd<Socket>,
    mac: [u8; 6],
    /// Probes read every ARP frame on the link: one at a time per socket.
    probing: Mutex<()>,
}

impl ArpSocket {
    /// Opens the socket on interface `ifindex` whose MAC address is `mac`.
    /// Must be called inside a tokio runtime.
    pub fn open(ifindex: u32, mac: [u8; 6]) -> Result<ArpSocket, SysError> {
        const OP: &str = "open the ARP socket (AF_PACKET)";
        let proto = (libc::ETH_P_ARP as u16).to_be();
        let sock = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(proto))),
        )
        .map_err(|e| SysError::os(OP, CAP_NET_RAW, e))?;
        let no_such = || SysError::NoSuchInterface(format!("with index {ifindex}"));
        let index = i32::try_from(ifindex).map_err(|_| no_such())?;
        sock.bind(&packet_addr(proto, index))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENODEV) => no_such(),
                _ => SysError::os(OP, CAP_NET_RAW, e),
            })?;
        // Room for the answers to a few hundred probes at once.
        if let Err(e) = sock.set_recv_buffer_size(1 << 20) {
            tracing::debug!("ARP socket: SO_RCVBUF: {e}");
        }
        Ok(ArpSocket {
            fd: register(sock, OP)?,
            mac,
            probing: Mutex::new(()),
        })
    }

    /// Announces that this host now holds `ip` (gratuitous ARP, RFC 5227
    /// §2.3 "ARP Announcement"): a broadcast request with sender and target
    /// IP both `ip`, followed by the reply form for hosts that only update
    /// their caches from replies.
    pub async fn announce(&self, ip: Ipv4Addr) -> Result<(), SysError> {
        for frame in [
            announce_request_frame(self.mac, ip),
            announce_reply_frame(self.mac, ip),
        ] {
            self.send_frame(&frame, "send gratuitous ARP").await?;
        }
        Ok(())
    }

    /// RFC 5227 §2.1.1 probe of many addresses at once: requests with
    /// sender IP 0.0.0.0 for each target, sent at once and again after
    /// `timeout / 3` for targets still silent, then collected until
    /// `timeout`. A reply or request whose sender IP is a target and whose
    /// sender MAC is not ours means another host uses that address.
    /// Returns early when every target has answered.
    pub async fn probe(
        &self,
        targets: &[Ipv4Addr],
        timeout: Duration,
    ) -> Result<HashMap<Ipv4Addr, [u8; 6]>, SysError> {
        let mut found = HashMap::new();
        let wanted: HashSet<Ipv4Addr> = targets.iter().copied().collect();
        if wanted.is_empty() {
            return Ok(found);
        }
        let _one_at_a_time = self.probing.lock().await;
        // Frames queued before now are stale: answers count only from now on.
        drain(&self.fd);
        let start = Instant::now();
        let deadline = start + timeout;
        let mut resend_at = Some(start + timeout / 3);
        self.send_probes(wanted.iter(), deadline).await?;

        let mut buf = [0u8; 2048];
        while found.len() < wanted.len() {
            let wake = resend_at.unwrap_or(deadline).min(deadline);
            match timeout_at(wake, recv(&self.fd, &mut buf)).await {
                Ok(Ok(n)) => {
                    let Some(arp) = buf.get(..n).and_then(parse_arp) else {
                        continue;
                    };
                    let answered = (arp.op == ArpOperations::Reply
                        || arp.op == ArpOperations::Request)
                        && arp.sender_mac != self.mac
                        && wanted.contains(&arp.sender_ip);
                    if answered {
                        found.entry(arp.sender_ip).or_insert(arp.sender_mac);
                    }
                }
                Ok(Err(e)) => return Err(SysError::os("receive ARP", CAP_NET_RAW, e)),
                Err(_elapsed) if resend_at.is_some() && Instant::now() < deadline => {
                    resend_at = None;
                    let silent: Vec<&Ipv4Addr> = wanted
                        .iter()
                        .filter(|ip| !found.contains_key(*ip))
                        .collect();
                    self.send_probes(silent.into_iter(), deadline).await?;
                }
                Err(_elapsed) => break,
            }
        }
        Ok(found)
    }

    /// Sends one probe per target. Probes that could not all be sent by
    /// `deadline` make the probe fail: it must not read as "nobody answered".
    async fn send_probes(
        &self,
        targets: impl Iterator<Item = &Ipv4Addr>,
        deadline: Instant,
    ) -> Result<(), SysError> {
        const OP: &str = "send ARP probe";
        let all = async {
            for ip in targets {
                self.send_frame(&probe_frame(self.mac, *ip), OP).await?;
            }
            Ok(())
        };
        timeout_at(deadline, all).await.map_err(|_| SysError::Io {
            op: OP,
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the interface did not accept the probes in time",
            ),
        })?
    }

    /// The next ARP frame on the link from another host (a forced master
    /// watches for requests for, and claims of, its IPs). For a socket of
    /// its own: it would steal a probe's answers.
    pub async fn next_foreign(&self) -> Result<ArpView, SysError> {
        let mut buf = [0u8; 2048];
        loop {
            let n = recv(&self.fd, &mut buf)
                .await
                .map_err(|e| SysError::os("receive ARP", CAP_NET_RAW, e))?;
            match buf.get(..n).and_then(parse_arp) {
                Some(view) if view.sender_mac != self.mac => return Ok(view),
                _ => continue,
            }
        }
    }

    async fn send_frame(&self, frame: &[u8], op: &'static str) -> Result<(), SysError> {
        send(&self.fd, frame)
            .await
            .map(drop)
            .map_err(|e| SysError::os(op, CAP_NET_RAW, e))
    }
}

/// `struct sockaddr_ll` for binding to one interface and protocol.
fn packet_addr(proto_be: u16, ifindex: i32) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is a sockaddr type of this platform and fits in
    // sockaddr_storage (view_as asserts the size); all-zero is a valid value.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as libc::sa_family_t;
    ll.sll_protocol = proto_be;
    ll.sll_ifindex = ifindex;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as socket2::socklen_t;
    // SAFETY: the first `len` bytes hold the initialised sockaddr_ll.
    unsafe { SockAddr::new(storage, len) }
}

/// The fields of an ARP frame this module acts on.
#[derive(Debug, PartialEq, Eq)]
pub struct ArpView {
    pub op: ArpOperation,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

impl ArpView {
    pub fn is_request(&self) -> bool {
        self.op == ArpOperations::Request
    }
}

/// Parses an Ethernet frame carrying ARP for IPv4 over Ethernet; None for
/// anything else (short, other hardware or protocol type).
fn parse_arp(frame: &[u8]) -> Option<ArpView> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    let ipv4_over_ethernet = arp.get_hardware_type() == ArpHardwareTypes::Ethernet
        && arp.get_protocol_type() == EtherTypes::Ipv4
        && arp.get_hw_addr_len() == 6
        && arp.get_proto_addr_len() == 4;
    ipv4_over_ethernet.then(|| ArpView {
        op: arp.get_operation(),
        sender_mac: arp.get_sender_hw_addr().octets(),
        sender_ip: arp.get_sender_proto_addr(),
        target_ip: arp.get_target_proto_addr(),
    })
}

struct ArpFields {
    eth_dst: [u8; 6],
    op: ArpOperation,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
}

fn arp_frame(f: &ArpFields) -> [u8; MIN_FRAME_LEN] {
    let mut buf = [0u8; MIN_FRAME_LEN];
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf[..ARP_FRAME_LEN]) {
        eth.set_destination(f.eth_dst.into());
        eth.set_source(f.sender_mac.into());
        eth.set_ethertype(EtherTypes::Arp);
        if let Some(mut arp) = MutableArpPacket::new(eth.payload_mut()) {
            arp.set_hardware_type(ArpHardwareTypes::Ethernet);
            arp.set_protocol_type(EtherTypes::Ipv4);
            arp.set_hw_addr_len(6);
            arp.set_proto_addr_len(4);
            arp.set_operation(f.op);
            arp.set_sender_hw_addr(f.sender_mac.into());
            arp.set_sender_proto_addr(f.sender_ip);
            arp.set_target_hw_addr(f.target_mac.into());
            arp.set_target_proto_addr(f.target_ip);
        }
    }
    buf
}

/// RFC 5227 §2.1.1: broadcast request, sender IP 0.0.0.0 (so no host
/// updates its cache), target hardware address zero.
fn probe_frame(mac: [u8; 6], target: Ipv4Addr) -> [u8; MIN_FRAME_LEN] {
    arp_frame(&ArpFields {
        eth_dst: BROADCAST,
        op: ArpOperations::Request,
        sender_mac: mac,
        sender_ip: Ipv4Addr::UNSPECIFIED,
        target_mac: [0; 6],
        target_ip: target,
    })
}

/// RFC 5227 §2.3 ARP Announcement: broadcast request, sender IP = target
/// IP = the address taken.
fn announce_request_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; MIN_FRAME_LEN] {
    arp_frame(&ArpFields {
        eth_dst: BROADCAST,
        op: ArpOperations::Request,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: [0; 6],
        target_ip: ip,
    })
}

/// Gratuitous ARP in reply form (as `arping -A`): broadcast reply, sender
/// IP = target IP, target MAC = ours.
fn announce_reply_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; MIN_FRAME_LEN] {
    arp_frame(&ArpFields {
        eth_dst: BROADCAST,
        op: ArpOperations::Reply,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: mac,
        target_ip: ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

    fn expected(
        dst: [u8; 6],
        op: u8,
        sha: [u8; 6],
        spa: [u8; 4],
        tha: [u8; 6],
        tpa: [u8; 4],
    ) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&dst);
        v.extend_from_slice(&MAC);
        v.extend_from_slice(&[0x08, 0x06]); // ethertype ARP
        v.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, op]);
        v.extend_from_slice(&sha);
        v.extend_from_slice(&spa);
        v.extend_from_slice(&tha);
        v.extend_from_slice(&tpa);
        v.resize(60, 0);
        v
    }

    #[test]
    fn probe_frame_bytes() {
        let want = expected(BROADCAST, 1, MAC, [0, 0, 0, 0], [0; 6], [203, 0, 113, 7]);
        assert_eq!(probe_frame(MAC, IP).to_vec(), want);
    }

    #[test]
    fn announce_frame_bytes() {
        let req = expected(
            BROADCAST,
            1,
            MAC,
            [203, 0, 113, 7],
            [0; 6],
            [203, 0, 113, 7],
        );
        assert_eq!(announce_request_frame(MAC, IP).to_vec(), req);
        let reply = expected(BROADCAST, 2, MAC, [203, 0, 113, 7], MAC, [203, 0, 113, 7]);
        assert_eq!(announce_reply_frame(MAC, IP).to_vec(), reply);
    }

    #[test]
    fn parse_round_trip_and_rejects() {
        let view = parse_arp(&announce_reply_frame(MAC, IP)).unwrap();
        assert_eq!(
            view,
            ArpView {
                op: ArpOperations::Reply,
                sender_mac: MAC,
                sender_ip: IP,
                target_ip: IP,
            }
        );
        let frame = probe_frame(MAC, IP);
        // Truncated frames, other ethertypes, other address sizes: ignored.
        for n in 0..ARP_FRAME_LEN {
            assert_eq!(parse_arp(&frame[..n]), None, "len {n}");
        }
        let mut ipv6_type = frame;
        ipv6_type[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(parse_arp(&ipv6_type), None);
        let mut odd_hlen = frame;
        odd_hlen[18] = 8;
        assert_eq!(parse_arp(&odd_hlen), None);
        // Unpadded 42-byte frames are fine.
        assert!(parse_arp(&frame[..ARP_FRAME_LEN]).is_some());
    }
}
