//! The planner's rules with a virtual clock: no sockets, no netlink.

use super::force::REACT_GAP;
use super::*;
use std::net::Ipv4Addr;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
}

fn net(last: u8) -> IpNet {
    IpNet {
        addr: ip(last),
        prefix: 32,
    }
}

const PROBE: Duration = Duration::from_millis(200);

const LEASE: Lease = Lease {
    secs: 4,
    refresh_every: Duration::from_secs(1),
};

fn daemon_policy() -> Policy {
    Policy {
        probe: true,
        probe_timeout: PROBE,
        reprobe: true,
        reprobe_interval: Duration::from_millis(800),
        lease: Some(LEASE),
        garp_count: 3,
        garp_interval: Duration::from_millis(500),
        startup_only_ours: true,
    }
}

/// Without announcement repeats, so the only timers are the ones a test
/// looks at.
fn one_garp() -> Policy {
    Policy {
        garp_count: 1,
        ..daemon_policy()
    }
}

fn hook_policy() -> Policy {
    Policy {
        reprobe: false,
        lease: None,
        startup_only_ours: false,
        ..daemon_policy()
    }
}

fn ours(last: u8, left: Option<u32>) -> Seen {
    Seen {
        addr: ip(last),
        prefix: 32,
        ours: true,
        valid_left: left,
    }
}

fn foreign(last: u8, prefix: u8) -> Seen {
    Seen {
        addr: ip(last),
        prefix,
        ours: false,
        valid_left: None,
    }
}

fn drain(p: &mut Planner) -> Vec<Op> {
    std::iter::from_fn(|| p.poll_op()).collect()
}

fn master(epoch: u64) -> Wish {
    Wish {
        master: true,
        epoch,
        ..Wish::default()
    }
}

fn backup(epoch: u64) -> Wish {
    Wish {
        epoch,
        ..Wish::default()
    }
}

/// A planner that has read an empty interface and is asked to be master:
/// returns the probe's token.
fn probing(policy: Policy, ips: &[IpNet], t0: Instant) -> (Planner, u64) {
    let mut p = Planner::new(ips, policy);
    p.observed(t0, &[]);
    p.want(t0, master(1));
    let ops = drain(&mut p);
    let token = match ops.as_slice() {
        [Op::Probe {
            token, ips: probed, ..
        }] => {
            assert_eq!(probed.len(), ips.len());
            *token
        }
        other => panic!("expected one probe, got {other:?}"),
    };
    (p, token)
}

/// A master that probed `ips`, found them silent and added them.
fn holding(policy: Policy, ips: &[IpNet], t0: Instant) -> Planner {
    let (mut p, token) = probing(policy, ips, t0);
    p.probed(t0, token, silent());
    drain(&mut p);
    p.added(t0, ok(ips));
    drain(&mut p);
    assert_eq!(p.held().len(), ips.len());
    p
}

fn ok(nets: &[IpNet]) -> Vec<(IpNet, Result<(), String>)> {
    nets.iter().map(|n| (*n, Ok(()))).collect()
}

fn silent() -> Result<BTreeMap<IpAddr, String>, String> {
    Ok(BTreeMap::new())
}

#[test]
fn silent_ips_are_added_then_announced_and_repeated() {
    let t0 = Instant::now();
    let (mut p, token) = probing(daemon_policy(), &[net(10), net(11)], t0);
    assert_eq!(p.states()[&ip(10)], IpState::Probing);
    p.probed(t0, token, silent());
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(10), net(11)]
        }]
    );
    p.added(t0, ok(&[net(10), net(11)]));
    assert_eq!(
        drain(&mut p),
        vec![Op::Announce {
            ips: vec![ip(10), ip(11)]
        }]
    );
    assert_eq!(p.held(), vec![ip(10), ip(11)]);
    // Two more rounds, 500 ms apart.
    let mut rounds = 0;
    let mut now = t0;
    for _ in 0..10 {
        now += Duration::from_millis(500);
        p.timeout(now);
        rounds += drain(&mut p)
            .iter()
            .filter(|o| matches!(o, Op::Announce { .. }))
            .count();
    }
    assert_eq!(rounds, 2, "garp_count 3 = the first round and two repeats");
}

