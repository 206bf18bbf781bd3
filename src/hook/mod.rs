//! `ipfail hook`: the one-shot drop-in for the old devd `ip_manager` script.
//! A notifier (devd, udev, ucarp, keepalived) says this host became master
//! of a group, or stopped being it; the hook acquires or releases the
//! group's IPs with the daemon's config, probe and sys layer.
//!
//! Order of a run: load the config and resolve `--carp` (any error: exit 2,
//! nothing touched), check privileges, take the group's lock file
//! (`lockfile`; a daemon-owned group or a lock that stays busy: exit 3),
//! then do the address work (`apply`) while holding the lock, so runs of
//! the same group never interleave and the last to take the lock wins.

mod apply;
pub mod event;
pub mod target;

pub use event::{Event, Intent};

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;

use crate::config::{self, ini::shown, Group};
use crate::lockfile::{self, LockError, Role};
use crate::sys::{missing_capabilities, CAP_NET_ADMIN, CAP_NET_RAW};
use apply::Plan;

/// The group ended in the requested state.
pub const EXIT_OK: u8 = 0;
/// Some IP could not be added or removed (one line per IP says why).
pub const EXIT_INCOMPLETE: u8 = 1;
/// Usage or configuration error; nothing was touched. (clap's own usage
/// errors exit with 2 as well.)
pub const EXIT_USAGE: u8 = 2;
/// The daemon owns the group, or another hook run kept the lock too long;
/// nothing was touched.
pub const EXIT_BUSY: u8 = 3;

/// The arguments of `ipfail hook`.
#[derive(Debug, Clone)]
pub struct HookArgs {
    pub config: PathBuf,
    /// A section name or `VHID@IFACE`.
    pub carp: String,
    pub event: Event,
    pub dry_run: bool,
    pub force: bool,
}

/// Runs the hook and returns its exit status.
pub fn run(args: &HookArgs) -> u8 {
    let early = Say::new(format!("ipfail hook {} {}", shown(&args.carp), args.event));
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            early.err(format!("{e}; nothing touched"));
            return EXIT_USAGE;
        }
    };
    let group = match target::resolve(&config, &args.carp) {
        Ok(g) => g,
        Err(e) => {
            early.err(format!("{e}; nothing touched"));
            return EXIT_USAGE;
        }
    };
    let say = Say::new(format!("ipfail hook {} {}", group.name, args.event));
    let plan = Plan {
        group,
        intent: args.event.intent(),
        dry_run: args.dry_run,
        force: args.force,
        probe_timeout: config.global.probe_timeout,
        garp_count: config.global.garp_count,
        garp_interval: config.global.garp_interval,
    };

    let missing = missing_for(&plan, &missing_capabilities());
    if !missing.is_empty() {
        let why = format!(
            "permission denied: needs {} (run as root or grant the capability)",
            missing.join(" and ")
        );
        for net in &group.ips {
            say.line(format!("{net}: {}: {why}", plan.not_done()));
        }
        return EXIT_INCOMPLETE;
    }

    let dir = lockfile::lock_dir(&config.global);
    let lock = match lockfile::acquire(&dir, &group.name, Role::Hook, lockfile::LOCK_WAIT) {
        Ok(lock) => lock,
        Err(e @ LockError::Daemon { .. }) => {
            say.err(format!("{e}; not touching its addresses"));
            return EXIT_BUSY;
        }
        Err(e @ LockError::Timeout { .. }) => {
            say.err(format!("{e}; nothing touched"));
            return EXIT_BUSY;
        }
        Err(e @ LockError::BadName(_)) => {
            say.err(format!("{e}; nothing touched"));
            return EXIT_USAGE;
        }
        Err(e @ LockError::Io { .. }) => {
            say.err(format!("cannot take the group lock: {e}; nothing touched"));
            return EXIT_INCOMPLETE;
        }
    };

    // Everything from here on is printed while holding the lock, so the
    // lines of concurrent runs never interleave.
    say.line(header(&plan, args, &lock));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say.err(format!(
                "cannot start the async runtime: {e}; nothing touched"
            ));
            return EXIT_INCOMPLETE;
        }
    };
    let failed = runtime.block_on(apply::apply(&plan, &say));
    say.line(summary(&plan, failed));
    drop(runtime);
    drop(lock);
    if failed == 0 {
        EXIT_OK
    } else {
        EXIT_INCOMPLETE
    }
}

/// The capabilities this run needs that the process lacks: changing
/// addresses needs CAP_NET_ADMIN, probing and announcing CAP_NET_RAW.
fn missing_for(plan: &Plan<'_>, missing: &[&'static str]) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if !plan.dry_run {
        needed.push(CAP_NET_ADMIN);
    }
    if plan.intent == Intent::Acquire && !(plan.dry_run && plan.force) {
        needed.push(CAP_NET_RAW);
    }
    needed.retain(|c| missing.contains(c));
    needed
}

