//! The `--action` events a notifier passes and what each asks for.
//!
//! FreeBSD ≤ 9 devd reports a `carpN` interface's link (`system=IFNET`,
//! `type=LINK_UP|LINK_DOWN`); FreeBSD ≥ 10 reports CARP state
//! (`system=CARP`, `type=MASTER|BACKUP|INIT`, see carp(4)).

use std::fmt;
use std::str::FromStr;

/// One notifier event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    LinkUp,
    Master,
    LinkDown,
    Backup,
    Init,
}

/// What the hook does for an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// This host is now master of the group: take its IPs.
    Acquire,
    /// This host is not master (any more): give its IPs up.
    Release,
}

impl Event {
    pub const ALL: [Event; 5] = [
        Event::LinkUp,
        Event::Master,
        Event::LinkDown,
        Event::Backup,
        Event::Init,
    ];

    /// The name as devd spells it.
    pub fn name(self) -> &'static str {
        match self {
            Event::LinkUp => "LINK_UP",
            Event::Master => "MASTER",
            Event::LinkDown => "LINK_DOWN",
            Event::Backup => "BACKUP",
            Event::Init => "INIT",
        }
    }

    pub fn intent(self) -> Intent {
        match self {
            Event::LinkUp | Event::Master => Intent::Acquire,
            Event::LinkDown | Event::Backup | Event::Init => Intent::Release,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An `--action` value that is not an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown action '{0}' (allowed: LINK_UP or MASTER to take the group's IPs, \
     LINK_DOWN, BACKUP or INIT to release them; lower case works too)"
)]
pub struct UnknownEvent(pub String);

impl FromStr for Event {
    type Err = UnknownEvent;

    /// devd passes upper case; the case is not significant.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Event::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownEvent(crate::config::ini::shown(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devd_names_and_intents() {
        let cases = [
            ("LINK_UP", Event::LinkUp, Intent::Acquire),
            ("MASTER", Event::Master, Intent::Acquire),
            ("LINK_DOWN", Event::LinkDown, Intent::Release),
            ("BACKUP", Event::Backup, Intent::Release),
            ("INIT", Event::Init, Intent::Release),
        ];
        for (text, event, intent) in cases {
            assert_eq!(text.parse::<Event>(), Ok(event));
            assert_eq!(text.to_lowercase().parse::<Event>(), Ok(event));
            assert_eq!(event.intent(), intent);
            assert_eq!(event.to_string(), text);
        }
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for bad in ["", "UP", "LINK-UP", "LINK_UP ", "MASTER\n", "promote"] {
            let err = bad.parse::<Event>().err();
            assert!(err.is_some(), "{bad:?} accepted");
        }
        let msg = "LINK_SIDEWAYS"
            .parse::<Event>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            msg.as_deref(),
            Some(
                "unknown action 'LINK_SIDEWAYS' (allowed: LINK_UP or MASTER to take the \
                 group's IPs, LINK_DOWN, BACKUP or INIT to release them; lower case works too)"
            )
        );
    }
}
