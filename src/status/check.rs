//! `ipfail status --check`: one line and a Nagios/Zabbix exit code.
//!
//! - CRITICAL: the daemon is down; a group has no master anywhere (this host
//!   is INIT, or BACKUP without an advert for longer than its master-down
//!   interval); an IP is in conflict or failed;
//! - CRITICAL too: this host is MASTER of a group whose health checks fail
//!   (a degraded master: no healthy host holds the group);
//! - WARNING: a health check fails on a BACKUP; an advert failed authentication, a peer tied with us exactly
//!   (same advbase and advskew), or a group changed state 3 or more times,
//!   in the last 5 minutes; a peer still signs its adverts with the
//!   group's previous address list (docs/safety.md §10), as long as it does;
//! - UNKNOWN: the configuration cannot be read, or the daemon cannot be asked;
//! - OK otherwise.

use crate::carp::fsm::master_down_interval;
use crate::control::schema::{GroupStatus, Status};

/// Auth failures and flapping count as recent within this many seconds.
pub const RECENT_SECS: f64 = 300.0;
/// State changes within [`RECENT_SECS`] that count as flapping.
pub const FLAPS: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Level {
    /// The plugin exit code.
    pub fn code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Unknown => 3,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }

    /// `IPFAIL LEVEL - text`.
    pub fn line(self, text: &str) -> String {
        format!("IPFAIL {} - {text}", self.word())
    }
}

/// The verdict on a daemon's status and the line to print.
pub fn evaluate(s: &Status) -> (Level, String) {
    let mut problems: Vec<(Level, String)> = Vec::new();
    for g in &s.groups {
        problems.extend(group_problems(g));
    }
    if problems.is_empty() {
        let summary: Vec<String> = s.groups.iter().map(summary).collect();
        return (Level::Ok, Level::Ok.line(&summary.join(", ")));
    }
    // Worst first; the level is the worst one.
    problems.sort_by_key(|p| std::cmp::Reverse(p.0));
    let level = problems.first().map_or(Level::Ok, |p| p.0);
    let text: Vec<String> = problems.into_iter().map(|p| p.1).collect();
    (level, level.line(&text.join("; ")))
}

fn group_problems(g: &GroupStatus) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let name = &g.name;
    if let Some(h) = g.health.as_ref().filter(|h| !h.healthy) {
        let failing: Vec<&str> = h
            .checks
            .iter()
            .filter(|c| c.state != "ok")
            .map(|c| c.check.as_str())
            .collect();
        let what = format!(
            "{} ({})",
            if h.pending {
                "not yet healthy"
            } else {
                "unhealthy"
            },
            failing.join(", ")
        );
        match g.state.as_str() {
            "MASTER" => out.push((
                Level::Critical,
                format!("{name}: MASTER but {what}: no healthy host holds the group"),
            )),
            _ => out.push((Level::Warning, format!("{name}: {what}"))),
        }
    }
    let down_after = master_down_interval(g.advbase, g.advskew).as_secs_f64();
    match g.state.as_str() {
        "INIT" => out.push((
            Level::Critical,
            format!("{name}: INIT, no master here ({})", g.reason),
        )),
        "BACKUP" => match &g.master {
            None => out.push((Level::Critical, format!("{name}: BACKUP and no master heard"))),
            Some(m) if m.age_secs > down_after => out.push((
                Level::Critical,
                format!(
                    "{name}: BACKUP and no master heard for {:.1} s (master down after {down_after:.2} s)",
                    m.age_secs
                ),
            )),
            Some(_) => {}
        },
        _ => {}
    }
    for ip in &g.ips {
        if ip.state == "conflict" || ip.state == "failed" {
            let what = if ip.state == "conflict" {
                "in conflict"
            } else {
                "failed"
            };
            out.push((
                Level::Critical,
                format!(
                    "{name}: {} {what} ({})",
                    ip.ip,
                    ip.detail.as_deref().unwrap_or("no detail")
                ),
            ));
        }
    }
    if let Some(a) = g
        .auth
        .as_ref()
        .filter(|a| a.last_failure_age_secs < RECENT_SECS)
    {
        let n = g.counters.rejected.get("auth_failed").copied().unwrap_or(0);
        out.push((
            Level::Warning,
            format!(
                "{name}: {n} adverts failed authentication, last from {}: {}",
                a.last_failure_from, a.last_failure
            ),
        ));
    }
    for t in g.ties.iter().filter(|t| t.last_age_secs < RECENT_SECS) {
        out.push((
            Level::Warning,
            format!(
                "{name}: exact tie with {} (both advbase {} advskew {}): give the hosts different advskew",
                t.peer, t.advbase, t.advskew
            ),
        ));
    }
    for p in g
        .previous_list
        .iter()
        .flat_map(|p| p.peers.iter().map(move |peer| (peer, p.accepted_for_secs)))
    {
        let (peer, left) = p;
        out.push((
            Level::Warning,
            format!(
                "{name}: {} still signs its adverts with the previous address list (for {}), \
                 accepted for {} more: reload it",
                peer.peer,
                crate::status::render::span(peer.since_secs),
                crate::status::render::span(left)
            ),
        ));
    }
    if g.flaps_recent >= FLAPS {
        out.push((
            Level::Warning,
            format!(
                "{name}: flapping, {} state changes in 5 min",
                g.flaps_recent
            ),
        ));
    }
    out
}

