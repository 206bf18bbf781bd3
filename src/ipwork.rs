//! The I/O behind the IP planner's ops (`ipplan::Op`), shared by the
//! daemon's IP task (`ipmgr`) and `ipfail hook` (`hook::apply`): each
//! function does one kind of work for a batch of addresses and returns one
//! result per address. The callers only report (log lines or hook lines)
//! and feed the results back to their planner.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::config::IpNet;
use crate::conflict::{mac_text, Answerer};
use crate::ipplan::Seen;
use crate::probe::{probe_all, split_families, Responder};
use crate::sys::{
    announce_v6, ns_probe, AddrChange, AddrInfo, ArpSocket, Lifetime, Netlink, SysError,
};

/// One interface's address work.
pub struct Nic<'a> {
    pub netlink: &'a Netlink,
    pub ifindex: u32,
    pub ifname: &'a str,
    /// `None` for links without an Ethernet address (nothing to announce).
    pub mac: Option<[u8; 6]>,
}

/// Our view of an address as the planner wants it.
pub fn seen(info: &AddrInfo) -> Seen {
    Seen {
        addr: info.addr,
        prefix: info.prefix,
        ours: info.is_ours(),
        valid_left: info.valid_left,
    }
}

impl Nic<'_> {
    /// The interface's addresses ([`crate::ipplan::Op::ReadAddrs`]).
    pub async fn read(&self) -> Result<Vec<Seen>, SysError> {
        Ok(self
            .netlink
            .addr_infos(self.ifindex)
            .await?
            .iter()
            .map(seen)
            .collect())
    }

    pub async fn add(
        &self,
        nets: &[IpNet],
        lifetime: Lifetime,
    ) -> Vec<(IpNet, Result<AddrChange, SysError>)> {
        let mut out = Vec::with_capacity(nets.len());
        for net in nets {
            let r = self
                .netlink
                .add_addr(self.ifindex, net.addr, net.prefix, lifetime)
                .await;
            out.push((*net, r));
        }
        out
    }

    pub async fn remove(&self, nets: &[IpNet]) -> Vec<(IpNet, Result<AddrChange, SysError>)> {
        let mut out = Vec::with_capacity(nets.len());
        for net in nets {
            let r = self
                .netlink
                .del_addr(self.ifindex, net.addr, net.prefix)
                .await;
            out.push((*net, r));
        }
        out
    }

    /// One round of gratuitous ARP for IPv4 and unsolicited neighbour
    /// advertisements for IPv6 (RFC 4861 §7.2.6).
    pub async fn announce(
        &self,
        arp: &ArpSocket,
        ips: &[IpAddr],
    ) -> Vec<(IpAddr, Result<(), SysError>)> {
        let mut out = Vec::with_capacity(ips.len());
        for ip in ips {
            let r = match (ip, self.mac) {
                (IpAddr::V4(v4), _) => arp.announce(*v4).await,
                (IpAddr::V6(v6), Some(mac)) => announce_v6(self.ifname, *v6, mac).await,
                (IpAddr::V6(_), None) => Ok(()),
            };
            out.push((*ip, r));
        }
        out
    }
}

/// Probes `ips` ([`crate::ipplan::Op::Probe`]): who answered for which
/// IP, or why the probe could not be done (which proves nothing).
pub async fn probe(
    arp: &ArpSocket,
    ifname: &str,
    ifindex: u32,
    ips: &[IpAddr],
    timeout: Duration,
) -> Result<BTreeMap<IpAddr, String>, String> {
    probe_who(arp, ifname, ifindex, ips, timeout)
        .await
        .map(in_words)
}

