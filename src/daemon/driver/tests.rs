//! The group driver's rules with a virtual clock: no sockets.

use super::*;
use crate::carp::fsm::{master_down_interval, FsmConfig, BOW_OUT};
use crate::carp::packet::AuthDiagnosis;
use crate::health::{GroupHealth, Outcome};
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

pub(super) fn key() -> AuthKey {
    AuthKey::new(b"secret", &["203.0.113.10".parse().expect("literal")])
}

pub(super) fn driver(advskew: u8, adopt: bool, t0: Instant) -> GroupDriver {
    let fsm = Fsm::new(
        FsmConfig {
            vhid: 10,
            advbase: 1,
            advskew,
            preempt: true,
            local: ip(1),
        },
        t0,
    );
    GroupDriver::new(fsm, key(), 41, adopt)
}

pub(super) fn sent(d: &mut GroupDriver) -> Vec<Advert> {
    std::iter::from_fn(|| d.poll_transmit())
        .map(|b| Advert::decode(&b).expect("our own adverts decode"))
        .collect()
}

pub(super) fn events(d: &mut GroupDriver) -> Vec<Event> {
    std::iter::from_fn(|| d.poll_event()).collect()
}

/// Up, silent LAN, master after the master-down interval.
fn master(d: &mut GroupDriver, t0: Instant) -> Instant {
    d.handle_link(t0, true);
    let t = t0 + master_down_interval(1, d.fsm().config().advskew);
    d.handle_timeout(t);
    assert_eq!(d.fsm().state(), State::Master);
    sent(d);
    events(d);
    t
}

#[test]
fn adverts_are_signed_with_our_key_and_a_counter_that_moves_forward() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let mut now = master(&mut d, t0);
    let mut counters = Vec::new();
    for _ in 0..3 {
        now = d.next_deadline().expect("a master always has a deadline");
        d.handle_timeout(now);
        let adv = sent(&mut d);
        assert_eq!(adv.len(), 1);
        assert!(key().verify(&adv[0]), "signed with the group's key");
        assert_eq!((adv[0].vhid, adv[0].advbase, adv[0].advskew), (10, 1, 0));
        counters.push(adv[0].counter);
    }
    assert!(
        counters.windows(2).all(|w| w[1] == w[0] + 1),
        "{counters:?}"
    );
    assert_eq!(d.stats().adverts_sent, 4);
    assert_eq!(d.last_sent(), Some(now));
}

#[test]
fn the_first_link_up_starts_the_election_or_resumes_on_our_own_leased_ips() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    d.handle_link(t0, true);
    assert_eq!(d.fsm().state(), State::Backup);
    assert!(!d.wish().master);

    let mut r = driver(0, true, t0);
    r.handle_link(t0, true);
    assert_eq!(r.fsm().state(), State::Master, "resumed at once");
    assert!(r.wish().master && r.wish().epoch == 1);
    assert_eq!(sent(&mut r).len(), 1, "advertises at once");
    let ev = events(&mut r);
    assert!(ev.contains(&Event::Resuming), "{ev:?}");
    // Losing the link releases; getting it back starts as BACKUP, never
    // resumes a second time.
    r.handle_link(t0, false);
    assert!(!r.wish().master);
    r.handle_link(t0, true);
    assert_eq!(r.fsm().state(), State::Backup);
    assert_eq!(r.fsm().reason(), &Reason::LinkUp);
}

#[test]
fn a_demotion_advert_waits_until_the_ips_are_gone() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    let epoch = d.wish().epoch;
    d.set_demoted(t, true);
    assert!(!d.wish().master, "the IP task is told to release first");
    assert!(sent(&mut d).is_empty(), "no advert before the IPs are gone");
    assert!(d.is_holding());
    d.handle_released(epoch);
    let adv = sent(&mut d);
    assert_eq!(adv.len(), 1);
    assert_eq!((adv[0].advbase, adv[0].advskew), (BOW_OUT, BOW_OUT));
    assert!(!d.is_holding());
}

