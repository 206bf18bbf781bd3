//! `ipfail status`, `demote`, `promote` and `reload` end to end: daemons in
//! network namespaces, asked through their control sockets the way an
//! operator (or a monitoring agent) does (issue 4).
//!
//! Hosts: a = 192.0.2.1 (advskew 0, preferred), b = 192.0.2.2 (advskew 100).
//! Group `web` (vhid 10) floats 203.0.113.10-12; some tests add `db`
//! (vhid 20) with 203.0.113.20-21.

mod lab;

use lab::{all_in, exchange, ip_states, longest_gap, text, Daemons, Group, Host, TIMING};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ipfail");
const WEB: [&str; 3] = ["203.0.113.10", "203.0.113.11", "203.0.113.12"];
const DB: [&str; 2] = ["203.0.113.20", "203.0.113.21"];
const SEC: Duration = Duration::from_secs(1);

/// One host's configuration; `web_extra` lines go into [web].
#[derive(Clone, Copy)]
struct Spec<'a> {
    advskew: u8,
    pass: &'a str,
    web_ips: &'a [&'a str],
    web_extra: &'a str,
    /// advskew of [db]; None: no db group.
    db: Option<u8>,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            advskew: 0,
            pass: "secret",
            web_ips: &WEB,
            web_extra: "",
            db: None,
        }
    }
}

fn cluster(test: &str) -> Daemons {
    Daemons::new(test, Path::new(BIN))
}

/// Writes the host's config: [web] (vhid 10) and, with `spec.db`, [db]
/// (vhid 20, pass `other`, [`DB`]).
fn write(c: &Daemons, host: &Host, spec: &Spec) {
    let web = Group {
        name: "web",
        vhid: 10,
        advskew: Some(spec.advskew),
        pass: spec.pass,
        extra: spec.web_extra,
        ips: spec.web_ips,
    };
    let db = spec.db.map(|skew| Group {
        name: "db",
        vhid: 20,
        advskew: Some(skew),
        pass: "other",
        extra: "",
        ips: &DB,
    });
    let groups: Vec<Group> = std::iter::once(web).chain(db).collect();
    c.write(host, TIMING, &groups);
}

/// a (advskew 0) and b (advskew 100) with [web] only, both daemons
/// started and a holding [`WEB`]. Returns the pid of a's daemon too.
fn web_pair(test: &str) -> (Daemons, Host, Host, u32) {
    let c = cluster(test);
    let a = c.host("a", "192.0.2.1/24");
    let b = c.host("b", "192.0.2.2/24");
    write(&c, &a, &Spec::default());
    write(
        &c,
        &b,
        &Spec {
            advskew: 100,
            ..Spec::default()
        },
    );
    let pid_a = c.start_ready(&a);
    c.start_ready(&b);
    c.wait_holds(&a, &b, &WEB, 10 * SEC);
    (c, a, b, pid_a)
}

