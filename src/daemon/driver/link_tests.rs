//! The blip hold and link damping in the driver, on a virtual clock.

use super::tests::{events, ip, sent};
use super::*;
use crate::carp::fsm::{master_down_interval, BOW_OUT};

const MS: Duration = Duration::from_millis(1);

/// a: advskew 0, preempt on, source 192.0.2.1 (the driver tests' helpers).
fn driver(t0: Instant) -> GroupDriver {
    super::tests::driver(0, false, t0)
}

/// Master on a silent LAN, every IP held; returns when its first advert left.
fn master(d: &mut GroupDriver, t0: Instant) -> Instant {
    d.handle_link(t0, true);
    let t = t0 + master_down_interval(1, 0);
    d.handle_timeout(t);
    assert_eq!(d.fsm().state(), State::Master);
    d.set_ips_held(true);
    assert_eq!(sent(d).len(), 1);
    events(d);
    t
}

/// Runs every deadline up to `until` (the loop's job), collecting adverts.
fn run_until(d: &mut GroupDriver, until: Instant) -> Vec<(Instant, Advert)> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        match d.next_deadline() {
            Some(t) if t <= until => {
                d.handle_timeout(t);
                out.extend(sent(d).into_iter().map(|a| (t, a)));
            }
            _ => return out,
        }
    }
    panic!("deadlines do not advance");
}

fn transitions(ev: &[Event]) -> Vec<(State, State, Reason)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Transition { from, to, reason } => Some((*from, *to, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_master_keeps_the_group_through_a_short_carrier_loss_and_adverts_at_once_on_return() {
    let t0 = Instant::now();
    let mut d = driver(t0);
    let t = master(&mut d, t0);
    let epoch = d.wish().epoch;
    // Lose carrier 400 ms after the first advert, across the next advert's
    // due time (t + 1 s).
    let lost = t + 400 * MS;
    d.handle_link(lost, false);
    assert_eq!(d.fsm().state(), State::Master);
    assert!(d.wish().master, "the IPs stay");
    let ev = events(&mut d);
    assert!(
        ev.contains(&Event::Hold {
            hold: Hold::Started {
                hold: t + 3000 * MS - HOLD_MARGIN - lost
            }
        }),
        "{ev:?}"
    );
    let back = t + 1100 * MS;
    assert!(
        run_until(&mut d, back).is_empty(),
        "no advert while the carrier is down"
    );
    let announce = d.wish().announce;
    d.handle_link(back, true);
    let adv = sent(&mut d);
    assert_eq!(adv.len(), 1, "one advert at once on return");
    assert_eq!((adv[0].advbase, adv[0].advskew), (1, 0));
    assert_eq!(d.fsm().state(), State::Master);
    assert_eq!(
        d.wish().epoch,
        epoch,
        "the same mastership: nothing re-probed"
    );
    assert!(d.wish().master);
    assert_eq!(d.wish().announce, announce + 1, "neighbours are told again");
    let ev = events(&mut d);
    assert!(
        ev.contains(&Event::Hold {
            hold: Hold::Kept { down: 700 * MS }
        }),
        "{ev:?}"
    );
    assert!(transitions(&ev).is_empty(), "{ev:?}");
    // The cadence goes on.
    assert_eq!(run_until(&mut d, back + 1000 * MS).len(), 1);
}

#[test]
fn a_loss_longer_than_the_hold_releases_before_any_peer_can_declare_us_down() {
    let t0 = Instant::now();
    for lost_after in [100, 600, 999, 1000, 1020, 2500] {
        let mut d = driver(t0);
        let t = master(&mut d, t0);
        // Cadence adverts up to the loss; the last one is what peers heard.
        let lost = t + lost_after * MS;
        let adverts = run_until(&mut d, lost);
        let last = adverts.last().map_or(t, |(at, _)| *at);
        d.handle_link(lost, false);
        let ev = events(&mut d);
        let held = ev.iter().any(|e| {
            matches!(
                e,
                Event::Hold {
                    hold: Hold::Started { .. }
                }
            )
        });
        // The advert of 1 s went out 0 or 20 ms before the loss was seen:
        // perhaps on a dead link, so the hold counts from the one before.
        let basis = if lost.duration_since(last) < link::LOSS_GUARD {
            t + (lost_after / 1000 - 1) * 1000 * MS
        } else {
            last
        };
        // A peer with advbase 1 and advskew 0 declares us down at
        // basis + 3 s at the earliest.
        let peer_down = basis + master_down_interval(1, 0);
        let released = if held {
            assert!(d.fsm().state() == State::Master && d.wish().master);
            let rest = run_until(&mut d, peer_down);
            assert!(rest.is_empty(), "nothing sent while down: {rest:?}");
            let ev = events(&mut d);
            assert!(
                ev.iter().any(|e| matches!(
                    e,
                    Event::Hold {
                        hold: Hold::Expired { .. }
                    }
                )),
                "{ev:?}"
            );
            d.fsm().since()
        } else {
            assert!(ev.contains(&Event::Hold { hold: Hold::NoTime }), "{ev:?}");
            lost
        };
        assert_eq!(d.fsm().state(), State::Init, "lost after {lost_after} ms");
        assert!(!d.wish().master);
        assert!(
            released + HOLD_MARGIN <= peer_down,
            "lost after {lost_after} ms: released {:?} after the loss, peers may take over {:?} after it",
            released - lost,
            peer_down - lost
        );
        // The link back after the release: BACKUP, as before.
        d.handle_link(peer_down + 100 * MS, true);
        assert_eq!(d.fsm().state(), State::Backup);
    }
}

#[test]
fn a_master_not_holding_every_ip_releases_at_once() {
    let t0 = Instant::now();
    let mut d = driver(t0);
    let t = master(&mut d, t0);
    d.set_ips_held(false);
    d.handle_link(t + 400 * MS, false);
    assert_eq!(d.fsm().state(), State::Init);
    assert!(!d.wish().master);
    assert!(events(&mut d).contains(&Event::Hold {
        hold: Hold::NotAllHeld
    }));
}

#[test]
fn a_backup_that_loses_carrier_goes_to_init_as_before() {
    let t0 = Instant::now();
    let mut d = driver(t0);
    d.handle_link(t0, true);
    // 192.0.2.0 wins the exact tie (smaller key): followed.
    d.handle_advert(t0 + 100 * MS, ip(0), 1, 0);
    assert_eq!(d.fsm().state(), State::Backup);
    d.handle_link(t0 + 200 * MS, false);
    assert_eq!(d.fsm().state(), State::Init);
    let ev = events(&mut d);
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Hold { .. })),
        "{ev:?}"
    );
}

