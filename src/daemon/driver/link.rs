//! Carrier of one group's links as the election sees it: the blip hold and
//! link damping (docs/design.md §5.7, docs/safety.md §11). Pure: time in,
//! decisions out; the driver applies them to the FSM.
//!
//! **Blip hold.** A MASTER that loses carrier keeps its state and IPs for a
//! bounded time instead of releasing at once: if the carrier returns in
//! time it is still the master nobody has replaced, and one advert at once
//! tells the peers so. The bound comes from the peers' timers: a BACKUP
//! declares the master down no earlier than the master-down interval after
//! the last advert it received, `3 × advbase + advskew/256` with its own
//! values (FreeBSD `ip_carp.c` `carp_setrun`, BACKUP case; ucarp
//! `carp_setrun` with `dead_ratio` 3; RFC 3768 §6.1), so never before
//! `last advert sent + 3 × advbase` (advskew ≥ 0). The hold ends
//! [`HOLD_MARGIN`] before that.
//!
//! **Damping.** [`DAMP_LOSSES`] carrier losses within [`DAMP_WINDOW`] make
//! the link unstable: the group then advertises as least preferred (as
//! when demoted) until the link has had no loss for [`DAMP_QUIET`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::carp::fsm::BOW_OUT;
use crate::control::schema::{secs, LinkStatus};

/// Taken off the hold so that it ends before any peer can declare us
/// down: covers a loop that notices the carrier loss or the hold's end
/// late, and the peer's reception delay being shorter than ours.
pub const HOLD_MARGIN: Duration = Duration::from_millis(250);
/// An advert sent this shortly before the carrier loss was noticed may
/// have gone out on a link that was already down: the hold counts from
/// the advert before it.
pub const LOSS_GUARD: Duration = Duration::from_millis(50);
/// Carrier losses within [`DAMP_WINDOW`] that make a link unstable.
pub const DAMP_LOSSES: usize = 3;
/// The window in which [`DAMP_LOSSES`] losses are counted.
pub const DAMP_WINDOW: Duration = Duration::from_secs(30);
/// How long an unstable link must stay up without a loss before the host
/// is trusted (and preempts) again.
pub const DAMP_QUIET: Duration = Duration::from_secs(30);

/// How long a MASTER that lost carrier at `now` may keep the group:
/// until `basis + 3 × advbase − HOLD_MARGIN`, where `basis` is the last
/// advert sent at least [`LOSS_GUARD`] before `now` (`sent`: the last two
/// adverts sent, newest first) and `advbase` the smallest advbase of the
/// group's hosts as far as we know. `None`: no hold (no advert known to
/// have left, or no time left).
pub fn hold_until(now: Instant, sent: [Option<Instant>; 2], advbase: u8) -> Option<Instant> {
    let basis = sent
        .into_iter()
        .flatten()
        .find(|t| now.saturating_duration_since(*t) >= LOSS_GUARD)?;
    let until = basis + Duration::from_secs(3 * u64::from(advbase)) - HOLD_MARGIN;
    (until > now).then_some(until)
}

/// What a MASTER did about a carrier loss (docs/design.md §5.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Keeps the group for `hold`: no peer can declare it down before.
    Started { hold: Duration },
    /// The carrier came back after `down`: still master, advert sent.
    Kept { down: Duration },
    /// Down for `down`, past the hold: released.
    Expired { down: Duration },
    /// Released at once: not every IP was held (a probe on a dead link
    /// would find every IP silent), so nothing may be kept half-done.
    NotAllHeld,
    /// Released at once: no advert known to have reached the peers
    /// recently enough for a hold.
    NoTime,
}

