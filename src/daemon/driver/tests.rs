//! The group driver's rules with a virtual clock: no sockets.

use super::*;
use crate::carp::fsm::{master_down_interval, FsmConfig, BOW_OUT};
use crate::carp::packet::AuthDiagnosis;
use crate::health::{GroupHealth, Outcome};
use std::net::{Ipv4Addr, Ipv6Addr};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn key() -> AuthKey {
    AuthKey::new(b"secret", &["203.0.113.10".parse().expect("literal")])
}

fn driver(advskew: u8, adopt: bool, t0: Instant) -> GroupDriver {
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

fn sent(d: &mut GroupDriver) -> Vec<Advert> {
    std::iter::from_fn(|| d.poll_transmit())
        .map(|b| Advert::decode(&b).expect("our own adverts decode"))
        .collect()
}

fn events(d: &mut GroupDriver) -> Vec<Event> {
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
    d.set_key(key());
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