/// Link down `down` ms, up `up` ms, `n` times from `t`.
fn flap(d: &mut GroupDriver, mut t: Instant, n: usize, down: u32, up: u32) -> Instant {
    for _ in 0..n {
        run_until(d, t);
        d.handle_link(t, false);
        t += down * MS;
        run_until(d, t);
        d.handle_link(t, true);
        t += up * MS;
    }
    t
}

#[test]
fn a_flapping_master_hands_the_group_over_with_the_bow_out_after_the_release() {
    let t0 = Instant::now();
    let mut d = driver(t0);
    let t = master(&mut d, t0);
    // Two blips: held, one advert at each return.
    let t = flap(&mut d, t + 300 * MS, 2, 100, 100);
    assert_eq!(d.fsm().state(), State::Master);
    events(&mut d);
    sent(&mut d);
    let epoch = d.wish().epoch;
    // The third loss makes the link unstable: the group is given away.
    d.handle_link(t, false);
    assert!(!d.wish().master, "the IPs go at once");
    let ev = events(&mut d);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::Damping {
                change: Damping::Unstable { losses: 3, .. }
            }
        )),
        "{ev:?}"
    );
    let tr = transitions(&ev);
    assert_eq!(
        tr.first().map(|(f, to, r)| (*f, *to, r.clone())),
        Some((
            State::Master,
            State::Backup,
            Reason::LinkUnstable {
                losses: 3,
                window: DAMP_WINDOW
            }
        )),
        "{ev:?}"
    );
    assert_eq!(d.fsm().state(), State::Init, "the link is down");
    assert!(d.fsm().is_demoted());
    // The bow-out waits for the release and for the carrier.
    assert!(sent(&mut d).is_empty());
    d.handle_released(epoch);
    assert!(sent(&mut d).is_empty(), "not on a dead link");
    d.handle_link(t + 100 * MS, true);
    let adv = sent(&mut d);
    assert_eq!(adv.len(), 1, "{adv:?}");
    assert_eq!((adv[0].advbase, adv[0].advskew), (BOW_OUT, BOW_OUT));
    assert_eq!(d.fsm().state(), State::Backup);

    // b (advskew 100) takes over and advertises: a is preferred and has
    // preempt, but an unstable link never preempts.
    let mut now = t + 200 * MS;
    d.handle_advert(now, ip(2), 1, 100);
    assert!(!d.wish().master);
    assert_eq!(d.fsm().state(), State::Backup);
    // Flapping goes on for 20 s while b advertises every 1.391 s (heard
    // only while the link is up): a never takes the group back.
    let (mut up, mut toggle, mut tb) = (true, now + 100 * MS, now + 1391 * MS);
    let end = now + 20_000 * MS;
    while now < end {
        now += 10 * MS;
        run_until(&mut d, now);
        if now >= toggle {
            up = !up;
            d.handle_link(now, up);
            toggle += 100 * MS;
        }
        if now >= tb {
            if up {
                d.handle_advert(now, ip(2), 1, 100);
            }
            tb += 1391 * MS;
        }
        assert_ne!(d.fsm().state(), State::Master);
    }
    if !up {
        d.handle_link(now, true);
    }
    let end = now;
    // Stable from `end` on: trusted again after DAMP_QUIET, then the next
    // advert from b is preempted.
    for _ in 0..40 {
        now += 1000 * MS;
        run_until(&mut d, now);
        d.handle_advert(now, ip(2), 1, 100);
        if d.fsm().state() == State::Master {
            break;
        }
    }
    assert_eq!(d.fsm().state(), State::Master);
    let trusted = now.duration_since(end);
    assert!(
        trusted >= DAMP_QUIET && trusted <= DAMP_QUIET + 1000 * MS,
        "{trusted:?}"
    );
    let ev = events(&mut d);
    assert!(
        ev.contains(&Event::Damping {
            change: Damping::Trusted
        }),
        "{ev:?}"
    );
    assert!(!d.fsm().is_demoted());
}

