//! What `ipfail status` and `--check` say about a group's link: a master
//! holding the group through a carrier loss, and an unstable (damped)
//! link (docs/design.md §5.7).

use crate::control::schema::LinkStatus;

/// The `link:` line of `ipfail status`; none for a quiet link.
pub fn detail(l: &LinkStatus) -> Option<String> {
    let counted = format!(
        "{} carrier losses in {} s ({} since start)",
        l.losses_recent, l.window_secs as u64, l.losses
    );
    if let Some(left) = l.hold_left_secs {
        return Some(format!(
            "carrier lost: the master keeps the group for {left:.2} s more unless it returns; {counted}"
        ));
    }
    if l.damped {
        let when = match l.trusted_in_secs {
            Some(s) => format!("trusted again in {s:.1} s if it stays up"),
            None => format!(
                "trusted again {} s after it comes back without a loss",
                l.quiet_secs as u64
            ),
        };
        return Some(format!(
            "unstable, {counted}: advertising 255/255 (never preempting) until up {} s without a loss; {when}",
            l.quiet_secs as u64
        ));
    }
    if !l.up {
        return Some(format!("down; {counted}"));
    }
    (l.losses_recent > 0).then(|| {
        format!(
            "{counted}; unstable at {} (then it stops preempting)",
            l.damp_losses
        )
    })
}

/// The `--check` WARNING for group `name`'s link, if any.
pub fn problem(name: &str, l: &LinkStatus) -> Option<String> {
    if let Some(left) = l.hold_left_secs {
        return Some(format!(
            "{name}: carrier lost, master holding the group for {left:.1} s more"
        ));
    }
    l.damped.then(|| {
        let when = l.trusted_in_secs.map_or_else(
            || "link down".to_string(),
            |s| format!("trusted again in {s:.0} s"),
        );
        format!(
            "{name}: link unstable ({} carrier losses in {} s): not preempting, {when}",
            l.losses_recent, l.window_secs as u64
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkStatus {
        LinkStatus {
            up: true,
            losses: 0,
            losses_recent: 0,
            window_secs: 30.0,
            damp_losses: 3,
            damped: false,
            trusted_in_secs: None,
            quiet_secs: 30.0,
            hold_left_secs: None,
        }
    }

    #[test]
    fn a_quiet_link_says_nothing_and_a_damped_one_says_until_when() {
        let mut l = link();
        assert_eq!(detail(&l), None);
        assert_eq!(problem("web", &l), None);
        l.losses = 2;
        l.losses_recent = 1;
        assert_eq!(
            detail(&l).as_deref(),
            Some("1 carrier losses in 30 s (2 since start); unstable at 3 (then it stops preempting)")
        );
        assert_eq!(problem("web", &l), None);
        l.losses_recent = 4;
        l.losses = 5;
        l.damped = true;
        l.trusted_in_secs = Some(12.34);
        assert_eq!(
            detail(&l).as_deref(),
            Some(
                "unstable, 4 carrier losses in 30 s (5 since start): advertising 255/255 \
                 (never preempting) until up 30 s without a loss; trusted again in 12.3 s if it stays up"
            )
        );
        assert_eq!(
            problem("web", &l).as_deref(),
            Some("web: link unstable (4 carrier losses in 30 s): not preempting, trusted again in 12 s")
        );
        l.up = false;
        l.trusted_in_secs = None;
        assert!(detail(&l).is_some_and(|d| d.ends_with("30 s after it comes back without a loss")));
        assert!(problem("web", &l).is_some_and(|p| p.ends_with("link down")));
    }

    #[test]
    fn a_holding_master_says_how_long_it_keeps_the_group() {
        let mut l = link();
        l.up = false;
        l.losses = 1;
        l.losses_recent = 1;
        l.hold_left_secs = Some(2.5);
        assert_eq!(
            detail(&l).as_deref(),
            Some(
                "carrier lost: the master keeps the group for 2.50 s more unless it returns; \
                 1 carrier losses in 30 s (1 since start)"
            )
        );
        assert_eq!(
            problem("web", &l).as_deref(),
            Some("web: carrier lost, master holding the group for 2.5 s more")
        );
    }

    #[test]
    fn status_shows_and_check_warns_about_a_damped_link() {
        let mut s = crate::status::render::tests::sample();
        let mut l = link();
        l.damped = true;
        l.losses = 3;
        l.losses_recent = 3;
        l.trusted_in_secs = Some(20.0);
        s.groups[0].link = Some(l);
        let (level, line) = crate::status::check::evaluate(&s);
        assert_eq!(level, crate::status::check::Level::Warning, "{line}");
        assert!(
            line.contains("web: link unstable (3 carrier losses in 30 s)"),
            "{line}"
        );
        let text = crate::status::render::render(&s);
        assert!(
            text.contains("  link: unstable, 3 carrier losses"),
            "{text}"
        );
    }
}