#[test]
fn a_held_advert_goes_out_anyway_after_the_release_wait() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    d.set_demoted(t, true);
    assert_eq!(d.next_deadline(), Some(t + RELEASE_WAIT));
    d.handle_timeout(t + RELEASE_WAIT);
    assert_eq!(sent(&mut d).len(), 1);
    assert!(events(&mut d).contains(&Event::ReleaseLate));
}

#[test]
fn shutdown_of_a_master_stops_the_ip_task_then_bows_out() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    let epoch = d.wish().epoch;
    d.shutdown(t);
    assert!(d.wish().stop && !d.wish().master);
    assert!(
        sent(&mut d).is_empty(),
        "bow-out only after the IPs are gone"
    );
    d.handle_released(epoch);
    let adv = sent(&mut d);
    assert_eq!(adv.len(), 1);
    assert!(adv[0].is_bow_out());
}

#[test]
fn a_stale_release_report_does_not_free_a_newer_hold() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    let epoch = d.wish().epoch;
    d.handle_released(epoch - 1); // the start-up reconcile's report
    d.shutdown(t);
    assert!(sent(&mut d).is_empty());
    d.handle_released(epoch - 1);
    assert!(
        sent(&mut d).is_empty(),
        "still waiting for the stop's release"
    );
    d.handle_released(epoch);
    assert_eq!(sent(&mut d).len(), 1);
}

#[test]
fn preempting_a_live_master_waits_a_moment_before_probing() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    d.handle_link(t0, true);
    d.handle_advert(t0, ip(2), 1, 100);
    assert_eq!(d.fsm().state(), State::Master);
    assert_eq!(d.wish().settle, PREEMPT_SETTLE);
    assert_eq!(sent(&mut d).len(), 1, "our advert makes it step down");
}

#[test]
fn ties_are_counted_and_warned_about_once_a_minute_per_peer() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    for i in 0..5u64 {
        d.handle_advert(t + Duration::from_secs(i), ip(9), 1, 0);
    }
    let ties: Vec<Event> = events(&mut d)
        .into_iter()
        .filter(|e| matches!(e, Event::Tie { .. }))
        .collect();
    assert_eq!(
        ties,
        vec![Event::Tie {
            peer: ip(9),
            advbase: 1,
            advskew: 0
        }]
    );
    assert_eq!(d.stats().ties[&ip(9)].count, 5);
    d.handle_advert(t + TIE_LOG_EVERY + Duration::from_secs(1), ip(9), 1, 0);
    assert!(events(&mut d)
        .iter()
        .any(|e| matches!(e, Event::Tie { .. })));
}

#[test]
fn rejects_are_counted_by_class_and_the_last_auth_failure_kept() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let from = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    d.handle_reject(t0, &Reject::BadAdvbase { vhid: 10 }, from);
    d.handle_reject(
        t0,
        &Reject::AuthFailed {
            vhid: 10,
            diagnosis: AuthDiagnosis::PassDiffers,
        },
        from,
    );
    assert_eq!(d.stats().rejected.values().sum::<u64>(), 2);
    assert_eq!(d.auth().map(|a| a.from), Some(from));
    d.set_key(t0, key());
    assert!(d.auth().is_none(), "a new key forgets the old failure");
}

#[test]
fn the_ip_task_waits_for_the_first_look_at_the_links() {
    let t0 = Instant::now();
    let mut d = driver(0, true, t0);
    assert!(!d.wish().started, "no start-up reconcile before we know");
    // Link down at start: the task may reconcile (nothing is ours to keep).
    d.handle_link(t0, false);
    assert!(d.wish().started && !d.wish().master);
}