#[test]
fn an_ip_somebody_answers_for_is_never_added_and_is_reprobed_with_backoff() {
    let t0 = Instant::now();
    // No lease either: the re-probe is the only timer.
    let policy = Policy {
        lease: None,
        ..one_garp()
    };
    let (mut p, token) = probing(policy, &[net(10), net(11)], t0);
    let answered = BTreeMap::from([(ip(11), "answered ARP from 02:00:00:00:00:02".to_string())]);
    p.probed(t0, token, Ok(answered.clone()));
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(10)]
        }]
    );
    p.added(t0, ok(&[net(10)]));
    drain(&mut p);
    assert!(matches!(p.states()[&ip(11)], IpState::Conflict(ref w) if w.contains("ARP")));
    // Re-probes after 50, then 100, 200, 400, 800, 800 ms.
    let mut now = t0;
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let due = p.next_deadline().expect("a re-probe is scheduled");
        gaps.push((due - now).as_millis());
        now = due;
        p.timeout(now);
        let probe = drain(&mut p).into_iter().find_map(|o| match o {
            Op::Probe { token, ips, .. } => Some((token, ips)),
            _ => None,
        });
        let (token, ips) = probe.expect("re-probe");
        assert_eq!(ips, vec![ip(11)], "only the conflicting IP");
        p.probed(now, token, Ok(answered.clone()));
        assert!(!drain(&mut p).iter().any(|o| matches!(o, Op::Add { .. })));
    }
    assert_eq!(gaps, vec![50, 100, 200, 400, 800, 800]);
    // Falls silent: taken.
    let due = p.next_deadline().unwrap();
    p.timeout(due);
    let token = drain(&mut p)
        .into_iter()
        .find_map(|o| match o {
            Op::Probe { token, .. } => Some(token),
            _ => None,
        })
        .unwrap();
    p.probed(due, token, silent());
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(11)]
        }]
    );
}

#[test]
fn a_failed_probe_takes_nothing() {
    let t0 = Instant::now();
    let (mut p, token) = probing(daemon_policy(), &[net(10)], t0);
    p.probed(t0, token, Err("ARP socket closed".into()));
    assert!(drain(&mut p).is_empty());
    assert!(matches!(p.states()[&ip(10)], IpState::Failed(_)));
    assert!(p.next_deadline().is_some(), "it tries again");
}

#[test]
fn a_probe_answer_after_the_wish_changed_adds_nothing() {
    let t0 = Instant::now();
    let (mut p, token) = probing(daemon_policy(), &[net(10)], t0);
    p.want(t0, backup(2));
    assert_eq!(drain(&mut p), vec![Op::Released { epoch: 2 }]);
    p.probed(t0, token, silent());
    assert!(drain(&mut p).is_empty());
    // A new mastership probes anew; the old token stays dead.
    p.want(t0, master(3));
    let new_token = match drain(&mut p).as_slice() {
        [Op::Probe { token, .. }] => *token,
        other => panic!("{other:?}"),
    };
    p.probed(t0, token, silent());
    assert!(drain(&mut p).is_empty(), "stale token");
    p.probed(t0, new_token, silent());
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(10)]
        }]
    );
}

#[test]
fn release_removes_what_is_on_the_nic_then_reports_released() {
    let t0 = Instant::now();
    let mut p = holding(daemon_policy(), &[net(10), net(11)], t0);
    p.want(t0, backup(2));
    let ops = drain(&mut p);
    assert_eq!(
        ops,
        vec![Op::Remove {
            nets: vec![net(10), net(11)],
            why: "not master"
        }],
        "no Released before the removal is done"
    );
    p.removed(ok(&[net(10), net(11)]));
    assert_eq!(drain(&mut p), vec![Op::Released { epoch: 2 }]);
    assert!(p.held().is_empty());
    assert!(p.is_quiet());
}

