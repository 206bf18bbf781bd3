//! Liveness probe before taking floating IPs: is any other host answering
//! for these addresses? All addresses are probed at once under one deadline.
//!
//! IPv4: an RFC 5227 ARP probe on the link (the authority: it needs no
//! route and every IPv4 host answers it) plus ICMP echo. IPv6 likewise: a
//! DAD-style Neighbor Solicitation (RFC 4862 §5.4.2; answered also by
//! holders that drop echo requests) plus ICMPv6 echo.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::sys::{ns_probe, ping6_many, ping_many, ArpSocket, SysError};

/// Who answered for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    /// A host claimed the address in ARP.
    Arp { mac: [u8; 6] },
    /// A host answered an IPv6 neighbor solicitation for the address.
    Nd { mac: [u8; 6] },
    /// A host answered ping for the address.
    Icmp { from: IpAddr },
}

impl fmt::Display for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Responder::Arp { mac } => write!(
                f,
                "answered ARP from {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
            ),
            Responder::Nd { mac } => write!(
                f,
                "answered neighbor solicitation from {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
            ),
            Responder::Icmp { from } => write!(f, "answered ping from {from}"),
        }
    }
}

/// The verdict for one address: `None` means nobody answered, so it is
/// free to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub ip: IpAddr,
    pub responder: Option<Responder>,
}

/// `ips` as their IPv4 and IPv6 addresses, each in order.
pub fn split_families(ips: &[IpAddr]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for ip in ips {
        match ip {
            IpAddr::V4(a) => v4.push(*a),
            IpAddr::V6(a) => v6.push(*a),
        }
    }
    (v4, v6)
}

/// Probes all `ips` concurrently: ARP probe through `arp` (the socket of
/// interface `ifname`, index `ifindex`) and ICMP echo for IPv4, neighbor
/// solicitation and ICMPv6 echo for IPv6, all ending after `timeout`.
/// Outcomes come in the order of `ips`.
///
/// A probe that could not be done is an error, never "nobody answered":
/// the ARP probe or the neighbor solicitation failing. Echo failing is
/// logged; ARP / neighbor solicitation still decide.
pub async fn probe_all(
    arp: &ArpSocket,
    ifname: &str,
    ifindex: u32,
    ips: &[IpAddr],
    timeout: Duration,
) -> Result<Vec<ProbeOutcome>, SysError> {
    let (v4, v6) = split_families(ips);

    let (by_arp, by_ping, by_ns, by_ping6) = tokio::join!(
        arp.probe(&v4, timeout),
        ping_many(ifname, &v4, timeout),
        ns_probe(ifname, ifindex, &v6, timeout),
        ping6_many(ifname, &v6, timeout),
    );
    let by_arp = by_arp?;
    let by_ns = by_ns?;
    let by_ping = by_ping.unwrap_or_else(|e| {
        crate::warn_limited!(
            {},
            "ICMP echo probe on {ifname} failed ({e}); relying on the ARP probe"
        );
        HashMap::new()
    });
    let by_ping6 = by_ping6.unwrap_or_else(|e| {
        crate::warn_limited!(
            {},
            "ICMPv6 echo probe on {ifname} failed ({e}); relying on the neighbor solicitation"
        );
        HashMap::new()
    });

    Ok(ips
        .iter()
        .map(|&ip| {
            let responder = match ip {
                IpAddr::V4(a) => by_arp
                    .get(&a)
                    .map(|&mac| Responder::Arp { mac })
                    .or_else(|| by_ping.get(&a).map(|&f| Responder::Icmp { from: f.into() })),
                IpAddr::V6(a) => by_ns.get(&a).map(|&mac| Responder::Nd { mac }).or_else(|| {
                    by_ping6
                        .get(&a)
                        .map(|&f| Responder::Icmp { from: f.into() })
                }),
            };
            ProbeOutcome { ip, responder }
        })
        .collect())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn responder_display() {
        let arp = Responder::Arp {
            mac: [0x02, 0, 0x5e, 0xab, 0xcd, 0x0f],
        };
        assert_eq!(arp.to_string(), "answered ARP from 02:00:5e:ab:cd:0f");
        let icmp = Responder::Icmp {
            from: "192.0.2.2".parse().unwrap(),
        };
        assert_eq!(icmp.to_string(), "answered ping from 192.0.2.2");
        let nd = Responder::Nd {
            mac: [0x02, 0, 0x5e, 0xab, 0xcd, 0x0f],
        };
        assert_eq!(
            nd.to_string(),
            "answered neighbor solicitation from 02:00:5e:ab:cd:0f"
        );
    }
}