/// First line under the lock: `acquiring 2 IPs on eth0`, plus how the
/// group was selected and how long the lock took, when that is news.
fn header(plan: &Plan<'_>, args: &HookArgs, lock: &lockfile::GroupLock) -> String {
    let g: &Group = plan.group;
    let n = g.ips.len();
    let ips = if n == 1 { "IP" } else { "IPs" };
    let mut line = match plan.intent {
        Intent::Acquire => format!("acquiring {n} {ips} on {}", g.interface),
        Intent::Release => format!("releasing {n} {ips} from {}", g.interface),
    };
    if args.carp != g.name {
        line.push_str(&format!(" (selected by {})", shown(&args.carp)));
    }
    if plan.dry_run {
        line.push_str(" (dry run: changing nothing)");
    }
    if let Some(holder) = lock.waited_for() {
        line.push_str(&format!(
            "; waited {:.2} s for {holder}",
            lock.waited().as_secs_f64()
        ));
    }
    line
}

/// Last line: whether the group ended (or would end) in the wanted state.
fn summary(plan: &Plan<'_>, failed: usize) -> String {
    let g = plan.group;
    let n = g.ips.len();
    let iface = &g.interface;
    match (plan.dry_run, failed, plan.intent) {
        (true, 0, _) => "dry run done: nothing changed".to_string(),
        (true, f, _) => format!(
            "dry run done: nothing changed; {f} of {n} IPs {}",
            plan.not_done()
        ),
        (false, 0, Intent::Acquire) => format!("done: all {n} IPs on {iface}"),
        (false, 0, Intent::Release) => format!("done: none of the {n} IPs on {iface}"),
        (false, f, _) => format!("incomplete: {f} of {n} IPs {}", plan.not_done()),
    }
}

/// Prints one line per action, prefixed `ipfail hook GROUP EVENT:` so each
/// line in syslog says what it is about. Each line is one write (lines of
/// parallel runs sharing a log never mix), and write errors (a closed
/// pipe) are ignored: the addresses matter more than the report.
pub(crate) struct Say {
    prefix: String,
}

impl Say {
    fn new(prefix: String) -> Say {
        Say { prefix }
    }

    pub(crate) fn line(&self, msg: impl Display) {
        let text = format!("{}: {msg}\n", self.prefix);
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    pub(crate) fn err(&self, msg: impl Display) {
        let text = format!("{}: {msg}\n", self.prefix);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn group() -> Group {
        let cfg = config::parse(
            "[carp2]\ninterface = eth0\nips = 203.0.113.5 203.0.113.6\n",
            Path::new("x.cfg"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        cfg.groups[0].clone()
    }

    fn plan(g: &Group, intent: Intent, dry_run: bool, force: bool) -> Plan<'_> {
        Plan {
            group: g,
            intent,
            dry_run,
            force,
            probe_timeout: Duration::from_millis(300),
            garp_count: 3,
            garp_interval: Duration::from_millis(500),
        }
    }

    #[test]
    fn capabilities_needed_per_run() {
        let g = group();
        let none: [&str; 2] = [CAP_NET_ADMIN, CAP_NET_RAW];
        let check = |intent, dry, force| missing_for(&plan(&g, intent, dry, force), &none);
        assert_eq!(
            check(Intent::Acquire, false, false),
            [CAP_NET_ADMIN, CAP_NET_RAW]
        );
        assert_eq!(
            check(Intent::Acquire, false, true),
            [CAP_NET_ADMIN, CAP_NET_RAW]
        );
        assert_eq!(check(Intent::Acquire, true, false), [CAP_NET_RAW]);
        assert!(check(Intent::Acquire, true, true).is_empty());
        assert_eq!(check(Intent::Release, false, false), [CAP_NET_ADMIN]);
        assert!(check(Intent::Release, true, false).is_empty());
        // Root lacks nothing.
        assert!(missing_for(&plan(&g, Intent::Acquire, false, false), &[]).is_empty());
    }

    #[test]
    fn summaries() {
        let g = group();
        assert_eq!(
            summary(&plan(&g, Intent::Acquire, false, false), 0),
            "done: all 2 IPs on eth0"
        );
        assert_eq!(
            summary(&plan(&g, Intent::Release, false, false), 0),
            "done: none of the 2 IPs on eth0"
        );
        assert_eq!(
            summary(&plan(&g, Intent::Acquire, false, false), 1),
            "incomplete: 1 of 2 IPs not added"
        );
        assert_eq!(
            summary(&plan(&g, Intent::Release, true, false), 1),
            "dry run done: nothing changed; 1 of 2 IPs would not be removed"
        );
    }
}