#[test]
fn startup_reconcile_removes_only_our_marked_addresses() {
    let t0 = Instant::now();
    let mut p = Planner::new(&[net(10), net(11)], daemon_policy());
    // .10 was left by a previous run (ours, permanent); .11 is somebody
    // else's (the host's own address, say), with another prefix.
    p.observed(t0, &[ours(10, None), foreign(11, 24)]);
    p.want(t0, backup(0));
    let ops = drain(&mut p);
    assert!(
        ops.contains(&Op::Note(Note::NotOurs { ip: ip(11) })),
        "{ops:?}"
    );
    assert!(ops.contains(&Op::Remove {
        nets: vec![net(10)],
        why: "start-up reconcile: not master"
    }));
    // Later releases remove every configured address found, whatever its
    // prefix (it is the group's IP and must not stay on two hosts).
    p.removed(ok(&[net(10)]));
    p.want(t0, master(1));
    drain(&mut p);
    p.want(t0, backup(2));
    p.addr_event(true, foreign(11, 24), 1234);
    drain(&mut p);
    p.want(t0, master(3));
    drain(&mut p);
    p.want(t0, backup(4));
    let ops = drain(&mut p);
    assert!(
        ops.contains(&Op::Remove {
            nets: vec![IpNet {
                addr: ip(11),
                prefix: 24
            }],
            why: "not master"
        }),
        "{ops:?}"
    );
}

#[test]
fn the_hook_releases_every_configured_address_it_finds() {
    let t0 = Instant::now();
    let mut p = Planner::new(&[net(10)], hook_policy());
    p.observed(t0, &[foreign(10, 24)]);
    p.want(t0, backup(0));
    assert_eq!(
        drain(&mut p),
        vec![Op::Remove {
            nets: vec![IpNet {
                addr: ip(10),
                prefix: 24
            }],
            why: "start-up reconcile: not master"
        }]
    );
}

#[test]
fn our_own_leased_ips_found_at_start_are_kept_and_renewed_not_probed() {
    let t0 = Instant::now();
    let mut p = Planner::new(&[net(10), net(11)], daemon_policy());
    p.observed(t0, &[ours(10, Some(3))]);
    p.want(t0, master(1));
    let ops = drain(&mut p);
    assert!(ops.contains(&Op::Note(Note::Adopted { ips: vec![ip(10)] })));
    assert!(ops.contains(&Op::ReadAddrs));
    assert!(ops.contains(&Op::Announce { ips: vec![ip(10)] }));
    assert!(
        ops.contains(&Op::Probe {
            token: 1,
            ips: vec![ip(11)],
            timeout: PROBE,
        }),
        "only the missing IP is probed: {ops:?}"
    );
    assert_eq!(p.states()[&ip(10)], IpState::Held);
    // The read confirms it: the lease is renewed at once.
    p.observed(t0, &[ours(10, Some(3))]);
    assert_eq!(
        drain(&mut p),
        vec![Op::Refresh {
            nets: vec![net(10)],
            not_after: t0 + REFRESH_FRESH_FOR
        }]
    );
}

#[test]
fn leases_are_renewed_every_period_only_after_a_read_shows_time_left() {
    let t0 = Instant::now();
    let mut p = holding(one_garp(), &[net(10), net(11)], t0);
    let t1 = t0 + LEASE.refresh_every;
    assert!(p.next_deadline().is_some_and(|d| d <= t1));
    p.timeout(t1);
    let ops = drain(&mut p);
    assert_eq!(ops, vec![Op::ReadAddrs], "read first, never refresh blind");
    // .10 has plenty left; .11 is about to expire (we were frozen): it is
    // removed and taken again through a probe, never refreshed.
    p.observed(t1, &[ours(10, Some(3)), ours(11, Some(1))]);
    let ops = drain(&mut p);
    assert!(ops.contains(&Op::Note(Note::LeaseRunningOut {
        ip: ip(11),
        left: 1
    })));
    assert!(ops.contains(&Op::Remove {
        nets: vec![net(11)],
        why: "lease too close to its end to renew"
    }));
    assert!(ops.contains(&Op::Refresh {
        nets: vec![net(10)],
        not_after: t1 + REFRESH_FRESH_FOR
    }));
    assert!(ops
        .iter()
        .any(|o| matches!(o, Op::Probe { ips, .. } if ips == &vec![ip(11)])));
    assert_eq!(p.states()[&ip(11)], IpState::Probing);
    // The next period comes round again.
    assert_eq!(p.next_deadline(), Some(t1 + LEASE.refresh_every));
}