impl Hold {
    /// The group was released because of the carrier loss.
    pub fn released(&self) -> bool {
        !matches!(self, Hold::Started { .. } | Hold::Kept { .. })
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Started { hold } => write!(
                f,
                "carrier lost on the master: keeping the group for up to {:.2} s \
                 (no peer can declare us down before: our last advert + 3 x advbase - {} ms)",
                hold.as_secs_f64(),
                HOLD_MARGIN.as_millis()
            ),
            Hold::Kept { down } => write!(
                f,
                "carrier back after {} ms: still master, advert sent at once",
                down.as_millis()
            ),
            Hold::Expired { down } => write!(
                f,
                "carrier down for {:.2} s, longer than the hold: releasing the group",
                down.as_secs_f64()
            ),
            Hold::NotAllHeld => f.write_str(
                "carrier lost on the master while not every IP was held: releasing at once \
                 (a probe on a dead link would find every IP silent)",
            ),
            Hold::NoTime => f.write_str(
                "carrier lost on the master with no advert known to have reached the peers \
                 recently enough to keep the group: releasing at once",
            ),
        }
    }
}

impl fmt::Display for Damping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damping::Unstable { losses, .. } => write!(
                f,
                "link unstable: {losses} carrier losses in {} s; advertising as least preferred \
                 (a master hands the group over, a backup never preempts) until the link has \
                 been up without a loss for {} s",
                DAMP_WINDOW.as_secs(),
                DAMP_QUIET.as_secs()
            ),
            Damping::Extended { losses, .. } => write!(
                f,
                "link still unstable: {losses} carrier losses in {} s; trusted again after {} s \
                 up without a loss",
                DAMP_WINDOW.as_secs(),
                DAMP_QUIET.as_secs()
            ),
            Damping::Trusted => write!(
                f,
                "link stable for {} s: trusted again, advertising our own advbase/advskew",
                DAMP_QUIET.as_secs()
            ),
        }
    }
}

/// A change of the link's damping, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damping {
    /// The link became unstable: `losses` within [`DAMP_WINDOW`]; trusted
    /// again at `until` if no further loss comes.
    Unstable { losses: usize, until: Instant },
    /// Another loss while unstable: trust moves to `until`.
    Extended { losses: usize, until: Instant },
    /// Stable for [`DAMP_QUIET`]: trusted again.
    Trusted,
}

#[derive(Debug, Default)]
pub struct LinkWatch {
    /// Carrier losses within the last [`DAMP_WINDOW`] (pruned lazily).
    losses: VecDeque<Instant>,
    /// Every carrier loss since start.
    total: u64,
    damped: bool,
    /// The last two adverts that left while the carrier was up, newest first.
    sent: [Option<Instant>; 2],
    /// A MASTER holds the group through a carrier loss until then.
    hold: Option<Instant>,
    /// The smallest advbase heard from a peer (not a bow-out).
    peer_advbase: Option<u8>,
    /// When the carrier was last lost.
    down_at: Option<Instant>,
    /// Carrier now (as far as [`LinkWatch::lost`] and
    /// [`LinkWatch::restored`] said).
    up: bool,
}

impl LinkWatch {
    /// A carrier loss at `now`: counted; `Some` if the damping changed.
    pub fn lost(&mut self, now: Instant) -> Option<Damping> {
        self.up = false;
        self.down_at = Some(now);
        self.total += 1;
        self.losses.push_back(now);
        self.prune(now);
        let losses = self.losses.len();
        let until = now + DAMP_QUIET;
        if self.damped {
            Some(Damping::Extended { losses, until })
        } else if losses >= DAMP_LOSSES {
            self.damped = true;
            Some(Damping::Unstable { losses, until })
        } else {
            None
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .losses
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= DAMP_WINDOW)
        {
            self.losses.pop_front();
        }
    }

    /// The link is unstable: the group must not preempt.
    pub fn damped(&self) -> bool {
        self.damped
    }

    /// While damped: when the link is trusted again if no loss comes.
    pub fn trusted_at(&self) -> Option<Instant> {
        self.damped
            .then(|| self.losses.back().map(|t| *t + DAMP_QUIET))
            .flatten()
    }