/// [`probe`], with the answers as they came.
pub async fn probe_who(
    arp: &ArpSocket,
    ifname: &str,
    ifindex: u32,
    ips: &[IpAddr],
    timeout: Duration,
) -> Result<BTreeMap<IpAddr, Responder>, String> {
    probe_all(arp, ifname, ifindex, ips, timeout)
        .await
        .map(|outcomes| {
            outcomes
                .into_iter()
                .filter_map(|o| o.responder.map(|r| (o.ip, r)))
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// The answers as the planner keeps them (and the log and status show).
pub fn in_words(answers: BTreeMap<IpAddr, Responder>) -> BTreeMap<IpAddr, String> {
    answers
        .into_iter()
        .map(|(ip, r)| (ip, r.to_string()))
        .collect()
}

/// A forced master's look for claims of IPs it holds
/// ([`crate::ipplan::Op::Defend`]): the ARP probe and the neighbour
/// solicitation only (ping would be answered by this host itself).
pub async fn claims(
    arp: &ArpSocket,
    ifname: &str,
    ifindex: u32,
    ips: &[IpAddr],
    timeout: Duration,
) -> Result<BTreeMap<IpAddr, Responder>, String> {
    let (v4, v6) = split_families(ips);
    let (by_arp, by_ns) = tokio::join!(
        arp.probe(&v4, timeout),
        ns_probe(ifname, ifindex, &v6, timeout)
    );
    let mut out: BTreeMap<IpAddr, Responder> = by_arp
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(ip, mac)| (IpAddr::V4(ip), Responder::Arp { mac }))
        .collect();
    out.extend(
        by_ns
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(ip, mac)| (IpAddr::V6(ip), Responder::Nd { mac })),
    );
    Ok(out)
}

/// Who owns these MACs, as far as this host can tell: an ARP probe of the
/// CARP peers' IPv4 source addresses (`peers`) says which MAC is which
/// peer's, and the kernel's ARP table (`/proc/net/arp`, IPv4 only) names
/// an address for the others. Only run when a conflict needs a name.
pub async fn identify(
    arp: &ArpSocket,
    ifname: &str,
    macs: &[[u8; 6]],
    peers: &[IpAddr],
    skip: &[IpAddr],
    timeout: Duration,
) -> BTreeMap<[u8; 6], Answerer> {
    let (v4, _) = split_families(peers);
    let peer_macs = match arp.probe(&v4, timeout).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!("identifying CARP peers on {ifname}: {e}");
            Default::default()
        }
    };
    let table = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    macs.iter()
        .map(|mac| {
            let peer = peer_macs
                .iter()
                .find(|(_, m)| *m == mac)
                .map(|(ip, _)| IpAddr::V4(*ip));
            let ip = peer.or_else(|| {
                arp_table_ip(&table, ifname, mac)
                    .into_iter()
                    .map(IpAddr::V4)
                    .find(|a| !skip.contains(a))
            });
            (
                *mac,
                Answerer {
                    mac: Some(*mac),
                    ip,
                    peer,
                },
            )
        })
        .collect()
}

/// The addresses `/proc/net/arp` (text `table`) maps to `mac` on `ifname`.
fn arp_table_ip(table: &str, ifname: &str, mac: &[u8; 6]) -> Vec<Ipv4Addr> {
    let want = mac_text(mac);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // IP address, HW type, Flags, HW address, Mask, Device
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [ip, _, _, hw, _, dev] if *dev == ifname && hw.eq_ignore_ascii_case(&want) => {
                    ip.parse().ok()
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arp_table_names_the_addresses_of_a_mac_on_one_interface() {
        let table =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
                     192.0.2.9        0x1         0x2         02:00:00:00:00:09     *        eth0\n\
                     192.0.2.8        0x1         0x2         02:00:00:00:00:08     *        eth0\n\
                     198.51.100.9     0x1         0x2         02:00:00:00:00:09     *        eth1\n\
                     garbage\n";
        let mac = [2, 0, 0, 0, 0, 9];
        assert_eq!(
            arp_table_ip(table, "eth0", &mac),
            vec![Ipv4Addr::new(192, 0, 2, 9)]
        );
        assert!(arp_table_ip(table, "eth2", &mac).is_empty());
        assert!(arp_table_ip("", "eth0", &mac).is_empty());
    }
}
