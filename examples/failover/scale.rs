//! 757 floating IPs in one group (one process, one keepalived instance):
//! SIGTERM of the master's agent until the standby holds every IP.

use std::time::Duration;

use crate::agents::Agent;
use crate::setup::{Res, Setup, A, B};

pub const SCALE_IPS: usize = 757;
const SEC: Duration = Duration::from_secs(1);

/// [SIGTERM -> the standby holds all 757 IPs] in ms, in a lab of its own.
pub fn sigterm_757(agent: Agent, tag: &str) -> Res<Vec<f64>> {
    let mut s = Setup::new(tag, agent, SCALE_IPS);
    let t = std::time::SystemTime::now();
    s.start(A);
    s.start(B);
    s.wait("a alone holds 757 IPs", t, 60 * SEC, |r| r.alone(A))?;
    s.settle(SEC, 20 * SEC)?;
    let t0 = s.signal(A, "TERM")?;
    let held = s.wait("b holds all 757 IPs", t0, 30 * SEC, |r| r.holds_all(B))?;
    Ok(vec![
        held.duration_since(t0).unwrap_or_default().as_secs_f64() * 1000.0,
    ])
}