/// A peer whose group has IPv6 addresses advertises on both families:
/// every advert counts as received, the backup stays backup following the
/// peer's IPv4 source, and no transition is logged.
#[test]
fn a_master_heard_on_both_families_is_one_master() {
    let t0 = Instant::now();
    let mut d = driver(100, false, t0);
    d.handle_link(t0, true);
    events(&mut d);
    let ll = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2));
    let mut now = t0;
    for i in 0..10u64 {
        now = t0 + Duration::from_secs(i);
        // Arrival order between the families is arbitrary.
        if i % 2 == 0 {
            d.handle_advert(now, ip(2), 1, 0);
            d.handle_advert(now, ll, 1, 0);
        } else {
            d.handle_advert(now, ll, 1, 0);
            d.handle_advert(now, ip(2), 1, 0);
        }
    }
    assert_eq!(d.stats().adverts_received, 20);
    assert_eq!(d.fsm().state(), State::Backup);
    assert_eq!(d.fsm().master_seen().map(|m| m.advert.src), Some(ip(2)));
    assert!(sent(&mut d).is_empty());
    assert!(events(&mut d).is_empty(), "nothing moved");
    assert_eq!(d.stats().transitions, 1, "only the start");
    assert_eq!(d.next_deadline(), Some(now + master_down_interval(1, 100)));
}

fn health(t: Instant) -> GroupHealth {
    use crate::health::{GroupCheck, Judge};
    GroupHealth {
        checks: vec![GroupCheck {
            id: 0,
            name: "tcp 127.0.0.1:80".into(),
            judge: Judge::new(2, 2, t),
        }],
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        fall: 2,
        rise: 2,
    }
}

fn check(ok: bool) -> Outcome {
    Outcome {
        ok,
        latency: Duration::from_millis(2),
        detail: if ok { "connected" } else { "refused" }.into(),
    }
}

#[test]
fn a_group_with_checks_advertises_as_least_preferred_until_they_pass() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    d.set_health(t0, Some(health(t0)));
    assert!(d.is_unhealthy() && !d.is_operator_demoted());
    // A silent LAN still makes it master (a degraded server beats none),
    // advertising 255/255 so any healthy peer takes over at once.
    d.handle_link(t0, true);
    let t = t0 + master_down_interval(1, 0);
    d.handle_timeout(t);
    assert_eq!(d.fsm().state(), State::Master);
    let adv = sent(&mut d);
    assert!(adv.iter().all(|a| a.is_bow_out()), "{adv:?}");
    events(&mut d);
    // Two passing runs: healthy, our own values again.
    d.handle_check(t, 0, &check(true));
    assert!(sent(&mut d).is_empty());
    d.handle_check(t, 0, &check(true));
    assert!(!d.is_unhealthy());
    let adv = sent(&mut d);
    assert_eq!((adv[0].advbase, adv[0].advskew), (1, 0));
    assert!(events(&mut d)
        .iter()
        .any(|e| matches!(e, Event::Health { healthy: true, .. })));
    // Two failures: a master gives the group away (releases first, then
    // the 255/255 advert once the IPs are gone).
    d.handle_check(t, 0, &check(false));
    d.handle_check(t, 0, &check(false));
    assert!(d.is_unhealthy());
    assert_eq!(d.fsm().state(), State::Backup);
    assert!(!d.wish().master);
    assert!(sent(&mut d).is_empty(), "held until the IPs are gone");
    d.handle_released(d.wish().epoch);
    assert!(sent(&mut d)[0].is_bow_out());
    // Another check's outcome changes nothing here.
    d.handle_check(t, 9, &check(true));
    assert!(d.is_unhealthy());
}

#[test]
fn a_restart_resuming_on_its_own_ips_starts_healthy() {
    let t0 = Instant::now();
    let mut d = driver(0, true, t0);
    d.set_health(t0, Some(health(t0)));
    assert!(!d.is_unhealthy(), "its service was serving a moment ago");
    d.handle_link(t0, true);
    let adv = sent(&mut d);
    assert_eq!((adv[0].advbase, adv[0].advskew), (1, 0));
}

