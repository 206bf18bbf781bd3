//! `ipfail status --check`: one line and a Nagios/Zabbix exit code.
//!
//! - CRITICAL: the daemon is down; a group has no master anywhere (this host
//!   is INIT, or BACKUP without an advert for longer than its master-down
//!   interval); an IP is in conflict or failed;
//! - CRITICAL too when no healthy host holds the group: this host is MASTER
//!   and its health checks fail (a degraded master), or this host is a
//!   BACKUP whose checks fail while the master it follows advertises itself
//!   as least preferred (advbase and advskew 255, see below);
//! - WARNING: a health check fails on a BACKUP (whose master advertises its
//!   real values); an advert failed authentication, a peer tied with us
//!   exactly (same advbase and advskew), or a group changed state 3 or more
//!   times, in the last 5 minutes; a forced takeover (`ipfail takeover
//!   --despite-answers`) is running;
//! - WARNING too when this host is a healthy BACKUP and the master it
//!   follows advertises itself as least preferred, yet this host does not
//!   take over: because the operator demoted this host, or, not demoted, for
//!   longer than its master-down interval;
//! - WARNING too while a peer still signs its adverts with the group's
//!   previous address list (docs/safety.md §10), as long as it does;
//! - UNKNOWN: the configuration cannot be read, or the daemon cannot be asked;
//! - OK otherwise.
//!
//! "Least preferred" is the 255/255 advert ([`BOW_OUT`]): what an ipfail
//! master sends while its checks fail or the operator demoted it
//! (`GroupDriver::apply_demotion` → [`Fsm::set_demoted_because`], whose
//! [`Fsm::advertised`] is 255/255), and once as it stops. A healthy BACKUP
//! that is not demoted takes such a master over at the first of these
//! adverts, preempt or not ([`Fsm::handle_advert`], bow-out rule); a
//! demoted or unhealthy one follows it. So a BACKUP showing a 255/255
//! master it heard recently means:
//!
//! - this host is unhealthy too: the master is unhealthy or demoted and
//!   this host cannot take over, nobody healthy holds the group: CRITICAL;
//! - this host is healthy but demoted: the group waits on the operator:
//!   WARNING, naming `ipfail promote`;
//! - this host is healthy and not demoted: it should take over at the
//!   master's next advert, within about one advert interval of becoming
//!   healthy (or promoted, or entering BACKUP). Longer than its master-down
//!   interval (3 × advbase + advskew/256, which also allows for a master
//!   advertising more slowly than this host; a master silent that long is
//!   already CRITICAL as "no master heard") means the takeover is broken:
//!   WARNING.
//!
//! WARNING, not CRITICAL, for a healthy backup: the adverts cannot tell a
//! master whose service is dead from one an operator demoted for
//! maintenance while it still serves, and the first case is already
//! CRITICAL on the master itself ("MASTER but unhealthy"). A healthy backup
//! that holds off only says the failover is not happening. The time this
//! host has been promoted is not in the status document, so for up to one
//! advert interval after `ipfail promote` the last case may warn early.
//!
//! [`Fsm::set_demoted_because`]: crate::carp::fsm::Fsm::set_demoted_because
//! [`Fsm::advertised`]: crate::carp::fsm::Fsm::advertised
//! [`Fsm::handle_advert`]: crate::carp::fsm::Fsm::handle_advert

