//! The human form of `ipfail status`: one table row per group and a few
//! indented lines saying why, who is master, where each IP stands and what
//! was counted. Every line fits [`WIDTH`] columns.

use crate::control::schema::{GroupStatus, Status};
use std::fmt::Write as _;

pub const WIDTH: usize = 100;
/// Continuation lines of a wrapped detail line start here.
const INDENT: usize = 6;
/// Addresses listed per IP state before "... and N more".
const MAX_LISTED: usize = 24;

const HEADERS: [&str; 7] = [
    "GROUP", "VHID", "STATE", "FOR", "ADV", "PREEMPT", "IPS HELD",
];

pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let d = &s.daemon;
    let head = format!(
        "ipfail {} daemon, pid {}, up {}, config {}",
        d.version,
        d.pid,
        span(d.uptime_secs),
        d.config
    );
    push_wrapped(&mut out, "", &[head]);
    out.push('\n');

    let rows: Vec<[String; 7]> = s.groups.iter().map(row).collect();
    let mut widths = HEADERS.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let _ = writeln!(out, "{}", table_line(&HEADERS.map(String::from), &widths));
    for (g, r) in s.groups.iter().zip(&rows) {
        let _ = writeln!(out, "{}", table_line(r, &widths));
        details(&mut out, g);
    }
    for i in &s.interfaces {
        let rejected = nonzero(&i.rejected);
        if !rejected.is_empty() {
            push_wrapped(
                &mut out,
                &format!(
                    "interface {} (adverts from {}) rejected: ",
                    i.name, i.source
                ),
                &rejected,
            );
        }
    }
    out
}

fn row(g: &GroupStatus) -> [String; 7] {
    let held = g.ips.iter().filter(|i| i.state == "held").count();
    [
        g.name.clone(),
        g.vhid.to_string(),
        g.state.clone(),
        span(g.state_secs),
        format!("{}/{}", g.advbase, g.advskew),
        if g.preempt { "yes" } else { "no" }.to_string(),
        format!("{held}/{}", g.ips.len()),
    ]
}

/// Columns left-aligned except numbers; cells never wider than the line.
fn table_line(cells: &[String; 7], widths: &[usize; 7]) -> String {
    let mut line = String::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        if i == 1 {
            let _ = write!(line, "{cell:>w$}");
        } else {
            let _ = write!(line, "{cell:<w$}");
        }
    }
    fit(line.trim_end())
}

