//! The "pingable zombie" (issue 8, item 4), end to end: a host that runs
//! no ipfail still holds one of the group's IPs and answers ARP for it.
//! The standby (b, the only ipfail host running) becomes master, cannot
//! take that IP, and says in `status` who answers and what to do; the
//! operator's forced takeover moves the client to b within a second, and
//! b keeps the client although the zombie still answers every ARP request.
//! Second case: the answering host is a CARP peer (it runs ipfail for
//! another group), first live, then silent.

mod lab;

use ipfail::control::schema::{AnswerStatus, GroupStatus};
use lab::{Group, TIMING};
use lab::{Host, Pair, PAIR_IPS};
use std::path::Path;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);
/// The IP the zombie keeps.
const ZOMBIE_IP: &str = PAIR_IPS[0];

fn pair(test: &str) -> Option<(Pair, Host)> {
    if !lab::require_root() {
        return None;
    }
    let p = Pair::new(test, Path::new(env!("CARGO_BIN_EXE_ipfail")));
    let z = p.host("z", "192.0.2.9/24");
    Some((p, z))
}

fn zombie_ip_status(g: &GroupStatus) -> Option<(String, Option<AnswerStatus>)> {
    g.ips
        .iter()
        .find(|i| i.ip.starts_with(&format!("{ZOMBIE_IP}/")))
        .map(|i| (i.state.clone(), i.answered_by.clone()))
}

/// Waits until b is master with the other IPs and the zombie's IP in
/// conflict with a diagnosis of `kind`; returns it.
fn wait_diagnosis(p: &Pair, b: &Host, kind: &str) -> AnswerStatus {
    p.lab.wait_until(
        &format!("b diagnoses the zombie as {kind}"),
        20 * SEC,
        || {
            let g = p.try_status(b)?.groups.into_iter().next()?;
            match zombie_ip_status(&g)? {
                (state, Some(a)) if state == "conflict" && a.kind == kind && a.mac.is_some() => {
                    Some(a)
                }
                _ => None,
            }
        },
    )
}

