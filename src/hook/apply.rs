//! The address work of one hook run: the IP planner (`ipplan`, the same
//! one the daemon drives) decides, this file carries its ops out once and
//! says one line per IP, then checks the interface really is in the
//! wanted state.
//!
//! The hook's planner policy differs from the daemon's: addresses are
//! added without a lease (nobody would renew it), an IP another host
//! answers for is reported and left alone (no re-probe), release removes
//! every configured address found whatever its mark (the legacy
//! `ip_manager` contract), and `--force` skips the probe. The run ends
//! when the planner is quiet, i.e. after its gratuitous-ARP repeats.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::event::Intent;
use super::Say;
use crate::config::{Group, IpNet};
use crate::ipplan::{Op, Planner, Policy, Seen, Wish};
use crate::ipwork::{self, Nic};
use crate::sys::{AddrChange, ArpSocket, Lifetime, LinkInfo, Netlink, SysError};

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

    fn policy(&self) -> Policy {
        Policy {
            probe: !self.force,
            probe_timeout: self.probe_timeout,
            reprobe: false,
            reprobe_interval: Duration::ZERO,
            lease: None,
            // A dry run announces nothing, so it waits for no repeats.
            garp_count: if self.dry_run { 1 } else { self.garp_count },
            garp_interval: self.garp_interval,
            startup_only_ours: false,
        }
    }
}

/// Does the work and returns how many of the group's IPs did not end in
/// the wanted state (in a dry run: would not), each already reported.
pub async fn apply(plan: &Plan<'_>, say: &Say) -> usize {
    let g = plan.group;
    let mut run = Run {
        plan,
        say,
        failed: BTreeSet::new(),
        announced: BTreeMap::new(),
        not_announced: None,
    };
    let netlink = match Netlink::new() {
        Ok(n) => n,
        Err(e) => return run.all_failed(&e),
    };
    let link = match netlink.link(&g.interface).await {
        Ok(l) => l,
        Err(e) => return run.all_failed(&e),
    };
    let nic = Nic {
        netlink: &netlink,
        ifindex: link.index,
        ifname: &link.name,
        mac: link.mac,
    };
    let present = match nic.read().await {
        Ok(p) => p,
        Err(e) => return run.all_failed(&e),
    };
    // Needed to probe and to announce; a link without a MAC (not Ethernet)
    // still gets its IPs, but ARP on it is meaningless.
    let arp = ArpSocket::open(link.index, link.mac.unwrap_or([0; 6]));
    run.drive(&nic, &link, &arp, &present).await;
    if !plan.dry_run {
        run.verify(&nic).await;
    }
    run.failed.len()
}

struct Run<'a> {
    plan: &'a Plan<'a>,
    say: &'a Say,
    /// The IPs reported as not in the wanted state.
    failed: BTreeSet<IpAddr>,
    /// Announcement errors by IP (the first one), for the closing line.
    announced: BTreeMap<IpAddr, Option<SysError>>,
    /// The ARP socket could not be opened: nothing was announced.
    not_announced: Option<String>,
}