#[test]
fn status_shows_master_backup_and_why_they_swapped() {
    if !lab::require_root() {
        return;
    }
    let (c, a, b, _) = web_pair("st-swap");
    let gb = c.wait_group(&b, "web", "BACKUP hearing a", 5 * SEC, |g| {
        g.state == "BACKUP" && g.master.as_ref().is_some_and(|m| !m.this_host)
    });
    let ga = c.wait_group(&a, "web", "MASTER holding all", 5 * SEC, |g| {
        g.state == "MASTER" && all_in(g, "held")
    });

    // The master: this host, every IP held, adverts going out.
    let ma = ga.master.clone().expect("a master knows itself");
    assert!(ma.this_host && ma.address == "192.0.2.1", "{ma:?}");
    assert!(ma.age_secs < 1.5, "{ma:?}");
    assert_eq!(ga.master_down_in_secs, None);
    assert_eq!((ga.vhid, ga.advbase, ga.advskew), (10, 1, 0));
    assert_eq!(
        ip_states(&ga),
        WEB.iter()
            .map(|ip| (format!("{ip}/32"), "held".to_string()))
            .collect::<Vec<_>>()
    );
    assert!(
        ga.counters.adverts_sent > 0 && ga.counters.garps_sent >= 3,
        "{ga:?}"
    );
    assert_eq!(
        ga.counters.rejected.get("bad_ttl"),
        Some(&0),
        "every class is listed"
    );
    // The backup: a's address as heard, how soon it would take over.
    let mb = gb.master.clone().expect("b heard a");
    assert_eq!(
        (mb.address.as_str(), mb.advbase, mb.advskew),
        ("192.0.2.1", 1, 0)
    );
    assert!(mb.age_secs < 1.5, "{mb:?}");
    let down = gb.master_down_in_secs.expect("a backup counts down");
    assert!(down > 0.0 && down <= 3.4, "{down}");
    assert!(all_in(&gb, "absent"), "{gb:?}");
    assert!(gb.counters.adverts_received > 0);
    assert_eq!(gb.source, "192.0.2.2");

    let human_a = text(&c.ipfail(&a, &["status"]));
    let human_b = text(&c.ipfail(&b, &["status"]));
    eprintln!("---- ipfail status on a ----\n{human_a}---- on b ----\n{human_b}");
    eprintln!(
        "---- ipfail status --json on b ----\n{}",
        String::from_utf8_lossy(&c.ipfail(&b, &["status", "--json"]).stdout)
    );
    for line in human_a.lines().chain(human_b.lines()) {
        assert!(line.chars().count() <= 100, "too wide: {line}");
    }
    assert!(
        human_a.contains("MASTER") && human_a.contains("held: 203.0.113.10"),
        "{human_a}"
    );
    assert!(
        human_b.contains("master: 192.0.2.1 (advbase 1 advskew 0)"),
        "{human_b}"
    );

    // Cut a's link: b takes over and says why; a says why it let go.
    c.lab.cut(&a);
    let gb = c.wait_group(&b, "web", "MASTER after the cut", 10 * SEC, |g| {
        g.state == "MASTER" && all_in(g, "held")
    });
    assert!(
        gb.reason.starts_with("master down: no advert for 3."),
        "{}",
        gb.reason
    );
    let ga = c.group(&a, "web");
    assert_eq!(
        (ga.state.as_str(), ga.reason.as_str()),
        ("INIT", "link down")
    );
    assert!(all_in(&ga, "absent"), "{ga:?}");
    eprintln!(
        "---- after the cut, on b ----\n{}",
        text(&c.ipfail(&b, &["status"]))
    );

    // Restore: a is preferred and preempts; both say so.
    c.lab.restore(&a);
    let ga = c.wait_group(&a, "web", "MASTER again", 10 * SEC, |g| {
        g.state == "MASTER" && all_in(g, "held")
    });
    assert_eq!(ga.reason, "preempted less preferred master 192.0.2.2");
    let gb = c.wait_group(&b, "web", "BACKUP again", 5 * SEC, |g| g.state == "BACKUP");
    assert_eq!(
        gb.reason,
        "more preferred master 192.0.2.1 (advbase 1 advskew 0)"
    );
    assert!(gb.counters.transitions >= 3, "{:?}", gb.counters);

    // A second daemon on the same socket refuses to start and changes nothing.
    let log = c.dir.join("second.log");
    let pid = c
        .lab
        .spawn(&a, Path::new(BIN), &["daemon", "-c", &c.cfg(&a)], &log);
    let st = c.lab.wait_exit(pid, 5 * SEC).expect("second daemon exits");
    assert!(!st.success());
    let second = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        second.contains("another ipfail daemon is running on"),
        "{second}"
    );
    assert!(c.try_status(&a).is_some(), "the first one still answers");
    assert!(c.holds(&a, &WEB));
}