fn status_text(p: &Pair, host: &Host) -> String {
    let out = p.ipfail(host, &["status"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Flushes the client's neighbour entry for the zombie's IP and pings it,
/// so the client asks the whole link again (the zombie answers too).
fn ask_again(p: &Pair) {
    p.lab
        .ip(&p.c, &["neigh", "flush", "to", ZOMBIE_IP, "dev", "eth0"]);
    p.lab.ping(&p.c, ZOMBIE_IP, Duration::from_millis(300));
}

#[test]
fn a_zombie_is_named_and_a_forced_takeover_keeps_the_client() {
    let Some((p, z)) = pair("zombie") else { return };
    // The zombie: an old ip_manager host that never let go of one IP.
    p.lab.add_addr(&z, &format!("{ZOMBIE_IP}/32"));
    ask_again(&p);
    assert_eq!(
        p.lab.neigh_mac(&p.c, ZOMBIE_IP).as_deref(),
        Some(z.mac.as_str()),
        "the client reaches the zombie before"
    );
    p.start(&p.b);
    let seen = wait_diagnosis(&p, &p.b, "not_a_peer");
    assert_eq!(seen.mac.as_deref(), Some(z.mac.as_str()));
    assert!(seen.carp_peer.is_none());
    assert!(
        seen.advice
            .contains("ipfail takeover web --despite-answers"),
        "{}",
        seen.advice
    );
    p.wait_holds(&p.b, &p.a, &PAIR_IPS[1..], 5 * SEC);
    let text = status_text(&p, &p.b);
    eprintln!("{text}");
    assert!(
        text.contains(&format!("answered by: {}", z.mac))
            && text.contains("not a CARP peer heard on this link"),
        "{text}"
    );
    // The log says it once per group, not at every re-probe (every 0.3 s).
    std::thread::sleep(2 * SEC);
    let log = p.log(&p.b);
    let lines = log.matches("in conflict, not taken").count();
    assert_eq!(lines, 1, "{log}");

    // Without the explicit flag: refused, nothing taken.
    let out = p.ipfail(&p.b, &["takeover", "web"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!p.lab.has_addr(&p.b, ZOMBIE_IP));

    // The forced takeover: the client reaches b within a second.
    let forced = Instant::now();
    let out = p.ipfail(&p.b, &["takeover", "web", "--despite-answers"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reached = p.lab.wait_until("the client reaches b", 2 * SEC, || {
        (p.lab.neigh_mac(&p.c, ZOMBIE_IP).as_deref() == Some(p.b.mac.as_str())).then(Instant::now)
    });
    let took = reached - forced;
    eprintln!(
        "forced takeover -> client reaches b: {} ms",
        took.as_millis()
    );
    assert!(took <= SEC, "{} ms", took.as_millis());
    assert!(p.log(&p.b).contains("FORCED TAKEOVER by the operator"));

    // The zombie still answers every ARP request; b keeps the client.
    let mut kept = 0;
    let mut seen = Vec::new();
    let rounds = 10;
    for _ in 0..rounds {
        ask_again(&p);
        std::thread::sleep(Duration::from_millis(150));
        let mac = p.lab.neigh_mac(&p.c, ZOMBIE_IP);
        if mac.as_deref() == Some(p.b.mac.as_str()) {
            kept += 1;
        }
        seen.push(mac);
        std::thread::sleep(Duration::from_millis(150));
    }
    eprintln!(
        "the client's entry after each fresh ARP request: {seen:?} (b {}, zombie {})",
        p.b.mac, z.mac
    );
    assert!(p.lab.has_addr(&z, ZOMBIE_IP), "the zombie still holds it");
    assert_eq!(
        kept, rounds,
        "b kept the client after every new ARP request"
    );
    let g = p.group(&p.b, "web");
    let t = g.takeover.expect("status shows the forced takeover");
    assert!(t.claims > 0, "the zombie's claims are seen: {t:?}");
    assert!(text_has(&status_text(&p, &p.b), "FORCED TAKEOVER"));

    // Undo: the still-claimed IP goes back to conflict.
    let out = p.ipfail(&p.b, &["takeover", "web", "--undo"]);
    assert!(out.status.success());
    p.lab.wait_until("b gives the IP back", 3 * SEC, || {
        (!p.lab.has_addr(&p.b, ZOMBIE_IP)).then_some(())
    });
    wait_diagnosis(&p, &p.b, "not_a_peer");
    assert!(p.group(&p.b, "web").takeover.is_none());

    // Forced again, then the zombie dies for good: the force ends by
    // itself and b keeps the IP.
    let out = p.ipfail(&p.b, &["takeover", "web", "--despite-answers"]);
    assert!(out.status.success());
    p.lab.wait_until("b takes it again", 2 * SEC, || {
        p.lab.has_addr(&p.b, ZOMBIE_IP).then_some(())
    });
    p.lab.del_addr(&z, &format!("{ZOMBIE_IP}/32"));
    p.lab
        .wait_until("the force ends once the zombie is silent", 8 * SEC, || {
            p.group(&p.b, "web").takeover.is_none().then_some(())
        });
    assert!(p.lab.has_addr(&p.b, ZOMBIE_IP));
    assert!(p
        .log(&p.b)
        .contains("forced takeover over: no other host claimed the IPs"));
}

fn text_has(text: &str, needle: &str) -> bool {
    text.contains(needle)
}

#[test]
fn a_zombie_that_speaks_carp_is_named_with_its_last_advert() {
    let Some((p, z)) = pair("zombie-peer") else {
        return;
    };
    // z runs ipfail for another group (vhid 20) and also holds one of
    // web's IPs as a plain address.
    p.write(
        &z,
        TIMING,
        &[Group {
            name: "other",
            vhid: 20,
            advskew: None,
            pass: "other",
            extra: "",
            ips: &["203.0.113.50"],
        }],
    );
    let zpid = p.start(&z);
    p.lab.add_addr(&z, &format!("{ZOMBIE_IP}/32"));
    p.start(&p.b);
    let seen = wait_diagnosis(&p, &p.b, "carp_peer");
    assert_eq!(seen.mac.as_deref(), Some(z.mac.as_str()));
    assert_eq!(seen.ip.as_deref(), Some("192.0.2.9"));
    let peer = seen.carp_peer.expect("the peer");
    assert_eq!(peer.address, "192.0.2.9");
    assert_eq!(peer.vhids, vec![20]);
    assert!(peer.last_advert_age_secs < 2.0, "{peer:?}");
    assert!(seen.advice.contains("for vhid 20"), "{}", seen.advice);
    let text = status_text(&p, &p.b);
    eprintln!("{text}");
    assert!(
        text.contains("CARP peer 192.0.2.9 (vhid 20), last advert"),
        "{text}"
    );

    // Its daemon dies (SIGKILL: no bow-out) but the address stays: a
    // silent CARP peer, with the time since its last advert.
    assert!(p.lab.signal(zpid, "KILL"));
    let silent = wait_diagnosis(&p, &p.b, "silent_carp_peer");
    let peer = silent.carp_peer.expect("the peer");
    assert!(peer.last_advert_age_secs > 3.0, "{peer:?}");
    assert!(
        silent.advice.contains("its CARP daemon died"),
        "{}",
        silent.advice
    );
}