#[test]
fn a_held_ip_removed_by_someone_is_not_held_and_is_taken_back_after_a_probe() {
    let t0 = Instant::now();
    let mut p = holding(daemon_policy(), &[net(10)], t0);
    p.addr_event(false, ours(10, None), 4321);
    assert_eq!(
        p.states()[&ip(10)],
        IpState::Absent,
        "never reported held once the kernel said it went"
    );
    assert_eq!(drain(&mut p), vec![Op::ReadAddrs]);
    p.observed(t0, &[]);
    let ops = drain(&mut p);
    assert_eq!(
        ops,
        vec![
            Op::Note(Note::Lost {
                ip: ip(10),
                by: Some(4321)
            }),
            Op::Probe {
                token: 2,
                ips: vec![ip(10)],
                timeout: PROBE,
            }
        ]
    );
    p.probed(t0, 2, silent());
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(10)]
        }]
    );
}

#[test]
fn a_stale_removal_event_changes_nothing_once_a_read_shows_the_ip() {
    let t0 = Instant::now();
    let mut p = holding(daemon_policy(), &[net(10)], t0);
    p.addr_event(false, ours(10, None), 1);
    drain(&mut p);
    p.observed(t0, &[ours(10, Some(4))]);
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.held(), vec![ip(10)]);
}

#[test]
fn the_hook_reports_a_conflict_once_and_adds_without_probe_when_forced() {
    let t0 = Instant::now();
    let (mut p, token) = probing(hook_policy(), &[net(10)], t0);
    p.probed(t0, token, Ok(BTreeMap::from([(ip(10), "x".to_string())])));
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.states()[&ip(10)], IpState::Conflict("x".into()));
    assert!(p.is_quiet(), "no re-probe for the hook");

    let mut f = Planner::new(
        &[net(10), net(11)],
        Policy {
            probe: false,
            ..hook_policy()
        },
    );
    // Already there (any mark): kept and announced, not added again.
    f.observed(t0, &[foreign(11, 32)]);
    f.want(t0, master(1));
    assert_eq!(
        drain(&mut f),
        vec![
            Op::Announce { ips: vec![ip(11)] },
            Op::Add {
                nets: vec![net(10)]
            }
        ]
    );
}

#[test]
fn a_reload_removes_dropped_ips_and_a_master_acquires_added_ones() {
    let t0 = Instant::now();
    let mut p = holding(daemon_policy(), &[net(10)], t0);
    p.set_ips(t0, &[net(11)]);
    assert_eq!(
        drain(&mut p),
        vec![Op::Remove {
            nets: vec![net(10)],
            why: "dropped from the group"
        }]
    );
    p.timeout(t0);
    assert!(drain(&mut p).contains(&Op::Probe {
        token: 2,
        ips: vec![ip(11)],
        timeout: PROBE,
    }));
}