impl Run<'_> {
    fn fail(&mut self, net: IpNet, why: impl std::fmt::Display) {
        self.say
            .line(format!("{net}: {}: {why}", self.plan.not_done()));
        self.failed.insert(net.addr);
    }

    /// Nothing could be done: one line per IP, all with the same reason.
    fn all_failed(&mut self, why: &SysError) -> usize {
        for net in &self.plan.group.ips {
            self.fail(*net, why);
        }
        self.failed.len()
    }

    /// Runs the planner until it is quiet.
    async fn drive(
        &mut self,
        nic: &Nic<'_>,
        link: &LinkInfo,
        arp: &Result<ArpSocket, SysError>,
        present: &[Seen],
    ) {
        let plan = self.plan;
        let ifname = nic.ifname;
        let mut planner = Planner::new(&plan.group.ips, plan.policy());
        let t0 = Instant::now();
        planner.observed(t0, present);
        let on = |ip: IpAddr| present.iter().any(|s| s.addr == ip);
        let acquire = plan.intent == Intent::Acquire;
        for net in &plan.group.ips {
            match (acquire, on(net.addr)) {
                (true, true) => self.say.line(format!("{net} already on {ifname}")),
                (false, false) => self.say.line(format!("{net} not on {ifname}")),
                _ => {}
            }
        }
        if acquire && plan.force && plan.group.ips.iter().any(|n| !on(n.addr)) {
            self.say.line("probe skipped (--force)");
        }
        planner.want(
            t0,
            Wish {
                master: acquire,
                epoch: 1,
                ..Wish::default()
            },
        );
        loop {
            while let Some(op) = planner.poll_op() {
                self.op(op, &mut planner, nic, arp).await;
            }
            if planner.is_quiet() {
                break;
            }
            let Some(at) = planner.next_deadline() else {
                break;
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            planner.timeout(Instant::now());
        }
        if !self.announced.is_empty() {
            self.announce_summary(link);
        }
    }

    async fn op(
        &mut self,
        op: Op,
        planner: &mut Planner,
        nic: &Nic<'_>,
        arp: &Result<ArpSocket, SysError>,
    ) {
        let plan = self.plan;
        let ifname = nic.ifname;
        match op {
            Op::Probe {
                token,
                ips,
                timeout,
            } => {
                let result = match arp {
                    Ok(arp) => ipwork::probe(arp, ifname, nic.ifindex, &ips, timeout).await,
                    Err(e) => Err(e.to_string()),
                };
                // A probe that could not be done proves nothing.
                for ip in &ips {
                    let why = match &result {
                        Ok(answered) => answered.get(ip).cloned(),
                        Err(e) => Some(format!("probe failed: {e}")),
                    };
                    if let (Some(why), Some(net)) = (why, self.net(*ip)) {
                        self.fail(net, why);
                    }
                }
                planner.probed(Instant::now(), token, result);
            }
            Op::Add { nets } => {
                let done = if plan.dry_run {
                    nets.iter()
                        .map(|n| {
                            self.say.line(format!("would add {n} on {ifname}"));
                            (*n, Ok(AddrChange::Done))
                        })
                        .collect()
                } else {
                    nic.add(&nets, Lifetime::Forever).await
                };
                let mut results = Vec::new();
                for (net, r) in done {
                    let r = match r {
                        Ok(change) => {
                            if !plan.dry_run {
                                self.say.line(match change {
                                    AddrChange::Done => format!("added {net} on {ifname}"),
                                    AddrChange::AlreadyDone => format!("{net} already on {ifname}"),
                                });
                            }
                            Ok(())
                        }
                        Err(e) => {
                            self.fail(net, &e);
                            Err(e.to_string())
                        }
                    };
                    results.push((net, r));
                }
                planner.added(Instant::now(), results);
            }
            Op::Remove { nets, .. } => {
                let done = if plan.dry_run {
                    nets.iter()
                        .map(|n| {
                            self.say.line(format!("would remove {n} from {ifname}"));
                            (*n, Ok(AddrChange::Done))
                        })
                        .collect()
                } else {
                    nic.remove(&nets).await
                };
                let mut results = Vec::new();
                for (entry, r) in done {
                    let r = match r {
                        Ok(AddrChange::Done) if plan.dry_run => Ok(()),
                        Ok(AddrChange::Done) => {
                            self.say.line(format!("removed {entry} from {ifname}"));
                            Ok(())
                        }
                        Ok(AddrChange::AlreadyDone) => {
                            self.say.line(format!("{entry} not on {ifname}"));
                            Ok(())
                        }
                        Err(e) => {
                            self.fail(entry, &e);
                            Err(e.to_string())
                        }
                    };
                    results.push((entry, r));
                }
                planner.removed(results);
            }
            Op::Announce { ips } if !plan.dry_run => {
                // No socket or no MAC: reported once in the closing line.
                let results = match arp {
                    Ok(arp) if nic.mac.is_some() => nic.announce(arp, &ips).await,
                    Ok(_) => ips.iter().map(|ip| (*ip, Ok(()))).collect(),
                    Err(e) => {
                        self.not_announced = Some(e.to_string());
                        ips.iter().map(|ip| (*ip, Ok(()))).collect()
                    }
                };
                for (ip, r) in results {
                    let slot = self.announced.entry(ip).or_insert(None);
                    if let (None, Err(e)) = (&slot, r) {
                        *slot = Some(e);
                    }
                }
            }
            // A dry run announces nothing; the hook has no leases to
            // renew, reads only at the start and in `verify`, and never
            // forces a takeover (`--force` only skips its probe).
            Op::Announce { .. }
            | Op::Refresh { .. }
            | Op::ReadAddrs
            | Op::Released { .. }
            | Op::Defend { .. }
            | Op::Note(_) => {}
        }
    }

    fn net(&self, ip: IpAddr) -> Option<IpNet> {
        self.plan.group.ips.iter().find(|n| n.addr == ip).copied()
    }

    /// One line for all announcement rounds, then one per IP that failed.
    fn announce_summary(&mut self, link: &LinkInfo) {
        let plan = self.plan;
        if link.mac.is_none() {
            self.say.line(format!(
                "{} has no MAC address: nothing to announce",
                link.name
            ));
            return;
        }
        if let Some(e) = self.not_announced.take() {
            self.say.line(format!("not announced: {e}"));
            return;
        }
        let announced = std::mem::take(&mut self.announced);
        let ok: Vec<String> = plan
            .group
            .ips
            .iter()
            .filter(|n| matches!(announced.get(&n.addr), Some(None)))
            .map(|n| n.addr.to_string())
            .collect();
        if !ok.is_empty() {
            self.say.line(format!(
                "announced {} on {} ({} times, {} s apart)",
                ok.join(", "),
                link.name,
                plan.garp_count,
                plan.garp_interval.as_secs_f64()
            ));
        }
        for (ip, e) in announced {
            if let Some(e) = e {
                self.say.line(format!("{ip}: announcement failed: {e}"));
            }
        }
    }

    /// Reads the interface again: an IP not in the wanted state that no line
    /// has reported yet (someone changed it meanwhile) is reported now.
    async fn verify(&mut self, nic: &Nic<'_>) {
        let now = match nic.read().await {
            Ok(a) => a,
            Err(e) => {
                self.say.line(format!("cannot check the result: {e}"));
                return;
            }
        };
        let wanted = self.plan.intent == Intent::Acquire;
        for net in &self.plan.group.ips {
            let on = now.iter().any(|s| s.addr == net.addr);
            if on != wanted && !self.failed.contains(&net.addr) {
                let why = if on {
                    "still on the interface after the run"
                } else {
                    "gone from the interface after the run (removed by someone else?)"
                };
                self.fail(*net, why);
            }
        }
    }
}