#[test]
fn auth_failures_say_whether_the_pass_or_the_address_list_differs() {
    if !lab::require_root() {
        return;
    }
    let c = cluster("st-auth");
    let a = c.host("a", "192.0.2.1/24");
    let d = c.host("d", "192.0.2.4/24");
    let e = c.host("e", "192.0.2.5/24");
    write(&c, &a, &Spec::default());
    write(
        &c,
        &d,
        &Spec {
            advskew: 50,
            pass: "wrong",
            ..Spec::default()
        },
    );
    // Same pass, but its HMAC covers one address only (as ucarp's would).
    write(
        &c,
        &e,
        &Spec {
            advskew: 50,
            web_ips: &WEB[..1],
            ..Spec::default()
        },
    );
    c.start_ready(&a);
    let pid_d = c.start_ready(&d);
    // d cannot verify a's adverts, so it becomes master and advertises.
    let ga = c.wait_group(&a, "web", "an auth failure from d", 15 * SEC, |g| {
        g.auth
            .as_ref()
            .is_some_and(|x| x.last_failure_from == "192.0.2.4")
    });
    let auth = ga.auth.clone().expect("auth");
    assert_eq!(auth.kind, "pass_differs", "{auth:?}");
    assert!(auth.last_failure.starts_with("pass differs"), "{auth:?}");
    assert!(auth.last_failure_age_secs < 2.0);
    assert!(
        ga.counters
            .rejected
            .get("auth_failed")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    assert_eq!(
        ga.state, "MASTER",
        "a stays master: d's adverts do not count"
    );
    let human = text(&c.ipfail(&a, &["status"]));
    assert!(
        human.contains("auth: last failure") && human.contains("from 192.0.2.4: pass differs"),
        "{human}"
    );
    assert!(human.contains("auth_failed "), "{human}");
    let check = c.ipfail(&a, &["status", "--check"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).starts_with("IPFAIL WARNING - web: "),
        "{}",
        text(&check)
    );

    assert!(c.lab.signal(pid_d, "TERM"));
    c.lab.wait_exit(pid_d, 5 * SEC).expect("d stops");
    c.start_ready(&e);
    let ga = c.wait_group(&a, "web", "an auth failure from e", 15 * SEC, |g| {
        g.auth
            .as_ref()
            .is_some_and(|x| x.last_failure_from == "192.0.2.5")
    });
    let auth = ga.auth.clone().expect("auth");
    assert_eq!(auth.kind, "address_list_differs", "{auth:?}");
    assert!(
        auth.last_failure.contains("[203.0.113.10]") && auth.last_failure.contains("hmac_addrs"),
        "{auth:?}"
    );
    let human = text(&c.ipfail(&a, &["status"]));
    assert!(
        human.contains("from 192.0.2.5: pass matches but the peer's HMAC covers other"),
        "{human}"
    );
}

#[test]
fn demote_hands_over_like_sigterm_survives_a_restart_and_promote_takes_back() {
    if !lab::require_root() {
        return;
    }
    let (c, a, b, pid_a) = web_pair("st-demote");
    c.wait_group(&b, "web", "BACKUP", 5 * SEC, |g| g.state == "BACKUP");

    let sampler = c.lab.sampler(&[&a, &b]);
    let t = Instant::now();
    let out = c.ipfail(&a, &["demote", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with("web: demoted: released its IPs and bowed out"),
        "{}",
        text(&out)
    );
    let moved = c.wait_holds(&b, &a, &WEB, 5 * SEC);
    std::thread::sleep(SEC / 2);
    let samples = sampler.stop();
    let demote_ms = (moved - t).as_millis();
    let demote_gap = longest_gap(&samples, WEB[0].parse().expect("ip"));
    let (double, ip) = lab::longest_double_hold(&samples);
    eprintln!("demote -> b holds all: {demote_ms} ms; no holder for {demote_gap:?}; double hold {double:?} {ip:?}");
    assert!(moved - t <= SEC, "handover took {demote_ms} ms");
    assert!(
        double <= Duration::from_millis(100),
        "{ip:?} held twice for {double:?}"
    );
    let ga = c.group(&a, "web");
    assert!(ga.demoted && ga.state == "BACKUP", "{ga:?}");
    assert_eq!(ga.reason, "demoted by the operator: handed the group over");
    let gb = c.group(&b, "web");
    assert_eq!(
        (gb.state.as_str(), gb.reason.as_str()),
        ("MASTER", "bow-out from 192.0.2.1")
    );
    let listed = std::fs::read_to_string(c.state_dir(&a).join("demoted")).unwrap_or_default();
    assert!(listed.lines().any(|l| l == "web"), "{listed}");
    // Demoting again is harmless and says so.
    assert_eq!(
        text(&c.ipfail(&a, &["demote", "--all"])).trim(),
        "web: already demoted"
    );

    // The demotion survives a restart: a comes back demoted and leaves b be.
    assert!(c.lab.signal(pid_a, "TERM"));
    c.lab.wait_exit(pid_a, 5 * SEC).expect("a stops");
    let restarted = Instant::now();
    let pid_a = c.start_ready(&a);
    let ga = c.wait_group(&a, "web", "BACKUP hearing b", 10 * SEC, |g| {
        g.state == "BACKUP" && g.master.as_ref().is_some_and(|m| m.address == "192.0.2.2")
    });
    assert!(ga.demoted, "{ga:?}");
    while restarted.elapsed() < 5 * SEC {
        assert!(
            c.holds(&b, &WEB) && c.holds_none(&a, &WEB),
            "a demoted host took the IPs"
        );
        std::thread::sleep(SEC / 10);
    }
    assert!(c.log(&a).contains("demoted (listed in"), "{}", c.log(&a));
    assert_eq!(c.group(&a, "web").state, "BACKUP");

    // Promote: a (preferred, preempt) takes the group back on b's next advert.
    let t = Instant::now();
    let out = c.ipfail(&a, &["promote", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("web: promoted"), "{}", text(&out));
    let back = c.wait_holds(&a, &b, &WEB, 5 * SEC);
    eprintln!("promote -> a holds all: {} ms", (back - t).as_millis());
    let ga = c.wait_group(&a, "web", "MASTER", 5 * SEC, |g| g.state == "MASTER");
    assert!(!ga.demoted);
    assert_eq!(ga.reason, "preempted less preferred master 192.0.2.2");
    assert!(
        !c.state_dir(&a).join("demoted").exists(),
        "promote empties the list"
    );

    // The yardstick: the same handover by SIGTERM.
    c.wait_group(&b, "web", "BACKUP", 5 * SEC, |g| g.state == "BACKUP");
    let sampler = c.lab.sampler(&[&a, &b]);
    let t = Instant::now();
    assert!(c.lab.signal(pid_a, "TERM"));
    let moved = c.wait_holds(&b, &a, &WEB, 5 * SEC);
    std::thread::sleep(SEC / 2);
    let samples = sampler.stop();
    let term_gap = longest_gap(&samples, WEB[0].parse().expect("ip"));
    eprintln!(
        "SIGTERM -> b holds all: {} ms; no holder for {term_gap:?}",
        (moved - t).as_millis()
    );
    assert!(
        demote_gap <= term_gap + Duration::from_millis(300),
        "demote lost {demote_gap:?}, SIGTERM {term_gap:?}"
    );

    // Errors name the problem.
    let out = c.ipfail(&b, &["demote", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no group [nosuch]"), "{}", text(&out));
}

#[test]
fn reload_adds_an_ip_without_a_blip_and_other_groups_stay_untouched() {
    if !lab::require_root() {
        return;
    }
    let c = cluster("st-reload");
    let a = c.host("a", "192.0.2.1/24");
    let b = c.host("b", "192.0.2.2/24");
    let spec_a = Spec {
        db: Some(0),
        ..Spec::default()
    };
    let spec_b = Spec {
        advskew: 100,
        db: Some(100),
        ..Spec::default()
    };
    write(&c, &a, &spec_a);
    write(&c, &b, &spec_b);
    let pid_a = c.start_ready(&a);
    c.start_ready(&b);
    let all: Vec<&str> = WEB.iter().chain(DB.iter()).copied().collect();
    c.wait_holds(&a, &b, &all, 10 * SEC);
    c.wait_group(&b, "web", "BACKUP", 5 * SEC, |g| g.state == "BACKUP");
    c.wait_group(&b, "db", "BACKUP", 5 * SEC, |g| g.state == "BACKUP");
    let before_a = c.group(&a, "web");
    let before_b = c.group(&b, "web");

    // Add 203.0.113.13 to web on both hosts (the HMAC covers the list;
    // the previous one stays accepted for a while, docs/safety.md §10).
    let more = [
        "203.0.113.10",
        "203.0.113.11",
        "203.0.113.12",
        "203.0.113.13",
    ];
    write(
        &c,
        &a,
        &Spec {
            web_ips: &more,
            ..spec_a
        },
    );
    write(
        &c,
        &b,
        &Spec {
            web_ips: &more,
            ..spec_b
        },
    );
    let sampler = c.lab.sampler(&[&a, &b]);
    let out = c.ipfail(&a, &["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(
            "web: ips +1 -0, the advert HMAC covers a new address list (adverts keep \
             the previous list for 15 min and it is accepted for 30 min: reload the peers \
             within 15 min); still MASTER"
        ) && text(&out).contains("db: unchanged"),
        "{}",
        text(&out)
    );
    let out = c.ipfail(&b, &["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("web: ips +1 -0, ") && text(&out).contains("; still BACKUP"),
        "{}",
        text(&out)
    );
    c.lab.wait_until("a holds the new IP", 5 * SEC, || {
        c.holds(&a, &more).then_some(())
    });
    let ga = c.wait_group(&a, "web", "4 IPs held", 5 * SEC, |g| {
        g.ips.len() == 4 && all_in(g, "held")
    });
    assert_eq!(
        ga.counters.transitions, before_a.counters.transitions,
        "no state change on a"
    );
    assert_eq!(ga.since_unix, before_a.since_unix);
    let gb = c.group(&b, "web");
    assert_eq!(
        gb.counters.transitions, before_b.counters.transitions,
        "no state change on b"
    );
    assert!(gb.ips.len() == 4 && all_in(&gb, "absent"), "{gb:?}");

    // Edit the unrelated group on a (new advskew, in place), by SIGHUP this time.
    write(
        &c,
        &a,
        &Spec {
            web_ips: &more,
            db: Some(50),
            ..Spec::default()
        },
    );
    assert!(c.lab.signal(pid_a, "HUP"));
    c.wait_group(&a, "db", "advskew 50", 5 * SEC, |g| g.advskew == 50);
    std::thread::sleep(SEC);
    let samples = sampler.stop();
    let log = c.log(&a);
    assert!(
        log.contains("reload: db: advskew 0 -> 50 (in place); still MASTER"),
        "{log}"
    );
    assert!(log.contains("reload: web: unchanged"), "{log}");
    let web_now: Vec<IpAddr> = more.iter().map(|s| s.parse().expect("ip")).collect();
    let mut a_samples = 0;
    for s in &samples {
        let addrs: BTreeSet<&IpAddr> = s.addrs.iter().collect();
        match s.host.as_str() {
            "a" => {
                a_samples += 1;
                for ip in &web_now[..3] {
                    assert!(addrs.contains(ip), "{ip} left a during the reloads");
                }
            }
            _ => {
                for ip in &web_now {
                    assert!(!addrs.contains(ip), "{ip} appeared on b");
                }
            }
        }
    }
    assert!(a_samples > 20, "the sampler ran ({a_samples} samples of a)");
    let ga = c.group(&a, "web");
    assert_eq!(ga.counters.transitions, before_a.counters.transitions);
    assert_eq!(ga.state, "MASTER");

    // Dropping the IP again removes it from the master, still without a blip.
    write(
        &c,
        &a,
        &Spec {
            db: Some(50),
            ..Spec::default()
        },
    );
    write(&c, &b, &spec_b);
    for h in [&a, &b] {
        let out = c.ipfail(h, &["reload"]);
        assert!(text(&out).contains("web: ips +0 -1"), "{}", text(&out));
    }
    c.lab.wait_until("203.0.113.13 leaves a", 5 * SEC, || {
        c.holds_none(&a, &more[3..]).then_some(())
    });
    assert!(c.holds(&a, &WEB));
    let ga = c.group(&a, "web");
    assert_eq!(ga.ips.len(), 3);
    assert_eq!(ga.counters.transitions, before_a.counters.transitions);

    // A broken file is refused with its line; nothing changes.
    std::fs::write(
        c.cfg(&a),
        std::fs::read_to_string(c.cfg(&a))
            .unwrap_or_default()
            .replace("vhid = 10", "vhid = 300"),
    )
    .expect("write");
    let out = c.ipfail(&a, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{}:10:", c.cfg(&a)))
            && text(&out).contains("nothing changed"),
        "{}",
        text(&out)
    );
    // status still reaches the daemon, with a warning about the file.
    let out = c.ipfail(&a, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("ipfail: warning: "),
        "{}",
        text(&out)
    );
    // SIGHUP with the same file: the daemon logs why and keeps running.
    assert!(c.lab.signal(pid_a, "HUP"));
    c.lab
        .wait_until("the refused reload in the log", 5 * SEC, || {
            c.log(&a)
                .contains(&format!(
                    "reload refused, nothing changed: {}:10:",
                    c.cfg(&a)
                ))
                .then_some(())
        });
    assert_eq!(c.group(&a, "web").state, "MASTER");
    assert!(c.holds(&a, &WEB));
}

#[test]
fn check_exit_codes_for_ok_conflict_and_daemon_down() {
    if !lab::require_root() {
        return;
    }
    let c = cluster("st-check");
    let a = c.host("a", "192.0.2.1/24");
    let t = c.host("t", "192.0.2.3/24");
    write(&c, &a, &Spec::default());
    let check = |c: &Daemons| {
        let out = c.ipfail(&a, &["status", "--check"]);
        (out.status.code(), text(&out))
    };
    // A third host still answers for .11: a takes the rest, not that one.
    c.lab.add_addr(&t, "203.0.113.11/32");
    let pid = c.start_ready(&a);
    c.wait_group(&a, "web", "a conflict", 10 * SEC, |g| {
        g.ips.iter().any(|i| i.state == "conflict")
    });
    let (code, line) = check(&c);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with("IPFAIL CRITICAL - web: 203.0.113.11/32 in conflict (answered ARP from"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");

    // It lets go: a takes it, and all is well.
    c.lab.del_addr(&t, "203.0.113.11/32");
    c.wait_group(&a, "web", "all held", 10 * SEC, |g| all_in(g, "held"));
    let (code, line) = check(&c);
    assert_eq!(
        (code, line.trim()),
        (Some(0), "IPFAIL OK - web MASTER (3/3 IPs held)")
    );

    // The daemon stops: critical, and plain status shows what is here.
    assert!(c.lab.signal(pid, "TERM"));
    c.lab.wait_exit(pid, 5 * SEC).expect("a stops");
    assert!(!c.socket(&a).exists(), "the socket file is removed on exit");
    let (code, line) = check(&c);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with("IPFAIL CRITICAL - ipfail daemon is not running (no answer on"),
        "{line}"
    );
    c.lab.add_addr(&a, "203.0.113.12/32");
    let out = c.ipfail(&a, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out);
    assert!(shown.starts_with("ipfail daemon is not running"), "{shown}");
    assert!(
        shown.contains("web (vhid 10, interface eth0): 1/3 IPs here"),
        "{shown}"
    );
    assert!(shown.contains("on eth0: 203.0.113.12"), "{shown}");
    assert!(
        shown.contains("not on this host: 203.0.113.10 203.0.113.11"),
        "{shown}"
    );
    let out = c.ipfail(&a, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(doc["daemon"].is_null(), "{doc}");
    assert_eq!(doc["local"][0]["ips"][2]["on"][0], "eth0", "{doc}");

    // An unreadable configuration is UNKNOWN.
    let out = c.lab.sh(
        &a,
        &[BIN, "status", "--check", "-c", "/nonexistent/ipfail.cfg"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).starts_with("IPFAIL UNKNOWN - /nonexistent/ipfail.cfg: cannot read"));
}

#[test]
fn garbage_on_the_control_socket_leaves_adverts_on_time() {
    if !lab::require_root() {
        return;
    }
    let (c, a, b, _) = web_pair("st-garbage");
    c.wait_group(&b, "web", "BACKUP", 5 * SEC, |g| g.state == "BACKUP");
    let sock = c.socket(&a);

    // Each kind of garbage gets an error line, not a crash.
    let err = |data: &[u8]| exchange(&sock, data).unwrap_or_default();
    assert!(err(b"hello\n").starts_with(r#"{"v":1,"ok":false,"error":"request is not valid JSON"#));
    assert!(err(b"{\"v\":2,\"cmd\":\"status\"}\n").contains("unsupported protocol version 2"));
    assert!(err(b"{\"v\":1,\"cmd\":\"reboot\"}\n").contains("unknown command"));
    assert!(err(&vec![b'x'; 1 << 20]).contains("longer than 65536 bytes"));
    assert!(err(b"{\"v\":1,\"cmd\":\"sta").contains("not valid JSON"));
    assert!(
        err(b"{\"v\":1,\"cmd\":\"status\"}").contains("\"ok\":true"),
        "no newline is fine"
    );

    let sent_before = c.group(&a, "web").counters.adverts_sent;
    let flood_for = 8 * SEC;
    let start = Instant::now();
    let stop_at = start + flood_for;
    let floods: Vec<std::thread::JoinHandle<u64>> = (0..4u64)
        .map(|kind| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ kind;
                let mut idle = Vec::new();
                while Instant::now() < stop_at {
                    match kind {
                        // Random bytes, lines of all lengths.
                        0 => {
                            let bytes: Vec<u8> = (0..(x % 4096))
                                .map(|_| {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                    x as u8
                                })
                                .collect();
                            let _ = exchange(&sock, &bytes);
                        }
                        // Megabyte lines.
                        1 => {
                            let _ = exchange(&sock, &vec![b'{'; 1 << 20]);
                        }
                        // Half requests left hanging, and connections that
                        // never send anything, more than the daemon serves.
                        2 => {
                            if let Ok(mut s) = UnixStream::connect(&sock) {
                                let _ = s.write_all(b"{\"v\":1,\"cmd\":\"sta");
                                idle.push(s);
                            }
                            if idle.len() > 40 {
                                idle.remove(0);
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        // Valid requests in between.
                        _ => {
                            let _ = exchange(&sock, b"{\"v\":1,\"cmd\":\"status\"}\n");
                        }
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();

    // Meanwhile b keeps hearing a on time and stays BACKUP.
    let mut worst_age: f64 = 0.0;
    let mut polls = 0;
    while Instant::now() < stop_at {
        let gb = c.group(&b, "web");
        let age = gb.master.as_ref().map_or(f64::MAX, |m| m.age_secs);
        worst_age = worst_age.max(age);
        assert_eq!(gb.state, "BACKUP", "b took over during the flood");
        assert!(age < 1.5, "b last heard a {age} s ago during the flood");
        polls += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let counts: Vec<u64> = floods.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    eprintln!("flood rounds per kind {counts:?}; b polled {polls} times, worst advert age {worst_age:.2} s");
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
    assert!(polls >= 10);

    // a still serves status (idle connections time out within 5 s) and kept
    // advertising about once a second.
    let ga = c.wait_group(&a, "web", "answers after the flood", 10 * SEC, |_| true);
    let sent = ga.counters.adverts_sent - sent_before;
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        sent as f64 >= elapsed * 0.8 - 1.0,
        "{sent} adverts in {elapsed:.1} s"
    );
    assert_eq!(ga.state, "MASTER");
    assert!(c.holds(&a, &WEB));
    // The busy answer exists (33 connections at once).
    let hold: Vec<UnixStream> = (0..32)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let busy = exchange(&sock, b"{\"v\":1,\"cmd\":\"status\"}\n").unwrap_or_default();
    assert!(
        busy.contains("busy: 32 control connections are open"),
        "{busy}"
    );
    drop(hold);
    c.lab
        .wait_until("serving again once they are gone", 5 * SEC, || {
            let mut reply = String::new();
            let mut s = UnixStream::connect(&sock).ok()?;
            s.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").ok()?;
            s.read_to_string(&mut reply).ok()?;
            reply.contains("\"ok\":true").then_some(())
        });
}