#[test]
fn promotion_does_not_override_a_failing_health_check() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    d.set_health(t0, Some(health(t0)));
    d.set_demoted(t0, true);
    d.set_demoted(t0, false);
    assert!(
        d.fsm().is_demoted(),
        "still unhealthy: still least preferred"
    );
    d.handle_check(t0, 0, &check(true));
    d.handle_check(t0, 0, &check(true));
    assert!(!d.fsm().is_demoted());
    d.set_demoted(t0, true);
    d.handle_check(t0, 0, &check(true));
    assert!(d.fsm().is_demoted(), "health does not undo the operator");
}

// ---- Reload in place (docs/design.md §7.6) and the previous address
// list's grace (docs/safety.md §10).

fn key_for(ips: &[&str]) -> AuthKey {
    let addrs: Vec<IpAddr> = ips.iter().map(|s| s.parse().expect("literal")).collect();
    AuthKey::new(b"secret", &addrs)
}

/// The list `key()` covers, and the same list plus one address.
const OLD_LIST: [&str; 1] = ["203.0.113.10"];
const NEW_LIST: [&str; 2] = ["203.0.113.10", "203.0.113.11"];

#[test]
fn a_reload_in_place_keeps_the_master_and_advertises_the_new_values() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    let wish = d.wish();
    let transitions = d.stats().transitions;
    d.reconfigure(t, 2, 50, false);
    let adv = sent(&mut d);
    assert_eq!(adv.len(), 1);
    assert_eq!((adv[0].advbase, adv[0].advskew), (2, 50));
    assert_eq!(d.wish(), wish, "the IP task is not told anything");
    assert_eq!(d.stats().transitions, transitions);
    assert!(events(&mut d).is_empty(), "no transition to log");
    assert_eq!(d.fsm().state(), State::Master);
    assert_eq!(
        d.next_deadline(),
        Some(t + crate::carp::fsm::advert_interval(2, 50))
    );
}

#[test]
fn a_new_address_list_keeps_the_previous_one_signing_then_accepted_then_gone() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    assert!(d.set_key(t, key_for(&NEW_LIST)), "same pass: a grace");
    assert_eq!(d.accepted_keys().len(), 2);
    assert_eq!(d.key().addrs(), key_for(&NEW_LIST).addrs());
    // Our adverts keep the previous list for PREVIOUS_LIST_SIGNED.
    let mut now = t;
    while now < t + PREVIOUS_LIST_SIGNED {
        now = d.next_deadline().expect("master");
        d.handle_timeout(now);
        for adv in sent(&mut d) {
            let old = key_for(&OLD_LIST).verify(&adv);
            assert_eq!(old, now < t + PREVIOUS_LIST_SIGNED, "at {:?}", now - t);
            assert_eq!(!old, key_for(&NEW_LIST).verify(&adv));
        }
    }
    assert!(events(&mut d).contains(&Event::SigningCurrentList));
    let lists = d.previous_lists(now);
    assert_eq!(lists.signing_until, None);
    assert_eq!(lists.accepted_until, Some(t + PREVIOUS_LIST_ACCEPTED));
    // Accepted until PREVIOUS_LIST_ACCEPTED: a deadline drops it then.
    while d.accepted_keys().len() > 1 {
        now = d.next_deadline().expect("master");
        d.handle_timeout(now);
        sent(&mut d);
    }
    assert!(now >= t + PREVIOUS_LIST_ACCEPTED);
    assert!(now < t + PREVIOUS_LIST_ACCEPTED + Duration::from_secs(1));
    assert_eq!(d.previous_lists(now).accepted_until, None);
}

#[test]
fn the_previous_list_is_dropped_at_its_own_deadline_even_if_nothing_arrives() {
    let t0 = Instant::now();
    let mut d = driver(100, false, t0);
    d.handle_link(t0, true);
    d.set_key(t0, key_for(&NEW_LIST));
    // Only the deadlines the driver asks for are served.
    let mut now = t0;
    for _ in 0..10_000 {
        let Some(next) = d.next_deadline() else { break };
        now = next;
        d.handle_timeout(now);
        sent(&mut d);
        if d.accepted_keys().len() == 1 {
            break;
        }
    }
    assert_eq!(d.accepted_keys().len(), 1);
    assert_eq!(now, t0 + PREVIOUS_LIST_ACCEPTED);
}

