//! The I/O behind the IP planner's ops (`ipplan::Op`), shared by the
//! daemon's IP task (`ipmgr`) and `ipfail hook` (`hook::apply`): each
//! function does one kind of work for a batch of addresses and returns one
//! result per address. The callers only report (log lines or hook lines)
//! and feed the results back to their planner.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::IpNet;
use crate::ipplan::Seen;
use crate::probe::probe_all;
use crate::sys::{announce_v6, AddrChange, AddrInfo, ArpSocket, Lifetime, Netlink, SysError};

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
    timeout: std::time::Duration,
) -> Result<BTreeMap<IpAddr, String>, String> {
    probe_all(arp, ifname, ifindex, ips, timeout)
        .await
        .map(|outcomes| {
            outcomes
                .into_iter()
                .filter_map(|o| o.responder.map(|r| (o.ip, r.to_string())))
                .collect()
        })
        .map_err(|e| e.to_string())
}