    /// Losses within the last [`DAMP_WINDOW`].
    pub fn recent_losses(&self, now: Instant) -> usize {
        self.losses
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < DAMP_WINDOW)
            .count()
    }

    /// Every carrier loss since start.
    pub fn total_losses(&self) -> u64 {
        self.total
    }

    /// The carrier came back; the damping may end at once if the link was
    /// down longer than [`DAMP_QUIET`].
    pub fn restored(&mut self, now: Instant) -> Option<Damping> {
        self.up = true;
        self.expire(now)
    }

    /// Ends the damping once the link was quiet for [`DAMP_QUIET`] (and is
    /// up: a link that is down is not trusted, however old its loss).
    pub fn expire(&mut self, now: Instant) -> Option<Damping> {
        if !self.damped || !self.up {
            return None;
        }
        if self.trusted_at().is_none_or(|t| t <= now) {
            self.damped = false;
            self.prune(now);
            return Some(Damping::Trusted);
        }
        None
    }

    /// An advert left on a link with carrier.
    pub fn note_sent(&mut self, now: Instant) {
        self.sent = [Some(now), self.sent[0]];
    }

    /// A peer's advert: its advbase bounds its master-down interval.
    pub fn note_peer(&mut self, advbase: u8, advskew: u8) {
        if (advbase, advskew) != (BOW_OUT, BOW_OUT) && advbase > 0 {
            self.peer_advbase = Some(self.peer_advbase.map_or(advbase, |a| a.min(advbase)));
        }
    }

    /// Start a hold at `now` for a group with our `advbase`; the end, if any.
    pub fn start_hold(&mut self, now: Instant, advbase: u8) -> Option<Instant> {
        let advbase = self.peer_advbase.map_or(advbase, |p| p.min(advbase));
        self.hold = hold_until(now, self.sent, advbase);
        self.hold
    }

    /// How long since the carrier was last lost.
    pub fn down_for(&self, now: Instant) -> Duration {
        self.down_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    pub fn hold(&self) -> Option<Instant> {
        self.hold
    }

    pub fn end_hold(&mut self) -> Option<Instant> {
        self.hold.take()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let trust = self.trusted_at().filter(|_| self.up);
        [self.hold, trust].into_iter().flatten().min()
    }
}

/// What `ipfail status` shows of a group's link, copied by the loop.
#[derive(Clone, Debug)]
pub struct LinkSnap {
    up: bool,
    total: u64,
    losses: Vec<Instant>,
    damped: bool,
    trusted_at: Option<Instant>,
    hold: Option<Instant>,
}

impl LinkWatch {
    /// A copy for `ipfail status`; `up`: the group's links have carrier.
    pub fn snap(&self, up: bool) -> LinkSnap {
        LinkSnap {
            up,
            total: self.total,
            losses: self.losses.iter().copied().collect(),
            damped: self.damped,
            trusted_at: self.trusted_at().filter(|_| up),
            hold: self.hold,
        }
    }
}

