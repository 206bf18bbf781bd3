//! Link trouble on the master: a cut (its veth loses carrier for good),
//! one 100 ms carrier blip, and a link flapping for a window.

use std::time::{Duration, Instant, SystemTime};

use crate::adverts::Capture;
use crate::sampler::{span, time_where, Round};
use crate::setup::{Res, Setup, B};

const SEC: Duration = Duration::from_secs(1);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// a's link cut: [the master's last advert received by b -> b holds every
/// IP, client outage] in ms. Restores the link afterwards.
pub fn cut(s: &mut Setup) -> Res<Vec<f64>> {
    let master = s.a.addr.to_string();
    let cap = Capture::start(&s.lab, &s.b, &master, &s.dir.join("adverts.log"));
    let t0 = SystemTime::now();
    s.lab.cut(&s.a);
    let held = s.wait("b holds every IP after the cut", t0, 15 * SEC, |r| {
        r.holds_all(B)
    });
    let end = held.clone().map(|h| s.close_window(h));
    let last = cap.times(&master).into_iter().filter(|t| *t <= t0).max();
    cap.stop(&s.lab);
    s.lab.restore(&s.a);
    let (held, end) = (held?, end?);
    let last = last.ok_or("no advert from the master captured before the cut")?;
    let outage = s.client().outage(t0, end);
    Ok(vec![
        ms(held.duration_since(last).unwrap_or_default()),
        ms(outage),
    ])
}

/// One 100 ms carrier loss on a: [client outage, double hold] in ms until
/// a alone holds the IPs again for 3.5 s (longer than a master-down
/// interval, so a late takeover is seen).
pub fn blip(s: &mut Setup) -> Res<Vec<f64>> {
    let t0 = SystemTime::now();
    s.lab.cut(&s.a);
    std::thread::sleep(Duration::from_millis(100));
    s.lab.restore(&s.a);
    let end = s.settle(Duration::from_millis(3500), 25 * SEC)?;
    let rounds = s.sampler.window(t0, end);
    Ok(vec![
        ms(s.client().outage(t0, end)),
        ms(time_where(&rounds, Round::double)),
    ])
}

/// a's link down and up every `half` for `window`: [% of the time the
/// client was served, % of the time the stable host b held every IP,
/// double hold in ms].
pub fn flap(s: &mut Setup, half: Duration, window: Duration) -> Res<Vec<f64>> {
    let t0 = SystemTime::now();
    let start = Instant::now();
    let mut down = false;
    while start.elapsed() < window {
        if down {
            s.lab.restore(&s.a);
        } else {
            s.lab.cut(&s.a);
        }
        down = !down;
        std::thread::sleep(half.min(window.saturating_sub(start.elapsed())));
    }
    if down {
        s.lab.restore(&s.a);
    }
    let t1 = SystemTime::now();
    let rounds = s.sampler.window(t0, t1);
    let whole = t1.duration_since(t0).unwrap_or(window).as_secs_f64();
    let unserved = s.client().outage(t0, t1).as_secs_f64();
    let total = span(&rounds).as_secs_f64().max(1e-3);
    Ok(vec![
        100.0 * (1.0 - unserved / whole).max(0.0),
        100.0 * time_where(&rounds, |r| r.holds_all(B)).as_secs_f64() / total,
        ms(time_where(&rounds, Round::double)),
    ])
}
