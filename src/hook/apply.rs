//! The address work of one hook run: acquire (probe, add the silent IPs,
//! announce) or release (remove), one output line per IP, then a check of
//! the interface that the group really is in the wanted state.
//!
//! Unlike the daemon's per-group task (`ipmgr`), a hook run is one shot:
//! an IP another host answers for is reported and left alone, not
//! re-probed, and the run waits for its gratuitous-ARP repeats.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::event::Intent;
use super::Say;
use crate::config::{Group, IpNet};
use crate::probe::probe_all;
use crate::sys::{announce_v6, AddrChange, ArpSocket, Lifetime, LinkInfo, Netlink, SysError};

/// What one run is asked to do.
pub struct Plan<'a> {
    pub group: &'a Group,
    pub intent: Intent,
    pub dry_run: bool,
    /// Skip the liveness probe.
    pub force: bool,
    pub probe_timeout: Duration,
    pub garp_count: u32,
    pub garp_interval: Duration,
}

impl Plan<'_> {
    /// "not added" / "not removed", as each failure line says it.
    pub(super) fn not_done(&self) -> &'static str {
        match (self.intent, self.dry_run) {
            (Intent::Acquire, false) => "not added",
            (Intent::Acquire, true) => "would not be added",
            (Intent::Release, false) => "not removed",
            (Intent::Release, true) => "would not be removed",
        }
    }
}

/// Does the work and returns how many of the group's IPs did not end in
/// the wanted state (in a dry run: would not), each already reported.
pub async fn apply(plan: &Plan<'_>, say: &Say) -> usize {
    let g = plan.group;
    let mut failed = Failures::default();
    let netlink = match Netlink::new() {
        Ok(n) => n,
        Err(e) => return failed.all(plan, say, &e),
    };
    let link = match netlink.link(&g.interface).await {
        Ok(l) => l,
        Err(e) => return failed.all(plan, say, &e),
    };
    let present = match netlink.addrs(link.index).await {
        Ok(a) => a,
        Err(e) => return failed.all(plan, say, &e),
    };
    match plan.intent {
        Intent::Acquire => acquire(plan, say, &netlink, &link, &present, &mut failed).await,
        Intent::Release => release(plan, say, &netlink, &link, &present, &mut failed).await,
    }
    if !plan.dry_run {
        verify(plan, say, &netlink, &link, &mut failed).await;
    }
    failed.ips.len()
}

/// The IPs reported as not in the wanted state.
#[derive(Default)]
struct Failures {
    ips: BTreeSet<IpAddr>,
}

impl Failures {
    fn one(&mut self, plan: &Plan<'_>, say: &Say, net: IpNet, why: impl std::fmt::Display) {
        say.line(format!("{net}: {}: {why}", plan.not_done()));
        self.ips.insert(net.addr);
    }

    /// Nothing could be done: one line per IP, all with the same reason.
    fn all(&mut self, plan: &Plan<'_>, say: &Say, why: &SysError) -> usize {
        for net in &plan.group.ips {
            self.one(plan, say, *net, why);
        }
        self.ips.len()
    }
}

async fn acquire(
    plan: &Plan<'_>,
    say: &Say,
    netlink: &Netlink,
    link: &LinkInfo,
    present: &[(IpAddr, u8)],
    failed: &mut Failures,
) {
    let ifname = &link.name;
    let (have, missing): (Vec<IpNet>, Vec<IpNet>) = plan
        .group
        .ips
        .iter()
        .partition(|net| present.iter().any(|(a, _)| *a == net.addr));
    for net in &have {
        say.line(format!("{net} already on {ifname}"));
    }
    // Needed to probe and to announce; a link without a MAC (not Ethernet)
    // still gets its IPs, but ARP on it is meaningless.
    let arp = ArpSocket::open(link.index, link.mac.unwrap_or([0; 6]));

    let free = if missing.is_empty() {
        Vec::new()
    } else if plan.force {
        say.line("probe skipped (--force)");
        missing
    } else {
        probe(plan, say, &arp, link, missing, failed).await
    };

    let mut held: Vec<IpAddr> = have.iter().map(|n| n.addr).collect();
    for net in free {
        if plan.dry_run {
            say.line(format!("would add {net} on {ifname}"));
            continue;
        }
        match netlink
            .add_addr(link.index, net.addr, net.prefix, Lifetime::Forever)
            .await
        {
            Ok(AddrChange::Done) => say.line(format!("added {net} on {ifname}")),
            Ok(AddrChange::AlreadyDone) => say.line(format!("{net} already on {ifname}")),
            Err(e) => {
                failed.one(plan, say, net, e);
                continue;
            }
        }
        held.push(net.addr);
    }
    if !plan.dry_run && !held.is_empty() {
        announce(plan, say, &arp, link, &held).await;
    }
}