fn details(out: &mut String, g: &GroupStatus) {
    let mut why = g.reason.clone();
    if let Some(left) = g.master_down_in_secs {
        let _ = write!(why, "; master down in {left:.2} s");
    }
    push_wrapped(out, "  why: ", &[why]);
    let master = match &g.master {
        Some(m) if m.this_host => format!(
            "this host {} (advertising {}/{}), last advert {:.2} s ago",
            m.address, m.advbase, m.advskew, m.age_secs
        ),
        Some(m) => format!(
            "{} (advbase {} advskew {}), last heard {:.2} s ago",
            m.address, m.advbase, m.advskew, m.age_secs
        ),
        None => "none heard yet".to_string(),
    };
    push_wrapped(out, "  master: ", &[master]);
    if g.demoted {
        push_wrapped(
            out,
            "  demoted: ",
            &[format!(
                "advertising 255/255 (least preferred) until `ipfail promote {}`",
                g.name
            )],
        );
    }
    if let Some(link) = g.link.as_ref().and_then(super::link::detail) {
        push_wrapped(out, "  link: ", &[link]);
    }
    for state in ["held", "absent", "probing"] {
        let ips: Vec<String> = g
            .ips
            .iter()
            .filter(|i| i.state == state)
            .map(|i| short_ip(&i.ip))
            .collect();
        if ips.is_empty() {
            continue;
        }
        let mut listed: Vec<String> = ips.iter().take(MAX_LISTED).cloned().collect();
        if ips.len() > MAX_LISTED {
            listed.push(format!("... and {} more", ips.len() - MAX_LISTED));
        }
        push_wrapped(out, &format!("  {state}: "), &listed);
    }
    for ip in g
        .ips
        .iter()
        .filter(|i| i.state == "conflict" || i.state == "failed")
    {
        let what = format!(
            "{} {}",
            short_ip(&ip.ip),
            ip.detail.as_deref().unwrap_or("(no detail)")
        );
        push_wrapped(out, &format!("  {}: ", ip.state.to_uppercase()), &[what]);
    }
    answerers(out, g);
    if let Some(t) = &g.takeover {
        let mut what = format!(
            "by the operator {} ago: IPs taken without the probe and defended with \
             gratuitous ARP;",
            span(t.since_secs)
        );
        match t.last_claim_age_secs {
            Some(age) => {
                let _ = write!(
                    what,
                    " another host claimed them {} times, last {age:.1} s ago;",
                    t.claims
                );
            }
            None => what.push_str(" no other host claimed them since;"),
        }
        if !t.contested.is_empty() {
            let _ = write!(what, " still claimed: {};", t.contested.join(" "));
        }
        let _ = write!(what, " end it with `ipfail takeover {} --undo`", g.name);
        push_wrapped(out, "  FORCED TAKEOVER: ", &[what]);
    }
    let c = &g.counters;
    let counters = [
        format!("sent {}", c.adverts_sent),
        if c.adverts_previous_list > 0 {
            format!(
                "received {} ({} with the previous address list);",
                c.adverts_received, c.adverts_previous_list
            )
        } else {
            format!("received {};", c.adverts_received)
        },
        format!(
            "transitions {} ({} in 5 min);",
            c.transitions, g.flaps_recent
        ),
        format!("conflicts {};", c.conflicts),
        format!("gratuitous ARPs {}", c.garps_sent),
    ];
    push_wrapped(out, "  adverts: ", &counters);
    if let Some(h) = &g.health {
        let verdict = match (h.healthy, h.pending) {
            (true, _) => "healthy".to_string(),
            (false, true) => {
                "PENDING (not yet healthy: advertising as least preferred)".to_string()
            }
            (false, false) => "UNHEALTHY: advertising as least preferred".to_string(),
        };
        push_wrapped(
            out,
            "  health: ",
            &[
                format!("{verdict};"),
                format!(
                    "fall {} rise {}, every {} s, timeout {} s",
                    h.fall, h.rise, h.interval_secs, h.timeout_secs
                ),
            ],
        );
        for c in &h.checks {
            let mut words = vec![format!("{:<8}", c.state.to_uppercase()), c.check.clone()];
            if let (Some(ms), Some(detail)) = (c.last_latency_ms, &c.last_detail) {
                words.push(format!("{ms:.1} ms:"));
                words.push(detail.clone());
            }
            words.push(format!("(for {:.0} s)", c.since_change_secs));
            push_wrapped(out, "    ", &words);
        }
    }
    if let Some(e) = &g.last_ip_event {
        push_wrapped(
            out,
            "  IPs lost: ",
            &[
                format!("{};", c.ips_lost),
                format!("last {:.1} s ago:", e.age_secs),
                e.what.clone(),
            ],
        );
    }
    let rejected = nonzero(&c.rejected);
    if !rejected.is_empty() {
        push_wrapped(out, "  rejected: ", &rejected);
    }
    for t in &g.ties {
        push_wrapped(
            out,
            "  TIE: ",
            &[format!(
                "{} advertises {}/{} like this host ({} adverts, last {:.1} s ago): the address \
                 decides (docs/interop.md); give the hosts different advskew",
                t.peer, t.advbase, t.advskew, t.adverts, t.last_age_secs
            )],
        );
    }
    if let Some(p) = &g.previous_list {
        let signing = if p.signing_for_secs > 0.0 {
            format!(
                "our adverts are signed with it for {} more, so peers not yet reloaded accept them",
                span(p.signing_for_secs)
            )
        } else {
            "our adverts use the current list".to_string()
        };
        push_wrapped(
            out,
            "  previous address list: ",
            &[format!(
                "accepted for {} more (docs/safety.md §10); {signing}",
                span(p.accepted_for_secs)
            )],
        );
        for peer in &p.peers {
            push_wrapped(
                out,
                "  PREVIOUS LIST: ",
                &[format!(
                    "{} still signs its adverts with the previous address list ({} addresses) \
                     since {} ago ({} adverts, last {:.1} s ago): reload it within {}",
                    peer.peer,
                    peer.addresses.len(),
                    span(peer.since_secs),
                    peer.adverts,
                    peer.last_age_secs,
                    span(p.accepted_for_secs)
                )],
            );
        }
    }
    if let Some(a) = &g.auth {
        push_wrapped(
            out,
            "  auth: ",
            &[format!(
                "last failure {:.1} s ago from {}: {}",
                a.last_failure_age_secs, a.last_failure_from, a.last_failure
            )],
        );
    }
}