#[test]
fn a_new_pass_replaces_every_key_at_once() {
    let t0 = Instant::now();
    let mut d = driver(0, false, t0);
    let t = master(&mut d, t0);
    assert!(d.set_key(t, key_for(&NEW_LIST)));
    let other = AuthKey::new(b"other", &[]);
    assert!(!d.set_key(t, other));
    assert_eq!(
        d.accepted_keys().len(),
        1,
        "an old secret is never accepted"
    );
    d.handle_timeout(d.next_deadline().expect("master"));
    let adv = sent(&mut d);
    assert!(AuthKey::new(b"other", &[]).verify(&adv[0]));
    // The same list written again changes nothing.
    assert!(!d.set_key(t, AuthKey::new(b"other", &[])));
    assert_eq!(d.accepted_keys().len(), 1);
}

#[test]
fn a_peer_on_the_previous_list_counts_for_the_election_and_is_reported() {
    let t0 = Instant::now();
    let mut d = driver(100, false, t0);
    d.handle_link(t0, true);
    events(&mut d);
    let t = t0 + Duration::from_millis(500);
    d.set_key(t, key_for(&NEW_LIST));
    for i in 0..10u64 {
        let now = t + Duration::from_secs(i);
        d.handle_advert_keyed(now, ip(2), 1, 0, 1);
        assert_eq!(
            d.next_deadline(),
            Some(now + master_down_interval(1, 100)),
            "a valid advert: it re-arms master down"
        );
    }
    assert_eq!(d.fsm().state(), State::Backup);
    assert_eq!(d.fsm().master_seen().map(|m| m.advert.src), Some(ip(2)));
    assert_eq!(d.stats().adverts_received, 10);
    assert_eq!(d.stats().adverts_previous_list, 10);
    assert_eq!(
        events(&mut d),
        vec![Event::PeerOnPreviousList { peer: ip(2) }],
        "logged once"
    );
    let lists = d.previous_lists(t + Duration::from_secs(10));
    assert_eq!(lists.peers.len(), 1);
    let (peer, seen) = &lists.peers[0];
    assert_eq!(*peer, ip(2));
    assert_eq!(seen.since, t);
    assert_eq!(seen.last, t + Duration::from_secs(9));
    assert_eq!(seen.adverts, 10);
    assert_eq!(seen.addrs, key_for(&OLD_LIST).addrs());
    // The peer reloaded and signs with our current list: forgotten.
    d.handle_advert_keyed(t + Duration::from_secs(10), ip(2), 1, 0, 0);
    assert_eq!(
        events(&mut d),
        vec![Event::PeerOnCurrentList { peer: ip(2) }]
    );
    assert!(d.previous_lists(t).peers.is_empty());
    // Peers on the list are forgotten with the list.
    d.handle_advert_keyed(t + Duration::from_secs(11), ip(3), 1, 0, 1);
    assert_eq!(d.previous_lists(t).peers.len(), 1);
    d.handle_timeout(t + PREVIOUS_LIST_ACCEPTED);
    assert!(d.previous_lists(t).peers.is_empty());
}