/// Probes `missing` concurrently; returns the ones nobody answered for.
async fn probe(
    plan: &Plan<'_>,
    say: &Say,
    arp: &Result<ArpSocket, SysError>,
    link: &LinkInfo,
    missing: Vec<IpNet>,
    failed: &mut Failures,
) -> Vec<IpNet> {
    let addrs: Vec<IpAddr> = missing.iter().map(|n| n.addr).collect();
    let outcomes = match arp {
        Ok(arp) => probe_all(arp, &link.name, link.index, &addrs, plan.probe_timeout)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    // A probe that could not be done proves nothing: never take an IP on it.
    let outcomes = match outcomes {
        Ok(o) => o,
        Err(e) => {
            for net in missing {
                failed.one(plan, say, net, format!("probe failed: {e}"));
            }
            return Vec::new();
        }
    };
    let answered: BTreeMap<IpAddr, String> = outcomes
        .into_iter()
        .filter_map(|o| o.responder.map(|r| (o.ip, r.to_string())))
        .collect();
    let mut free = Vec::new();
    for net in missing {
        match answered.get(&net.addr) {
            Some(who) => failed.one(plan, say, net, who),
            None => free.push(net),
        }
    }
    free
}

/// `garp_count` rounds of gratuitous ARP (unsolicited NA for IPv6),
/// `garp_interval` apart, then one line saying what was announced.
async fn announce(
    plan: &Plan<'_>,
    say: &Say,
    arp: &Result<ArpSocket, SysError>,
    link: &LinkInfo,
    ips: &[IpAddr],
) {
    let Some(mac) = link.mac else {
        say.line(format!(
            "{} has no MAC address: nothing to announce",
            link.name
        ));
        return;
    };
    let arp = match arp {
        Ok(a) => a,
        Err(e) => {
            say.line(format!("not announced: {e}"));
            return;
        }
    };
    let mut errors: BTreeMap<IpAddr, SysError> = BTreeMap::new();
    for round in 0..plan.garp_count {
        if round > 0 {
            tokio::time::sleep(plan.garp_interval).await;
        }
        for &ip in ips {
            let sent = match ip {
                IpAddr::V4(v4) => arp.announce(v4).await,
                IpAddr::V6(v6) => announce_v6(&link.name, v6, mac).await,
            };
            if let Err(e) = sent {
                errors.entry(ip).or_insert(e);
            }
        }
    }
    let ok: Vec<String> = ips
        .iter()
        .filter(|ip| !errors.contains_key(ip))
        .map(ToString::to_string)
        .collect();
    if !ok.is_empty() {
        say.line(format!(
            "announced {} on {} ({} times, {} s apart)",
            ok.join(", "),
            link.name,
            plan.garp_count,
            plan.garp_interval.as_secs_f64()
        ));
    }
    for (ip, e) in errors {
        say.line(format!("{ip}: announcement failed: {e}"));
    }
}

async fn release(
    plan: &Plan<'_>,
    say: &Say,
    netlink: &Netlink,
    link: &LinkInfo,
    present: &[(IpAddr, u8)],
    failed: &mut Failures,
) {
    let ifname = &link.name;
    for net in &plan.group.ips {
        // Whatever prefix the IP is on the NIC with, it is the group's IP.
        let here: Vec<IpNet> = present
            .iter()
            .filter(|(a, _)| *a == net.addr)
            .map(|&(addr, prefix)| IpNet { addr, prefix })
            .collect();
        if here.is_empty() {
            say.line(format!("{net} not on {ifname}"));
        }
        for entry in here {
            if plan.dry_run {
                say.line(format!("would remove {entry} from {ifname}"));
                continue;
            }
            match netlink.del_addr(link.index, entry.addr, entry.prefix).await {
                Ok(AddrChange::Done) => say.line(format!("removed {entry} from {ifname}")),
                Ok(AddrChange::AlreadyDone) => say.line(format!("{entry} not on {ifname}")),
                Err(e) => failed.one(plan, say, entry, e),
            }
        }
    }
}

/// Reads the interface again: an IP not in the wanted state that no line
/// has reported yet (someone changed it meanwhile) is reported now.
async fn verify(
    plan: &Plan<'_>,
    say: &Say,
    netlink: &Netlink,
    link: &LinkInfo,
    failed: &mut Failures,
) {
    let now = match netlink.addrs(link.index).await {
        Ok(a) => a,
        Err(e) => {
            say.line(format!("cannot check the result: {e}"));
            return;
        }
    };
    for net in &plan.group.ips {
        let on = now.iter().any(|(a, _)| *a == net.addr);
        let wanted = plan.intent == Intent::Acquire;
        if on != wanted && !failed.ips.contains(&net.addr) {
            let why = if on {
                "still on the interface after the run"
            } else {
                "gone from the interface after the run (removed by someone else?)"
            };
            failed.one(plan, say, *net, why);
        }
    }
}