#[test]
fn stop_removes_everything_and_ends_further_work() {
    let t0 = Instant::now();
    let mut p = holding(daemon_policy(), &[net(10)], t0);
    p.want(
        t0,
        Wish {
            stop: true,
            ..master(1)
        },
    );
    assert_eq!(
        drain(&mut p),
        vec![Op::Remove {
            nets: vec![net(10)],
            why: "stopping"
        }]
    );
    p.want(t0, master(5));
    assert!(drain(&mut p).is_empty(), "stopped for good");
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn the_lease_outlives_our_own_master_down_interval_by_one_refresh() {
    // advbase 1, advskew 0: master down 3 s -> lease 4 s, renewed every 1 s.
    assert_eq!(
        Lease::for_timers(1, 0),
        Lease {
            secs: 4,
            refresh_every: Duration::from_secs(1)
        }
    );
    // 3 x 2 + 100/256 = 6.39 s -> 7 + 2.
    assert_eq!(Lease::for_timers(2, 100).secs, 9);
    for advbase in 1..=255u8 {
        for advskew in [0u8, 1, 128, 254] {
            let l = Lease::for_timers(advbase, advskew);
            let down = crate::carp::fsm::master_down_interval(advbase, advskew);
            let tolerated = Duration::from_secs(u64::from(l.secs)) - l.refresh_every;
            assert!(tolerated >= down, "{advbase}/{advskew}: {l:?}");
        }
    }
}

#[test]
fn a_held_ip_gone_after_its_lease_ended_is_blamed_on_the_kernel() {
    let t0 = Instant::now();
    let mut p = holding(one_garp(), &[net(10)], t0);
    // Frozen past the lease: the first thing after waking is the refresh
    // timer, whose read finds the IP gone before any event is seen.
    let woke = t0 + Duration::from_secs(u64::from(LEASE.secs) + 2);
    p.timeout(woke);
    assert_eq!(drain(&mut p), vec![Op::ReadAddrs]);
    p.observed(woke, &[]);
    let ops = drain(&mut p);
    assert_eq!(
        ops.first(),
        Some(&Op::Note(Note::Lost {
            ip: ip(10),
            by: Some(0)
        }))
    );
    assert!(ops.iter().any(|o| matches!(o, Op::Probe { .. })), "{ops:?}");
}

// Forced takeover (force.rs; docs/safety.md, "Forced takeover").

/// A master holding 10 whose 11 another host answers for.
fn contested(t0: Instant) -> Planner {
    let policy = Policy {
        lease: None,
        ..one_garp()
    };
    let (mut p, token) = probing(policy, &[net(10), net(11)], t0);
    let zombie = BTreeMap::from([(ip(11), "answered ARP from 02:00:00:00:00:09".to_string())]);
    p.probed(t0, token, Ok(zombie));
    drain(&mut p);
    p.added(t0, ok(&[net(10)]));
    drain(&mut p);
    p
}

fn claims(ips: &[u8]) -> Result<BTreeMap<IpAddr, String>, String> {
    Ok(ips
        .iter()
        .map(|l| (ip(*l), "answered ARP from 02:00:00:00:00:09".to_string()))
        .collect())
}

/// Runs the timer until the next look for claims; returns its token.
fn next_look(p: &mut Planner, now: &mut Instant) -> (u64, Vec<IpAddr>) {
    for _ in 0..10 {
        let due = p.next_deadline().expect("a look is scheduled while forced");
        *now = due;
        p.timeout(due);
        if let Some(look) = drain(p).into_iter().find_map(|o| match o {
            Op::Defend { token, ips } => Some((token, ips)),
            _ => None,
        }) {
            return look;
        }
    }
    panic!("no look for claims");
}

#[test]
fn a_forced_takeover_adds_without_probing_only_on_a_master() {
    let t0 = Instant::now();
    let mut p = Planner::new(&[net(11)], one_garp());
    p.observed(t0, &[]);
    p.want(t0, backup(1));
    drain(&mut p);
    assert_eq!(p.force(t0), Err(ForceRefused::NotMaster));

    let mut p = contested(t0);
    assert_eq!(p.force(t0), Ok(vec![ip(11)]));
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(11)]
        }],
        "no probe: the operator confirmed the answering host is a zombie"
    );
    assert_eq!(p.force(t0), Err(ForceRefused::Already));
    p.added(t0, ok(&[net(11)]));
    assert_eq!(drain(&mut p), vec![Op::Announce { ips: vec![ip(11)] }]);
    assert_eq!(p.held(), vec![ip(10), ip(11)]);
    let view = p.force_view().expect("forced");
    assert_eq!(view.contested, vec![ip(11)]);
}