fn nonzero(counts: &std::collections::BTreeMap<String, u64>) -> Vec<String> {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect()
}

/// `203.0.113.10/32` -> `203.0.113.10`; other prefixes stay.
fn short_ip(ip: &str) -> String {
    ip.strip_suffix("/32")
        .or_else(|| ip.strip_suffix("/128"))
        .unwrap_or(ip)
        .to_string()
}

/// `45s`, `12m04s`, `3h02m`, `5d03h`.
pub fn span(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Appends `prefix` + the words, wrapped to [`WIDTH`]; continuation lines
/// are indented. A word too long for any line is cut.
pub(crate) fn push_wrapped(out: &mut String, prefix: &str, words: &[String]) {
    let indent = prefix.len().min(INDENT);
    let mut line = prefix.to_string();
    let mut empty = true;
    for text in words {
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            let extra = usize::from(!empty) + word.chars().count();
            if !empty && line.chars().count() + extra > WIDTH {
                let _ = writeln!(out, "{}", fit(&line));
                line = " ".repeat(indent);
                empty = true;
            }
            if !empty {
                line.push(' ');
            }
            line.push_str(word);
            empty = false;
        }
    }
    let _ = writeln!(out, "{}", fit(&line));
}

/// Who answers for the conflicting IPs and what to do, once per answering
/// host (757 IPs held by one zombie give two lines, not 1514).
fn answerers(out: &mut String, g: &GroupStatus) {
    let mut told: Vec<(&Option<String>, &Option<String>)> = Vec::new();
    for ip in g.ips.iter().filter(|i| i.state == "conflict") {
        let Some(a) = &ip.answered_by else {
            continue;
        };
        if told.contains(&(&a.mac, &a.ip)) {
            continue;
        }
        told.push((&a.mac, &a.ip));
        let count = g
            .ips
            .iter()
            .filter_map(|i| i.answered_by.as_ref())
            .filter(|b| b.mac == a.mac && b.ip == a.ip)
            .count();
        let who = match (&a.mac, &a.ip) {
            (Some(mac), Some(ip)) => format!("{mac} ({ip})"),
            (Some(mac), None) => format!("{mac} (address unknown)"),
            (None, Some(ip)) => ip.clone(),
            (None, None) => "an unknown host".to_string(),
        };
        let peer = match &a.carp_peer {
            Some(p) => format!(
                "CARP peer {} (vhid {}), last advert {:.1} s ago",
                p.address,
                p.vhids
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                p.last_advert_age_secs
            ),
            None => "not a CARP peer heard on this link".to_string(),
        };
        push_wrapped(
            out,
            "  answered by: ",
            &[format!(
                "{who}: {peer}; answers for {count} IP(s), for {}",
                span(a.since_secs)
            )],
        );
        push_wrapped(out, "  what to do: ", std::slice::from_ref(&a.advice));
    }
}