fn summary(g: &GroupStatus) -> String {
    let held = g.ips.iter().filter(|i| i.state == "held").count();
    let demoted = if g.demoted { ", demoted" } else { "" };
    match (&g.master, g.state.as_str()) {
        (_, "MASTER") => format!(
            "{} MASTER ({held}/{} IPs held{demoted})",
            g.name,
            g.ips.len()
        ),
        (Some(m), state) => format!("{} {state} (master {}{demoted})", g.name, m.address),
        (None, state) => format!("{} {state}{demoted}", g.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::schema::{AuthStatus, IpStatus, MasterStatus};

    fn status() -> Status {
        let mut s = crate::status::render::tests::sample();
        let mut master = s.groups[0].clone();
        master.name = "db".into();
        master.state = "MASTER".into();
        master.master = Some(MasterStatus {
            address: "192.0.2.2".into(),
            advbase: 1,
            advskew: 100,
            age_secs: 0.3,
            this_host: true,
        });
        master.master_down_in_secs = None;
        for ip in &mut master.ips {
            ip.state = "held".into();
        }
        s.groups.push(master);
        s
    }

    #[test]
    fn all_fine_is_ok_with_a_summary() {
        let (level, line) = evaluate(&status());
        assert_eq!(level, Level::Ok);
        assert_eq!(level.code(), 0);
        assert_eq!(
            line,
            "IPFAIL OK - web BACKUP (master 192.0.2.1), db MASTER (2/2 IPs held)"
        );
    }

    #[test]
    fn failing_checks_warn_on_a_backup_and_are_critical_on_the_master() {
        use crate::control::schema::{CheckStatus, HealthStatus};
        let failing = HealthStatus {
            healthy: false,
            pending: false,
            fall: 3,
            rise: 2,
            interval_secs: 1.0,
            timeout_secs: 0.5,
            checks: vec![CheckStatus {
                check: "http http://127.0.0.1:80/health".into(),
                state: "failing".into(),
                last_ok: Some(false),
                last_latency_ms: Some(0.4),
                last_detail: Some("connect: refused".into()),
                last_age_secs: Some(0.2),
                since_change_secs: 4.0,
            }],
        };
        let mut s = status();
        s.groups[0].health = Some(failing.clone()); // web: BACKUP
        let (level, line) = evaluate(&s);
        assert_eq!(level, Level::Warning);
        assert_eq!(
            line,
            "IPFAIL WARNING - web: unhealthy (http http://127.0.0.1:80/health)"
        );
        let mut s = status();
        s.groups[1].health = Some(failing); // db: MASTER
        let (level, line) = evaluate(&s);
        assert_eq!(level, Level::Critical);
        assert!(line.contains("db: MASTER but unhealthy"), "{line}");
    }

    #[test]
    fn no_master_anywhere_is_critical() {
        let mut s = status();
        s.groups[0].state = "INIT".into();
        s.groups[0].reason = "link down".into();
        let (level, line) = evaluate(&s);
        assert_eq!((level, level.code()), (Level::Critical, 2));
        assert_eq!(
            line,
            "IPFAIL CRITICAL - web: INIT, no master here (link down)"
        );

        let mut s = status();
        if let Some(m) = s.groups[0].master.as_mut() {
            m.age_secs = 3.5; // advbase 1 advskew 100: down after 3.39 s
        }
        assert_eq!(evaluate(&s).0, Level::Critical);
        s.groups[0].master = None;
        assert_eq!(evaluate(&s).0, Level::Critical);
    }

    #[test]
    fn a_conflict_is_critical_and_outranks_warnings() {
        let mut s = status();
        s.groups[1].ips[1] = IpStatus {
            ip: "203.0.113.11/32".into(),
            state: "conflict".into(),
            detail: Some("answered ARP from 02:00:00:00:00:03".into()),
        };
        s.groups[0].flaps_recent = 5;
        let (level, line) = evaluate(&s);
        assert_eq!(level, Level::Critical);
        assert_eq!(
            line,
            "IPFAIL CRITICAL - db: 203.0.113.11/32 in conflict (answered ARP from 02:00:00:00:00:03); \
             web: flapping, 5 state changes in 5 min"
        );
    }

    #[test]
    fn recent_auth_failures_and_flapping_warn_old_ones_do_not() {
        let mut s = status();
        s.groups[0]
            .counters
            .rejected
            .insert("auth_failed".into(), 4);
        s.groups[0].auth = Some(AuthStatus {
            kind: "pass_differs".into(),
            last_failure: "pass differs".into(),
            last_failure_from: "192.0.2.4".into(),
            last_failure_age_secs: 12.0,
        });
        let (level, line) = evaluate(&s);
        assert_eq!((level, level.code()), (Level::Warning, 1));
        assert_eq!(
            line,
            "IPFAIL WARNING - web: 4 adverts failed authentication, last from 192.0.2.4: pass differs"
        );
        if let Some(a) = s.groups[0].auth.as_mut() {
            a.last_failure_age_secs = 301.0;
        }
        assert_eq!(evaluate(&s).0, Level::Ok);
        s.groups[1].flaps_recent = 3;
        assert_eq!(evaluate(&s).0, Level::Warning);
        s.groups[1].flaps_recent = 2;
        assert_eq!(evaluate(&s).0, Level::Ok);
    }

    #[test]
    fn a_recent_exact_tie_warns_an_old_one_does_not() {
        let mut s = status();
        s.groups[0].ties = vec![crate::control::schema::TieStatus {
            peer: "192.0.3.1".into(),
            advbase: 1,
            advskew: 100,
            adverts: 4,
            last_age_secs: 2.0,
        }];
        let (level, line) = evaluate(&s);
        assert_eq!((level, level.code()), (Level::Warning, 1));
        assert_eq!(
            line,
            "IPFAIL WARNING - web: exact tie with 192.0.3.1 (both advbase 1 advskew 100): \
             give the hosts different advskew"
        );
        s.groups[0].ties[0].last_age_secs = 301.0;
        assert_eq!(evaluate(&s).0, Level::Ok);
    }

    #[test]
    fn a_peer_on_the_previous_address_list_warns_while_it_lasts() {
        use crate::control::schema::{PreviousListPeerStatus, PreviousListStatus};
        let mut s = status();
        s.groups[0].previous_list = Some(PreviousListStatus {
            accepted_for_secs: 1500.0,
            signing_for_secs: 600.0,
            peers: Vec::new(),
        });
        assert_eq!(evaluate(&s).0, Level::Ok, "a grace alone is no problem");
        s.groups[0]
            .previous_list
            .as_mut()
            .expect("set above")
            .peers
            .push(PreviousListPeerStatus {
                peer: "192.0.2.1".into(),
                since_unix: 1_700_000_000,
                since_secs: 125.0,
                last_age_secs: 0.4,
                adverts: 125,
                addresses: vec!["203.0.113.10".into()],
            });
        let (level, line) = evaluate(&s);
        assert_eq!((level, level.code()), (Level::Warning, 1));
        assert_eq!(
            line,
            "IPFAIL WARNING - web: 192.0.2.1 still signs its adverts with the previous address \
             list (for 2m05s), accepted for 25m00s more: reload it"
        );
        let text = crate::status::render::render(&s);
        assert!(
            text.contains(
                "  PREVIOUS LIST: 192.0.2.1 still signs its adverts with the previous address list (1"
            ),
            "{text}"
        );
        assert!(
            text.contains("  previous address list: accepted for 25m00s more"),
            "{text}"
        );
        s.groups[0].previous_list = None;
        assert_eq!(evaluate(&s).0, Level::Ok);
    }

    #[test]
    fn levels_order_and_codes() {
        assert!(Level::Unknown > Level::Critical && Level::Critical > Level::Warning);
        assert_eq!(
            [Level::Ok, Level::Warning, Level::Critical, Level::Unknown].map(Level::code),
            [0, 1, 2, 3]
        );
        assert_eq!(Level::Unknown.line("x"), "IPFAIL UNKNOWN - x");
    }
}