#[test]
fn forced_ips_are_defended_until_the_zombie_is_silent_three_looks() {
    let t0 = Instant::now();
    let mut p = contested(t0);
    p.force(t0).unwrap();
    drain(&mut p);
    p.added(t0, ok(&[net(11)]));
    drain(&mut p);
    let mut now = t0;
    // The zombie still claims 11: announced again at once, every look.
    for _ in 0..3 {
        let (token, ips) = next_look(&mut p, &mut now);
        assert_eq!(ips, vec![ip(10), ip(11)], "every held IP is looked at");
        p.defended(now, token, claims(&[11]));
        assert_eq!(drain(&mut p), vec![Op::Announce { ips: vec![ip(11)] }]);
        assert!(p.is_forced());
    }
    // Silent twice, then claims again: the count starts over.
    for _ in 0..2 {
        let (token, _) = next_look(&mut p, &mut now);
        p.defended(now, token, claims(&[]));
    }
    let (token, _) = next_look(&mut p, &mut now);
    p.defended(now, token, claims(&[11]));
    assert!(p.is_forced());
    drain(&mut p);
    // A look that could not be done proves nothing either way.
    let (token, _) = next_look(&mut p, &mut now);
    p.defended(now, token, Err("ARP socket closed".into()));
    assert!(p.is_forced());
    for _ in 0..SILENT_ROUNDS {
        assert!(p.is_forced());
        let (token, _) = next_look(&mut p, &mut now);
        p.defended(now, token, claims(&[]));
    }
    assert!(!p.is_forced());
    assert_eq!(
        drain(&mut p),
        vec![Op::Note(Note::ForceEnded {
            why: ForceEnd::ZombieSilent
        })]
    );
    assert_eq!(p.held(), vec![ip(10), ip(11)], "the IPs stay");
}

#[test]
fn arp_requests_for_a_forced_ip_are_answered_with_an_announcement_rate_limited() {
    let t0 = Instant::now();
    let mut p = contested(t0);
    // Not forced: ARP frames change nothing.
    p.arp_seen(t0, ip(10), false);
    assert!(drain(&mut p).is_empty());
    p.force(t0).unwrap();
    drain(&mut p);
    p.added(t0, ok(&[net(11)]));
    drain(&mut p);
    let t1 = t0 + Duration::from_millis(200);
    p.arp_seen(t1, ip(11), false);
    assert_eq!(drain(&mut p), vec![Op::Announce { ips: vec![ip(11)] }]);
    // A second request 10 ms later: already answered.
    p.arp_seen(t1 + Duration::from_millis(10), ip(11), false);
    assert!(drain(&mut p).is_empty());
    // The zombie speaking for it is answered on its own budget, and does
    // not use up the next request's.
    p.arp_seen(t1 + Duration::from_millis(20), ip(11), true);
    assert_eq!(drain(&mut p), vec![Op::Announce { ips: vec![ip(11)] }]);
    p.arp_seen(t1 + Duration::from_millis(30), ip(11), true);
    assert!(drain(&mut p).is_empty());
    p.arp_seen(t1 + REACT_GAP, ip(11), false);
    assert_eq!(drain(&mut p), vec![Op::Announce { ips: vec![ip(11)] }]);
    // An IP this host does not hold is not announced.
    p.arp_seen(t1 + REACT_GAP, ip(12), true);
    assert!(drain(&mut p).is_empty());
    let view = p.force_view().unwrap();
    assert_eq!(view.claims, 2);
    assert!(view.last_claim.is_some());
}

#[test]
fn undo_gives_back_what_is_still_claimed_and_reprobes_it() {
    let t0 = Instant::now();
    let mut p = contested(t0);
    assert_eq!(p.unforce(t0), Err(ForceRefused::NotForced));
    p.force(t0).unwrap();
    drain(&mut p);
    p.added(t0, ok(&[net(11)]));
    drain(&mut p);
    let mut now = t0;
    let (token, _) = next_look(&mut p, &mut now);
    p.defended(now, token, claims(&[11]));
    drain(&mut p);
    assert_eq!(p.unforce(now), Ok(vec![ip(11)]));
    let ops = drain(&mut p);
    assert_eq!(
        ops,
        vec![
            Op::Remove {
                nets: vec![net(11)],
                why: "forced takeover undone: another host still claims it"
            },
            Op::Note(Note::ForceEnded {
                why: ForceEnd::Undone
            })
        ]
    );
    p.removed(ok(&[net(11)]));
    assert!(matches!(p.states()[&ip(11)], IpState::Conflict(_)));
    assert_eq!(p.held(), vec![ip(10)]);
    // Re-probed as any conflict, with the probe again.
    let due = p.next_deadline().expect("re-probe");
    p.timeout(due);
    assert!(drain(&mut p)
        .iter()
        .any(|o| matches!(o, Op::Probe { ips, .. } if *ips == vec![ip(11)])));
}