impl LinkSnap {
    pub fn status(&self, now: Instant) -> LinkStatus {
        let recent = self
            .losses
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < DAMP_WINDOW)
            .count();
        LinkStatus {
            up: self.up,
            losses: self.total,
            losses_recent: u32::try_from(recent).unwrap_or(u32::MAX),
            window_secs: secs(DAMP_WINDOW),
            damp_losses: u32::try_from(DAMP_LOSSES).unwrap_or(u32::MAX),
            damped: self.damped,
            trusted_in_secs: self
                .trusted_at
                .map(|t| secs(t.saturating_duration_since(now))),
            quiet_secs: secs(DAMP_QUIET),
            hold_left_secs: self.hold.map(|t| secs(t.saturating_duration_since(now))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_hold_ends_a_margin_before_the_earliest_master_down_of_any_peer() {
        let t0 = Instant::now();
        // Last advert 400 ms before the loss: peers wait until t0 + 3 s.
        let now = t0 + 400 * MS;
        assert_eq!(
            hold_until(now, [Some(t0), None], 1),
            Some(t0 + 3000 * MS - HOLD_MARGIN)
        );
        // advbase 2: 6 s.
        assert_eq!(
            hold_until(now, [Some(t0), None], 2),
            Some(t0 + 6000 * MS - HOLD_MARGIN)
        );
        // No advert ever left: no hold.
        assert_eq!(hold_until(now, [None, None], 1), None);
        // The budget is spent: no hold.
        assert_eq!(hold_until(t0 + 2800 * MS, [Some(t0), None], 1), None);
    }

    #[test]
    fn an_advert_sent_just_before_the_loss_was_noticed_does_not_count() {
        let t0 = Instant::now();
        let last = t0 + 1000 * MS;
        let now = last + 10 * MS; // maybe sent on a dead link
        assert_eq!(
            hold_until(now, [Some(last), Some(t0)], 1),
            Some(t0 + 3000 * MS - HOLD_MARGIN)
        );
        assert_eq!(hold_until(now, [Some(last), None], 1), None);
        let later = last + LOSS_GUARD;
        assert_eq!(
            hold_until(later, [Some(last), Some(t0)], 1),
            Some(last + 3000 * MS - HOLD_MARGIN)
        );
    }

    #[test]
    fn a_peer_with_a_smaller_advbase_shortens_the_hold() {
        let t0 = Instant::now();
        let mut w = LinkWatch::default();
        w.note_sent(t0);
        w.note_peer(255, 255); // a bow-out says nothing about its timers
        assert_eq!(
            w.start_hold(t0 + 100 * MS, 2),
            Some(t0 + 6000 * MS - HOLD_MARGIN)
        );
        w.note_peer(1, 100);
        assert_eq!(
            w.start_hold(t0 + 100 * MS, 2),
            Some(t0 + 3000 * MS - HOLD_MARGIN)
        );
    }

    #[test]
    fn three_losses_in_the_window_damp_until_a_quiet_period_passes() {
        let t0 = Instant::now();
        let mut w = LinkWatch::default();
        assert_eq!(w.lost(t0), None);
        // A loss that aged out of the window does not count.
        let t1 = t0 + DAMP_WINDOW + MS;
        assert_eq!(w.lost(t1), None);
        assert_eq!(w.lost(t1 + 200 * MS), None);
        assert!(!w.damped());
        let t3 = t1 + 400 * MS;
        assert_eq!(
            w.lost(t3),
            Some(Damping::Unstable {
                losses: 3,
                until: t3 + DAMP_QUIET
            })
        );
        assert!(w.damped());
        assert_eq!(w.trusted_at(), Some(t3 + DAMP_QUIET));
        let t4 = t3 + 5000 * MS;
        assert_eq!(
            w.lost(t4),
            Some(Damping::Extended {
                losses: 4,
                until: t4 + DAMP_QUIET
            })
        );
        // Down: no deadline, never trusted.
        assert_eq!(w.next_deadline(), None);
        assert_eq!(w.expire(t4 + DAMP_QUIET), None, "not while down");
        assert_eq!(w.restored(t4 + 100 * MS), None);
        assert_eq!(w.next_deadline(), Some(t4 + DAMP_QUIET));
        assert_eq!(w.expire(t4 + DAMP_QUIET - MS), None);
        assert_eq!(w.expire(t4 + DAMP_QUIET), Some(Damping::Trusted));
        assert!(!w.damped());
        assert_eq!(w.next_deadline(), None);
        assert_eq!(w.total_losses(), 5);
        // Trusted again with a clean slate: one loss is a blip.
        assert_eq!(w.lost(t4 + DAMP_QUIET + MS), None);
    }

    #[test]
    fn a_link_down_past_the_quiet_period_is_trusted_when_it_comes_back() {
        let t0 = Instant::now();
        let mut w = LinkWatch::default();
        w.restored(t0);
        for i in 0..3 {
            w.lost(t0 + i * 100 * MS);
            w.restored(t0 + i * 100 * MS + 50 * MS);
        }
        assert!(w.damped());
        w.lost(t0 + 300 * MS);
        let back = t0 + 300 * MS + DAMP_QUIET + 5000 * MS;
        assert_eq!(w.restored(back), Some(Damping::Trusted));
    }
}
