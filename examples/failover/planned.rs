//! Planned moves: SIGTERM of the master's agent, the preferred host's
//! agent started again (preempt back), `ipfail demote` / `promote`.
//! Each measures the client outage and the double hold in its window.

use std::time::{Duration, SystemTime};

use crate::sampler::{time_where, Round};
use crate::setup::{Res, Setup, A, B};

const SEC: Duration = Duration::from_secs(1);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (outage, double hold) in `[from, end]`.
fn cost(s: &Setup, from: SystemTime, end: SystemTime) -> (f64, f64) {
    let rounds = s.sampler.window(from, end);
    let outage = s.client().outage(from, end);
    (ms(outage), ms(time_where(&rounds, Round::double)))
}

/// SIGTERM to a's agent: [standby holds every IP, outage, double hold]
/// in ms. Leaves a's agent stopped.
pub fn sigterm(s: &mut Setup) -> Res<Vec<f64>> {
    let t0 = s.signal(A, "TERM")?;
    let moved = s.wait("b alone holds the IPs after SIGTERM", t0, 10 * SEC, |r| {
        r.alone(B)
    })?;
    s.reap(A, 5 * SEC)?;
    let end = s.close_window(moved);
    let (outage, double) = cost(s, t0, end);
    Ok(vec![
        ms(moved.duration_since(t0).unwrap_or_default()),
        outage,
        double,
    ])
}

/// a's agent started again while b is master: [a holds again, outage,
/// double hold] in ms.
pub fn preempt(s: &mut Setup) -> Res<Vec<f64>> {
    if s.pids[A].is_some() {
        return Err("a's agent is still running".into());
    }
    let t0 = SystemTime::now();
    s.start(A);
    let back = s.wait("a alone holds the IPs again", t0, 20 * SEC, |r| r.alone(A))?;
    let end = s.close_window(back);
    let (outage, double) = cost(s, t0, end);
    Ok(vec![
        ms(back.duration_since(t0).unwrap_or_default()),
        outage,
        double,
    ])
}

/// `ipfail demote web` on a, then `promote`: [outage, double hold of the
/// demote, outage, double hold of the promote] in ms.
pub fn demote(s: &mut Setup) -> Res<Vec<f64>> {
    let t0 = SystemTime::now();
    s.ipfail(A, &["demote", "web"])?;
    let moved = s.wait("b alone holds the IPs after demote", t0, 10 * SEC, |r| {
        r.alone(B)
    })?;
    let end = s.close_window(moved);
    let (out1, dbl1) = cost(s, t0, end);
    // The standby settles as master before the promote.
    std::thread::sleep(SEC);
    let t1 = SystemTime::now();
    s.ipfail(A, &["promote", "web"])?;
    let back = s.wait("a alone holds the IPs after promote", t1, 10 * SEC, |r| {
        r.alone(A)
    })?;
    let end = s.close_window(back);
    let (out2, dbl2) = cost(s, t1, end);
    Ok(vec![out1, dbl1, out2, dbl2])
}