#[test]
fn an_unstable_host_still_becomes_master_when_nobody_advertises() {
    let t0 = Instant::now();
    let mut d = driver(t0);
    d.handle_link(t0, true);
    let t = flap(&mut d, t0 + 100 * MS, 3, 50, 50);
    assert!(d.link().damped());
    assert_eq!(d.fsm().state(), State::Backup);
    // Nobody advertises for the master-down interval: a flaky host beats none.
    run_until(&mut d, t + master_down_interval(1, 0));
    assert_eq!(d.fsm().state(), State::Master);
    let adv = run_until(&mut d, t + master_down_interval(1, 0) + 1000 * MS);
    assert!(
        adv.iter()
            .all(|(_, a)| (a.advbase, a.advskew) == (BOW_OUT, BOW_OUT)),
        "least preferred while unstable: {adv:?}"
    );
    // A stable peer that comes up takes the group at once (bow-out rule);
    // here: its better advert sends us to BACKUP.
}

#[test]
fn a_lone_unstable_master_keeps_holding_through_blips() {
    let t0 = Instant::now();
    let mut d = driver(t0);
    d.handle_link(t0, true);
    let t = flap(&mut d, t0 + 100 * MS, 3, 50, 50);
    let t = t + master_down_interval(1, 0);
    run_until(&mut d, t);
    assert_eq!(d.fsm().state(), State::Master);
    d.set_ips_held(true);
    let t = t + 500 * MS;
    run_until(&mut d, t);
    d.handle_link(t, false);
    assert_eq!(d.fsm().state(), State::Master, "held");
    d.handle_link(t + 100 * MS, true);
    assert_eq!(d.fsm().state(), State::Master);
    let adv = sent(&mut d);
    assert_eq!(adv.len(), 1);
    assert_eq!((adv[0].advbase, adv[0].advskew), (BOW_OUT, BOW_OUT));
}