/// Cuts a line to [`WIDTH`] characters, marking the cut.
pub(crate) fn fit(line: &str) -> String {
    if line.chars().count() <= WIDTH {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(WIDTH - 3).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control::schema::*;
    use std::collections::BTreeMap;

    pub(crate) fn sample() -> Status {
        let rejected = |auth: u64| -> BTreeMap<String, u64> {
            [("auth_failed", auth), ("bad_ttl", 0), ("unknown_vhid", 0)]
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        };
        let ip = |ip: &str, state: &str, detail: Option<&str>| IpStatus {
            ip: ip.into(),
            state: state.into(),
            detail: detail.map(String::from),
            answered_by: None,
        };
        let group = GroupStatus {
            name: "web".into(),
            vhid: 10,
            state: "BACKUP".into(),
            since_unix: 1_700_000_000,
            state_secs: 754.2,
            reason: "more preferred master 192.0.2.1 (advbase 1 advskew 0)".into(),
            advbase: 1,
            advskew: 100,
            preempt: true,
            demoted: false,
            interface: "eth0".into(),
            carp_interface: "eth0".into(),
            source: "192.0.2.2".into(),
            master: Some(MasterStatus {
                address: "192.0.2.1".into(),
                advbase: 1,
                advskew: 0,
                age_secs: 0.412,
                this_host: false,
            }),
            master_down_in_secs: Some(2.98),
            ips: vec![
                ip("203.0.113.10/32", "absent", None),
                ip("203.0.113.11/32", "absent", None),
            ],
            last_ip_event: None,
            health: None,
            counters: Counters {
                adverts_sent: 3,
                adverts_received: 751,
                transitions: 2,
                conflicts: 0,
                garps_sent: 6,
                ips_lost: 0,
                rejected: rejected(0),
                adverts_previous_list: 0,
                transitions_by_reason: BTreeMap::from([
                    ("startup".to_string(), 1),
                    ("more_preferred".to_string(), 1),
                ]),
                probes: BTreeMap::new(),
            },
            auth: None,
            flaps_recent: 0,
            link: None,
            ties: Vec::new(),
            takeover: None,
            previous_list: None,
        };
        Status {
            v: 1,
            daemon: DaemonInfo {
                pid: 4242,
                version: "0.1.0".into(),
                started_unix: 1_699_999_000,
                uptime_secs: 3725.0,
                config: "/etc/ipfail.cfg".into(),
                control_socket: "/run/ipfail/ipfail.sock".into(),
            },
            groups: vec![group],
            interfaces: vec![InterfaceStatus {
                name: "eth0".into(),
                source: "192.0.2.2".into(),
                rejected: rejected(0),
            }],
        }
    }

    #[test]
    fn a_backup_reads_like_the_readme() {
        let text = render(&sample());
        let expected = "\
ipfail 0.1.0 daemon, pid 4242, up 1h02m, config /etc/ipfail.cfg

GROUP  VHID  STATE   FOR     ADV    PREEMPT  IPS HELD
web      10  BACKUP  12m34s  1/100  yes      0/2
  why: more preferred master 192.0.2.1 (advbase 1 advskew 0); master down in 2.98 s
  master: 192.0.2.1 (advbase 1 advskew 0), last heard 0.41 s ago
  absent: 203.0.113.10 203.0.113.11
  adverts: sent 3 received 751; transitions 2 (0 in 5 min); conflicts 0; gratuitous ARPs 6
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_zombie_is_named_once_with_what_to_do() {
        let mut s = sample();
        let g = &mut s.groups[0];
        let zombie = AnswerStatus {
            mac: Some("02:00:00:00:00:09".into()),
            ip: Some("192.0.2.9".into()),
            kind: "not_a_peer".into(),
            carp_peer: None,
            since_secs: 75.0,
            advice: "remove it there".into(),
        };
        for ip in &mut g.ips {
            ip.state = "conflict".into();
            ip.detail = Some("answered ARP from 02:00:00:00:00:09".into());
            ip.answered_by = Some(zombie.clone());
        }
        let text = render(&s);
        let tail: Vec<&str> = text.lines().skip(6).take(4).collect();
        assert_eq!(
            tail,
            vec![
                "  CONFLICT: 203.0.113.10 answered ARP from 02:00:00:00:00:09",
                "  CONFLICT: 203.0.113.11 answered ARP from 02:00:00:00:00:09",
                "  answered by: 02:00:00:00:00:09 (192.0.2.9): not a CARP peer heard on this link; answers for 2",
                "      IP(s), for 1m15s",
            ],
            "{text}"
        );
        assert!(text.contains("  what to do: remove it there\n"), "{text}");
        g_takeover(&mut s);
        let text = render(&s);
        assert!(
            text.contains("  FORCED TAKEOVER: by the operator 12s ago"),
            "{text}"
        );
        assert!(text.contains("last 0.3 s ago"), "{text}");
        assert!(text.contains("`ipfail takeover web --undo`"), "{text}");
    }

    fn g_takeover(s: &mut Status) {
        s.groups[0].takeover = Some(TakeoverStatus {
            since_secs: 12.0,
            contested: vec!["203.0.113.11".into()],
            last_claim_age_secs: Some(0.3),
            claims: 14,
        });
    }

    #[test]
    fn every_line_fits_100_columns_whatever_the_input() {
        let mut s = sample();
        s.daemon.config = format!("/{}", "very-long-directory/".repeat(10));
        let g = &mut s.groups[0];
        g.name = "g".repeat(40);
        g.vhid = 255;
        g.advbase = 255;
        g.advskew = 254;
        g.state_secs = 1e9;
        g.demoted = true;
        g.reason = "x".repeat(300);
        g.ips = (0..300)
            .map(|i| IpStatus {
                ip: format!("2001:db8:ffff:ffff:ffff:ffff:ffff:{i:x}/128"),
                state: ["held", "absent", "conflict", "failed"][i % 4].into(),
                detail: Some(format!(
                    "answered ARP from 02:00:00:00:00:{:02x} {}",
                    i % 256,
                    "y".repeat(i)
                )),
                answered_by: Some(AnswerStatus {
                    mac: Some(format!("02:00:00:00:00:{:02x}", i % 7)),
                    ip: (i % 2 == 0).then(|| "2001:db8::".repeat(9)),
                    kind: "not_a_peer".into(),
                    carp_peer: (i % 3 == 0).then(|| PeerStatus {
                        address: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".into(),
                        vhids: (0..=255).collect(),
                        last_advert_age_secs: 1e12,
                    }),
                    since_secs: 1e9,
                    advice: "z".repeat(i),
                }),
            })
            .collect();
        g.counters.rejected.insert("auth_failed".into(), u64::MAX);
        g.counters.adverts_sent = u64::MAX;
        g.auth = Some(AuthStatus {
            kind: "address_list_differs".into(),
            last_failure: format!(
                "pass matches but the peer's HMAC covers other addresses: [{}]",
                "203.0.113.10, ".repeat(40)
            ),
            last_failure_from: "192.0.2.9".into(),
            last_failure_age_secs: 1.34,
        });
        s.interfaces[0].rejected.insert("unknown_vhid".into(), 7);
        g_takeover(&mut s);
        s.groups[0].ties = vec![TieStatus {
            peer: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".into(),
            advbase: 255,
            advskew: 254,
            adverts: u64::MAX,
            last_age_secs: 1e12,
        }];
        s.groups[0].counters.adverts_previous_list = u64::MAX;
        s.groups[0].previous_list = Some(PreviousListStatus {
            accepted_for_secs: 1e12,
            signing_for_secs: 1e12,
            peers: vec![PreviousListPeerStatus {
                peer: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".into(),
                since_unix: u64::MAX,
                since_secs: 1e12,
                last_age_secs: 1e12,
                adverts: u64::MAX,
                addresses: vec!["2001:db8::1".into(); 1000],
            }],
        });
        let text = render(&s);
        assert!(text.contains("PREVIOUS LIST: "), "{text}");
        for line in text.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(text.contains("demoted: advertising 255/255"), "{text}");
        assert!(text.contains("... and 51 more"), "{text}");
        assert!(
            text.contains("CONFLICT: 2001:db8:ffff:ffff:ffff:ffff:ffff:2 answered ARP"),
            "{text}"
        );
        assert!(
            text.contains("auth: last failure 1.3 s ago from 192.0.2.9: pass matches"),
            "{text}"
        );
        assert!(
            text.contains("interface eth0 (adverts from 192.0.2.2) rejected: unknown_vhid 7"),
            "{text}"
        );
    }

    #[test]
    fn an_exact_tie_is_shown_with_the_peer() {
        let mut s = sample();
        s.groups[0].ties = vec![TieStatus {
            peer: "192.0.3.1".into(),
            advbase: 1,
            advskew: 100,
            adverts: 12,
            last_age_secs: 0.42,
        }];
        let text = render(&s);
        assert!(
            text.contains(
                "  TIE: 192.0.3.1 advertises 1/100 like this host (12 adverts, last 0.4 s ago): \
                 the address decides\n      (docs/interop.md)"
            ),
            "{text}"
        );
        assert!(text.contains("give the hosts different advskew"), "{text}");
        assert!(!render(&sample()).contains("TIE"));
    }

    #[test]
    fn spans_are_short() {
        assert_eq!(span(0.4), "0s");
        assert_eq!(span(59.9), "59s");
        assert_eq!(span(754.0), "12m34s");
        assert_eq!(span(3725.0), "1h02m");
        assert_eq!(span(90_000.0), "1d01h");
        assert_eq!(span(f64::NAN), "0s");
        assert_eq!(span(-3.0), "0s");
    }
}