#[test]
fn losing_mastership_ends_the_force_and_releases_as_always() {
    let t0 = Instant::now();
    let mut p = contested(t0);
    p.force(t0).unwrap();
    drain(&mut p);
    p.added(t0, ok(&[net(11)]));
    drain(&mut p);
    p.want(t0, backup(2));
    let ops = drain(&mut p);
    assert_eq!(
        ops.first(),
        Some(&Op::Note(Note::ForceEnded {
            why: ForceEnd::MastershipEnded
        }))
    );
    assert!(ops
        .iter()
        .any(|o| matches!(o, Op::Remove { nets, .. } if nets.len() == 2)));
    assert!(!p.is_forced());
    // Master again: probing as usual, no force carried over.
    p.removed(ok(&[net(10), net(11)]));
    drain(&mut p);
    p.want(t0, master(3));
    assert!(drain(&mut p).iter().any(|o| matches!(o, Op::Probe { .. })));
}

// Fast takeovers (handover.rs; docs/safety.md §2.5, §2.6).

fn backup_until(epoch: u64, master_down_at: Instant) -> Wish {
    Wish {
        epoch,
        master_down_at: Some(master_down_at),
        ..Wish::default()
    }
}

/// A backup whose master goes silent: master down at `t0 + 3 s`.
fn waiting(t0: Instant) -> (Planner, Instant) {
    let mut p = Planner::new(&[net(10), net(11)], one_garp());
    p.observed(t0, &[]);
    let down = t0 + Duration::from_secs(3);
    p.want(t0, backup_until(1, down));
    drain(&mut p);
    (p, down)
}

/// Runs the timer to the pre-probe; returns its token and when it started.
fn preprobe(p: &mut Planner) -> (u64, Instant) {
    let at = p.next_deadline().expect("the pre-probe is scheduled");
    p.timeout(at);
    match drain(p).as_slice() {
        [Op::Probe {
            token,
            ips,
            timeout,
        }] => {
            assert_eq!(ips, &vec![ip(10), ip(11)]);
            assert_eq!(*timeout, PROBE, "a pre-probe listens the full timeout");
            (*token, at)
        }
        other => panic!("expected the pre-probe, got {other:?}"),
    }
}

fn master_at(epoch: u64, handover: bool) -> Wish {
    Wish {
        handover,
        ..master(epoch)
    }
}

#[test]
fn the_probe_runs_in_the_last_probe_timeout_of_the_master_down_wait() {
    let t0 = Instant::now();
    let (mut p, down) = waiting(t0);
    let (token, started) = preprobe(&mut p);
    assert!(started + PROBE < down, "it ends before the wait does");
    assert!(down - started <= PROBE + Duration::from_millis(20));
    p.probed(started + PROBE, token, silent());
    assert!(drain(&mut p).is_empty(), "a backup takes nothing");
    assert!(p.held().is_empty());
    // Master down: added at once, no probe after the wait.
    p.want(down, master(2));
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(10), net(11)]
        }]
    );
}

#[test]
fn an_advert_during_the_pre_probe_drops_its_verdict() {
    let t0 = Instant::now();
    let (mut p, down) = waiting(t0);
    let (token, started) = preprobe(&mut p);
    // The master's advert arrives: the wait starts over.
    let later = down + Duration::from_secs(1);
    p.want(started, backup_until(1, later));
    p.probed(started + PROBE, token, silent());
    drain(&mut p);
    // Mastership at the old deadline (say, by a bow-out): probed afresh.
    p.want(down, master(2));
    assert!(matches!(drain(&mut p).as_slice(), [Op::Probe { .. }]));
}