use crate::carp::fsm::{master_down_interval, BOW_OUT};
use crate::control::schema::{GroupStatus, MasterStatus, Status};

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
    let down_after = master_down_interval(g.advbase, g.advskew).as_secs_f64();
    let bowed = least_preferred_master(g, down_after);
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
            _ => match bowed {
                Some(m) => out.push((
                    Level::Critical,
                    format!(
                        "{name}: no healthy host holds the group: master {} advertises {BOW_OUT}/{BOW_OUT} \
                         (least preferred: unhealthy or demoted) and this host is {what}: \
                         restore the service on either host",
                        m.address
                    ),
                )),
                None => out.push((Level::Warning, format!("{name}: {what}"))),
            },
        }
    } else if let Some(m) = bowed {
        let advert = format!(
            "master {} advertises {BOW_OUT}/{BOW_OUT} (least preferred: unhealthy or demoted)",
            m.address
        );
        if g.demoted {
            out.push((
                Level::Warning,
                format!(
                    "{name}: {advert} and this healthy host is demoted, so nobody takes over: \
                     `ipfail promote {name}` here, or fix the master"
                ),
            ));
        } else {
            // Healthy, not demoted and BACKUP for this long: the master's
            // next advert should have made this host MASTER.
            let eligible = g
                .health
                .as_ref()
                .and_then(|h| {
                    h.checks
                        .iter()
                        .map(|c| c.since_change_secs)
                        .min_by(f64::total_cmp)
                })
                .map_or(g.state_secs, |healthy| healthy.min(g.state_secs));
            if eligible > down_after {
                out.push((
                    Level::Warning,
                    format!(
                        "{name}: {advert}, but this healthy host has not taken over in {eligible:.1} s \
                         (it should at the master's next advert): see `ipfail status` and the log \
                         on both hosts; stopping ipfail on {} hands the group over",
                        m.address
                    ),
                ));
            }
        }
    }
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
            let who = match ip.answered_by.as_ref().map(|a| a.kind.as_str()) {
                Some("not_a_peer") => "; not a CARP peer heard on this link",
                Some("silent_carp_peer") => "; a CARP peer that stopped advertising",
                Some("carp_peer") => "; a live CARP peer",
                Some("virtual_mac") => "; a CARP/VRRP virtual MAC nobody advertises here",
                _ => "",
            };
            out.push((
                Level::Critical,
                format!(
                    "{name}: {} {what} ({}{who})",
                    ip.ip,
                    ip.detail.as_deref().unwrap_or("no detail")
                ),
            ));
        }
    }
    if let Some(t) = &g.takeover {
        let claimed = match (t.contested.is_empty(), t.last_claim_age_secs) {
            (false, Some(age)) => format!(
                "another host still claims {} (last {age:.1} s ago)",
                t.contested.join(" ")
            ),
            _ => "nobody else claimed the IPs at the last look".to_string(),
        };
        out.push((
            Level::Warning,
            format!(
                "{name}: forced takeover by the operator for {:.0} s: {claimed}",
                t.since_secs
            ),
        ));
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
    if let Some(p) = g
        .link
        .as_ref()
        .and_then(|l| super::link::problem(&g.name, l))
    {
        out.push((Level::Warning, p));
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

/// The master a BACKUP follows, if it was heard within `down_after` and
/// advertises itself as least preferred (255/255).
fn least_preferred_master(g: &GroupStatus, down_after: f64) -> Option<&MasterStatus> {
    if g.state != "BACKUP" {
        return None;
    }
    g.master.as_ref().filter(|m| {
        !m.this_host && m.age_secs <= down_after && (m.advbase, m.advskew) == (BOW_OUT, BOW_OUT)
    })
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
    use crate::control::schema::{
        AnswerStatus, AuthStatus, IpStatus, MasterStatus, TakeoverStatus,
    };

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

    /// A group health with one check: failing, or ok for `since` seconds.
    fn one_check(ok: bool, since: f64) -> crate::control::schema::HealthStatus {
        use crate::control::schema::{CheckStatus, HealthStatus};
        HealthStatus {
            healthy: ok,
            pending: false,
            fall: 3,
            rise: 2,
            interval_secs: 1.0,
            timeout_secs: 0.5,
            checks: vec![CheckStatus {
                check: "tcp 127.0.0.1:443".into(),
                state: if ok { "ok" } else { "failing" }.into(),
                last_ok: Some(ok),
                last_latency_ms: Some(0.3),
                last_detail: (!ok).then(|| "connect: refused".into()),
                last_age_secs: Some(0.2),
                since_change_secs: since,
            }],
        }
    }

    /// `web` (BACKUP, advbase 1 advskew 100) follows a master that
    /// advertises 255/255, last heard 0.4 s ago.
    fn under_a_least_preferred_master() -> Status {
        let mut s = status();
        s.groups[0].master = Some(MasterStatus {
            address: "192.0.2.1".into(),
            advbase: 255,
            advskew: 255,
            age_secs: 0.4,
            this_host: false,
        });
        s
    }

    #[test]
    fn an_unhealthy_backup_under_a_least_preferred_master_is_critical() {
        let mut s = under_a_least_preferred_master();
        s.groups[0].health = Some(one_check(false, 4.0));
        let (level, line) = evaluate(&s);
        assert_eq!((level, level.code()), (Level::Critical, 2));
        assert_eq!(
            line,
            "IPFAIL CRITICAL - web: no healthy host holds the group: master 192.0.2.1 \
             advertises 255/255 (least preferred: unhealthy or demoted) and this host is \
             unhealthy (tcp 127.0.0.1:443): restore the service on either host"
        );
        // Not yet healthy (booting) counts as unhealthy; so does being
        // demoted as well.
        if let Some(h) = s.groups[0].health.as_mut() {
            h.pending = true;
            h.checks[0].state = "pending".into();
        }
        s.groups[0].demoted = true;
        let (level, line) = evaluate(&s);
        assert_eq!(level, Level::Critical);
        assert!(line.contains("this host is not yet healthy"), "{line}");
        // The same backup under a master advertising its real values only
        // warns: a healthy host holds the group.
        let mut s = status();
        s.groups[0].health = Some(one_check(false, 4.0));
        assert_eq!(evaluate(&s).0, Level::Warning);
        // advskew 255 alone is not the least preferred advert.
        s.groups[0].master = Some(MasterStatus {
            address: "192.0.2.1".into(),
            advbase: 1,
            advskew: 255,
            age_secs: 0.4,
            this_host: false,
        });
        assert_eq!(evaluate(&s).0, Level::Warning);
    }

    #[test]
    fn a_least_preferred_master_silent_too_long_is_reported_once_as_no_master() {
        let mut s = under_a_least_preferred_master();
        s.groups[0].health = Some(one_check(false, 4.0));
        if let Some(m) = s.groups[0].master.as_mut() {
            m.age_secs = 3.5; // it stopped after its bow-out
        }
        let (level, line) = evaluate(&s);
        assert_eq!(level, Level::Critical);
        assert_eq!(
            line,
            "IPFAIL CRITICAL - web: BACKUP and no master heard for 3.5 s (master down after 3.39 s); \
             web: unhealthy (tcp 127.0.0.1:443)"
        );
    }

    #[test]
    fn a_healthy_backup_that_does_not_take_over_from_a_least_preferred_master_warns() {
        // No checks, BACKUP for 754.2 s: it should have taken over.
        let s = under_a_least_preferred_master();
        let (level, line) = evaluate(&s);
        assert_eq!((level, level.code()), (Level::Warning, 1));
        assert_eq!(
            line,
            "IPFAIL WARNING - web: master 192.0.2.1 advertises 255/255 (least preferred: \
             unhealthy or demoted), but this healthy host has not taken over in 754.2 s \
             (it should at the master's next advert): see `ipfail status` and the log on \
             both hosts; stopping ipfail on 192.0.2.1 hands the group over"
        );
        // Healthy for 1 s only: the master's next advert has yet to come
        // (master down after 3.39 s).
        let mut s = under_a_least_preferred_master();
        s.groups[0].health = Some(one_check(true, 1.0));
        assert_eq!(evaluate(&s).0, Level::Ok);
        s.groups[0].health = Some(one_check(true, 3.5));
        let (level, line) = evaluate(&s);
        assert_eq!(level, Level::Warning);
        assert!(line.contains("has not taken over in 3.5 s"), "{line}");
        // Just became BACKUP (healthy for long): not yet either.
        s.groups[0].state_secs = 0.5;
        assert_eq!(evaluate(&s).0, Level::Ok);
        // A master advertising its real values is fine.
        let mut s = status();
        s.groups[0].health = Some(one_check(true, 600.0));
        assert_eq!(evaluate(&s).0, Level::Ok);
    }

    #[test]
    fn a_demoted_healthy_backup_under_a_least_preferred_master_warns_and_names_promote() {
        let mut s = under_a_least_preferred_master();
        s.groups[0].demoted = true;
        s.groups[0].state_secs = 0.5; // no grace: a demoted host never takes over
        let (level, line) = evaluate(&s);
        assert_eq!((level, level.code()), (Level::Warning, 1));
        assert_eq!(
            line,
            "IPFAIL WARNING - web: master 192.0.2.1 advertises 255/255 (least preferred: \
             unhealthy or demoted) and this healthy host is demoted, so nobody takes over: \
             `ipfail promote web` here, or fix the master"
        );
    }

    #[test]
    fn only_a_backup_judges_a_least_preferred_master() {
        // A demoted MASTER shows itself as the master, advertising 255/255.
        let mut s = status();
        s.groups[1].demoted = true;
        if let Some(m) = s.groups[1].master.as_mut() {
            (m.advbase, m.advskew) = (255, 255);
        }
        assert_eq!(evaluate(&s).0, Level::Ok);
        // INIT is CRITICAL for its own reason, not this one.
        let mut s = under_a_least_preferred_master();
        s.groups[0].state = "INIT".into();
        s.groups[0].reason = "link down".into();
        assert_eq!(
            evaluate(&s).1,
            "IPFAIL CRITICAL - web: INIT, no master here (link down)"
        );
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
            answered_by: None,
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
    fn a_zombie_is_named_and_a_forced_takeover_warns() {
        let mut s = status();
        s.groups[1].ips[1] = IpStatus {
            ip: "203.0.113.11/32".into(),
            state: "conflict".into(),
            detail: Some("answered ARP from 02:00:00:00:00:03".into()),
            answered_by: Some(AnswerStatus {
                mac: Some("02:00:00:00:00:03".into()),
                ip: None,
                kind: "not_a_peer".into(),
                carp_peer: None,
                since_secs: 3.0,
                advice: "remove it there".into(),
            }),
        };
        assert_eq!(
            evaluate(&s).1,
            "IPFAIL CRITICAL - db: 203.0.113.11/32 in conflict (answered ARP from 02:00:00:00:00:03; \
             not a CARP peer heard on this link)"
        );
        let mut s = status();
        s.groups[0].takeover = Some(TakeoverStatus {
            since_secs: 65.0,
            contested: vec!["203.0.113.10".into()],
            last_claim_age_secs: Some(0.4),
            claims: 12,
        });
        assert_eq!(
            evaluate(&s),
            (
                Level::Warning,
                "IPFAIL WARNING - web: forced takeover by the operator for 65 s: another host \
                 still claims 203.0.113.10 (last 0.4 s ago)"
                    .to_string()
            )
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