/// Two drivers on a virtual LAN, every advert checked against the
/// receiver's accepted keys as `classify_v4` does. `a` (advskew 0) is the
/// master, `b` (advskew 100) the backup; `first` is reloaded with the new
/// address list (and new advskew) at 10 s, the other `gap` later.
/// Returns the adverts rejected and the instants with other than exactly
/// one master.
fn rolling_reload(master_first: bool, gap: Duration) -> (u64, u64) {
    let t0 = Instant::now();
    let mk = |local: u8, advskew: u8| {
        GroupDriver::new(
            Fsm::new(
                FsmConfig {
                    vhid: 10,
                    advbase: 1,
                    advskew,
                    preempt: true,
                    local: ip(local),
                },
                t0,
            ),
            key_for(&OLD_LIST),
            1000 * u64::from(local),
            false,
        )
    };
    let mut hosts = [mk(1, 0), mk(2, 100)];
    for h in hosts.iter_mut() {
        h.handle_link(t0, true);
    }
    // Host 0 becomes master first: it is the preferred one.
    let first = usize::from(!master_first);
    let reload_at = [
        t0 + Duration::from_secs(10),
        t0 + Duration::from_secs(10) + gap,
    ];
    let mut reloaded = [false, false];
    let end = reload_at[1] + PREVIOUS_LIST_ACCEPTED + Duration::from_secs(60);
    let (mut rejected, mut split) = (0, 0);
    let step = Duration::from_millis(50);
    let mut now = t0;
    while now < end {
        now += step;
        for (n, at) in reload_at.iter().enumerate() {
            let h = if n == 0 { first } else { 1 - first };
            if !reloaded[h] && now >= *at {
                reloaded[h] = true;
                let d = &mut hosts[h];
                let (advbase, advskew, preempt) = if h == 0 {
                    (1, 10, true)
                } else {
                    (1, 80, false)
                };
                d.reconfigure(now, advbase, advskew, preempt);
                d.set_key(now, key_for(&NEW_LIST));
            }
        }
        for h in 0..2 {
            if hosts[h].next_deadline().is_some_and(|d| d <= now) {
                hosts[h].handle_timeout(now);
            }
            // The IP task releases at once.
            let epoch = hosts[h].wish().epoch;
            if !hosts[h].wish().master {
                hosts[h].handle_released(epoch);
            }
            let out: Vec<_> = std::iter::from_fn(|| hosts[h].poll_transmit()).collect();
            let other = &mut hosts[1 - h];
            for bytes in out {
                let adv = Advert::decode(&bytes).expect("decodes");
                match AuthKey::verify_any(other.accepted_keys(), &adv) {
                    Some(k) => {
                        other.handle_advert_keyed(now, ip(h as u8 + 1), adv.advbase, adv.advskew, k)
                    }
                    None => rejected += 1,
                }
            }
        }
        let masters = hosts
            .iter()
            .filter(|h| h.fsm().state() == State::Master)
            .count();
        if now > t0 + Duration::from_secs(5) && masters != 1 {
            split += 1;
        }
    }
    for h in &hosts {
        assert_eq!(h.accepted_keys().len(), 1, "the grace ended");
    }
    if rejected == 0 {
        // The master never changed: host 0 went BACKUP -> MASTER once.
        assert_eq!(hosts[0].stats().transitions, 2);
        assert_eq!(hosts[1].stats().transitions, 1);
        assert_eq!(hosts[0].fsm().config().advskew, 10, "reloaded in place");
        assert_eq!(hosts[1].stats().adverts_sent, 0, "a backup is silent");
    }
    (rejected, split)
}

#[test]
fn a_rolling_reload_of_the_address_list_in_either_order_never_splits_the_pair() {
    for master_first in [false, true] {
        for gap in [Duration::from_secs(5), Duration::from_secs(14 * 60)] {
            assert_eq!(
                rolling_reload(master_first, gap),
                (0, 0),
                "master first: {master_first}, gap {gap:?}: no advert rejected, always one master"
            );
        }
    }
}

/// The bound is real: reloads more than PREVIOUS_LIST_SIGNED apart split
/// the pair (in both orders), as docs/safety.md §10 says.
#[test]
fn reloads_further_apart_than_the_signing_grace_do_split_the_pair() {
    for master_first in [false, true] {
        let (rejected, split) = rolling_reload(master_first, Duration::from_secs(16 * 60));
        assert!(
            rejected > 0 && split > 0,
            "master first: {master_first}: {rejected} rejected, {split} split"
        );
    }
}
