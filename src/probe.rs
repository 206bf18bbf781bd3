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
    let v4: Vec<Ipv4Addr> = ips
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<Ipv6Addr> = ips
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();

    let (by_arp, by_ping, by_ns, by_ping6) = tokio::join!(
        arp.probe(&v4, timeout),
        ping_many(ifname, &v4, timeout),
        ns_probe(ifname, ifindex, &v6, timeout),
        ping6_many(ifname, &v6, timeout),
    );
    let by_arp = by_arp?;
    let by_ns = by_ns?;
    let by_ping = by_ping.unwrap_or_else(|e| {
        tracing::warn!("ICMP echo probe on {ifname} failed ({e}); relying on the ARP probe");
        HashMap::new()
    });
    let by_ping6 = by_ping6.unwrap_or_else(|e| {
        tracing::warn!(
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
    use crate::sys::linux::lab::Lab;
    use crate::sys::Netlink;
    use std::time::Instant;

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

    /// 50 addresses, B holds every other one: exactly those are reported,
    /// each by B's MAC.
    #[test]
    fn probe_all_finds_exactly_the_held_half() {
        let Some(lab) = Lab::new() else { return };
        let mac_a = lab.mac(&lab.a, "va");
        let mac_b = lab.mac(&lab.b, "vb");
        let ips: Vec<IpAddr> = (100..150u8)
            .map(|h| IpAddr::V4(Ipv4Addr::new(203, 0, 113, h)))
            .collect();
        let held: Vec<IpAddr> = ips.iter().copied().step_by(2).collect();
        for ip in &held {
            lab.ip(&lab.b, &["addr", "add", &format!("{ip}/32"), "dev", "vb"]);
        }
        // IPv6: one held by B, one free.
        lab.ip(
            &lab.b,
            &["addr", "add", "2001:db8::100/128", "dev", "vb", "nodad"],
        );
        let mut all = ips.clone();
        all.push("2001:db8::100".parse().unwrap());
        all.push("2001:db8::101".parse().unwrap());

        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let arp = ArpSocket::open(va.index, mac_a).unwrap();
            let timeout = Duration::from_millis(1000);
            let t = Instant::now();
            let out = probe_all(&arp, "va", va.index, &all, timeout)
                .await
                .unwrap();
            let took = t.elapsed();

            assert_eq!(out.len(), all.len());
            for (o, ip) in out.iter().zip(&all) {
                assert_eq!(o.ip, *ip, "order kept");
            }
            for o in &out[..50] {
                if held.contains(&o.ip) {
                    assert_eq!(o.responder, Some(Responder::Arp { mac: mac_b }), "{}", o.ip);
                } else {
                    assert_eq!(o.responder, None, "{}", o.ip);
                }
            }
            assert_eq!(out[50].responder, Some(Responder::Nd { mac: mac_b }));
            assert_eq!(out[51].responder, None);
            assert!(took < timeout + Duration::from_secs(1), "{took:?}");
            println!(
                "timing: probe_all of 52 addrs (timeout {} ms) took {} ms",
                timeout.as_millis(),
                took.as_millis()
            );
        });
    }

    /// An IPv6 holder that ignores echo requests is still found (by the
    /// neighbor solicitation), and an unheld address is still free.
    #[test]
    fn probe_all_finds_an_ipv6_holder_that_ignores_ping() {
        let Some(lab) = Lab::new() else { return };
        let mac_a = lab.mac(&lab.a, "va");
        let mac_b = lab.mac(&lab.b, "vb");
        lab.ip(
            &lab.b,
            &["addr", "add", "2001:db8::77/128", "dev", "vb", "nodad"],
        );
        crate::sys::linux::ndp::tests::set_echo_ignore_all(&lab.b);
        let held: IpAddr = "2001:db8::77".parse().unwrap();
        let free: IpAddr = "2001:db8::78".parse().unwrap();
        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let arp = ArpSocket::open(va.index, mac_a).unwrap();
            let out = probe_all(
                &arp,
                "va",
                va.index,
                &[held, free],
                Duration::from_millis(600),
            )
            .await
            .unwrap();
            assert_eq!(
                out,
                vec![
                    ProbeOutcome {
                        ip: held,
                        responder: Some(Responder::Nd { mac: mac_b }),
                    },
                    ProbeOutcome {
                        ip: free,
                        responder: None,
                    },
                ]
            );
        });
    }
}