#[test]
fn a_stale_pre_probe_is_not_used_and_a_running_one_is_adopted() {
    let t0 = Instant::now();
    let (mut p, down) = waiting(t0);
    let (token, started) = preprobe(&mut p);
    p.probed(started + PROBE, token, silent());
    // Mastership comes long after the verdict (e.g. a slow loop): probe.
    p.want(started + PROBE + PREPROBE_FRESH * 2, master(2));
    assert!(matches!(drain(&mut p).as_slice(), [Op::Probe { .. }]));

    let (mut p, down2) = waiting(t0);
    let (token, _) = preprobe(&mut p);
    // Mastership while the pre-probe still listens: no second probe; its
    // answer decides, and a conflict it found is a conflict.
    p.want(down2, master(2));
    assert!(drain(&mut p).is_empty(), "the running pre-probe is adopted");
    let zombie = BTreeMap::from([(ip(11), "answered ARP from 02:00:00:00:00:09".to_string())]);
    p.probed(down2 + Duration::from_millis(5), token, Ok(zombie));
    assert_eq!(
        drain(&mut p),
        vec![Op::Add {
            nets: vec![net(10)]
        }]
    );
    assert!(matches!(p.states()[&ip(11)], IpState::Conflict(_)));
    let _ = down;
}

#[test]
fn a_handover_probes_quickly_then_looks_for_late_claims() {
    let t0 = Instant::now();
    let mut p = Planner::new(&[net(10), net(11)], one_garp());
    p.observed(t0, &[]);
    p.want(t0, backup(1));
    drain(&mut p);
    // The master bowed out: quick probe.
    p.want(t0, master_at(2, true));
    let token = match drain(&mut p).as_slice() {
        [Op::Probe { token, timeout, .. }] => {
            assert_eq!(*timeout, QUICK_PROBE);
            *token
        }
        other => panic!("{other:?}"),
    };
    let t1 = t0 + QUICK_PROBE;
    p.probed(t1, token, silent());
    drain(&mut p);
    p.added(t1, ok(&[net(10), net(11)]));
    let look = drain(&mut p).into_iter().find_map(|o| match o {
        Op::Defend { token, ips } => Some((token, ips)),
        _ => None,
    });
    let (look, ips) = look.expect("a full look follows the quick verdict");
    assert_eq!(ips, vec![ip(10), ip(11)]);
    // A slow host answers for 11 during the full look: given back.
    let late = BTreeMap::from([(ip(11), "answered ARP from 02:00:00:00:00:09".to_string())]);
    p.defended(t1 + PROBE, look, Ok(late));
    let ops = drain(&mut p);
    assert_eq!(
        ops,
        vec![
            Op::Note(Note::LateClaim { ips: vec![ip(11)] }),
            Op::Remove {
                nets: vec![net(11)],
                why: "another host answered for it after the quick handover probe"
            }
        ]
    );
    p.removed(ok(&[net(11)]));
    assert!(
        matches!(p.states()[&ip(11)], IpState::Conflict(ref w) if w.contains("quick handover"))
    );
    assert_eq!(p.held(), vec![ip(10)]);
}

#[test]
fn a_handover_re_probes_a_releasing_master_quickly_then_normally() {
    let t0 = Instant::now();
    let policy = Policy {
        lease: None,
        ..one_garp()
    };
    let mut p = Planner::new(&[net(10)], policy);
    p.observed(t0, &[]);
    p.want(t0, master_at(1, true));
    let token = match drain(&mut p).as_slice() {
        [Op::Probe { token, .. }] => *token,
        other => panic!("{other:?}"),
    };
    // The preempted master still holds it for a moment.
    let old = BTreeMap::from([(ip(10), "answered ARP from 02:00:00:00:00:01".to_string())]);
    p.probed(t0 + Duration::from_millis(1), token, Ok(old.clone()));
    drain(&mut p);
    let due = p.next_deadline().expect("re-probe");
    assert_eq!(due - (t0 + Duration::from_millis(1)), QUICK_REPROBE);
    p.timeout(due);
    assert!(matches!(drain(&mut p).as_slice(),
        [Op::Probe { timeout, .. }] if *timeout == QUICK_PROBE));
    // Past the window: full probes with the usual backoff.
    let late = t0 + QUICK_WINDOW;
    let token = p.probing.expect("probing");
    p.probed(late, token, Ok(old));
    drain(&mut p);
    let due = p.next_deadline().expect("re-probe");
    p.timeout(due);
    assert!(matches!(drain(&mut p).as_slice(),
        [Op::Probe { timeout, .. }] if *timeout == PROBE));
}
