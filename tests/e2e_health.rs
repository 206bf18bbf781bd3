//! Service health decides mastership (issue 8), end to end: each host runs
//! a small HTTP server standing in for nginx, and the group checks it.
//! a (advskew 0) is preferred over b (100); checks every 0.5 s, timeout
//! 0.3 s, fall 2, rise 2.

mod lab;

use lab::{pair_config, Host, Pair, PAIR_IPS};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_millis(500);
const FALL: u32 = 2;
const CHECKS: &str = "check : http http://127.0.0.1:8080/host.txt\n\
                      check_interval = 0.5\n\
                      check_timeout = 0.3\n\
                      check_fall = 2\n\
                      check_rise = 2\n";

/// The Python interpreter itself (not a shim), for `ip netns exec`.
fn python() -> PathBuf {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs (CI machines have it)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn pair(test: &str) -> Option<Pair> {
    if !lab::require_root() {
        return None;
    }
    let p = Pair::new(test, Path::new(env!("CARGO_BIN_EXE_ipfail")));
    pair_config(&p.dir, "a", 0, CHECKS);
    pair_config(&p.dir, "b", 100, CHECKS);
    Some(p)
}

/// Starts the stand-in web server on `host` (port 8080, every address);
/// `/host.txt` says which host answered.
fn serve(p: &Pair, host: &Host) -> u32 {
    let root = p.dir.join(format!("www-{}", host.name));
    std::fs::create_dir_all(&root).expect("web root");
    std::fs::write(root.join("host.txt"), &host.name).expect("host.txt");
    let root = root.to_string_lossy().into_owned();
    let log = p.dir.join(format!("www-{}.log", host.name));
    p.lab.spawn(
        host,
        &python(),
        &[
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            &root,
        ],
        &log,
    )
}

/// Which host the client reaches at the first floating IP over HTTP.
fn served_by(p: &Pair) -> Option<String> {
    let url = format!("http://{}:8080/host.txt", PAIR_IPS[0]);
    let code = format!(
        "import urllib.request; print(urllib.request.urlopen('{url}', timeout=0.5).read().decode())"
    );
    let py = python();
    let out = p.lab.sh(&p.c, &[&py.to_string_lossy(), "-c", &code]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn check_level(p: &Pair, host: &Host) -> (i32, String) {
    let out = p.ipfail(host, &["status", "--check"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_dead_service_moves_the_group_and_its_return_takes_it_back() {
    let Some(p) = pair("health") else { return };
    let www_a = serve(&p, &p.a);
    serve(&p, &p.b);
    p.start(&p.a);
    p.start(&p.b);
    p.wait_holder(&p.a, &p.b, 15 * SEC);
    p.lab.wait_until("the client is served by a", 10 * SEC, || {
        (served_by(&p).as_deref() == Some("a")).then_some(())
    });
    let sampler = p.lab.sampler(&[&p.a, &p.b]);

    // nginx dies on the master.
    let killed = Instant::now();
    assert!(p.lab.signal(www_a, "KILL"));
    let bound = INTERVAL * FALL + SEC;
    let moved = p.wait_holder(&p.b, &p.a, 3 * bound);
    let served = p.lab.wait_until("the client is served by b", 10 * SEC, || {
        (served_by(&p).as_deref() == Some("b")).then(Instant::now)
    });
    eprintln!(
        "service killed on a -> b holds every IP: {} ms, client served by b: {} ms (bound {} ms)",
        (moved - killed).as_millis(),
        (served - killed).as_millis(),
        bound.as_millis()
    );
    assert!(moved - killed <= bound, "took {:?}", moved - killed);
    let log_a = p.log(&p.a);
    assert!(
        log_a.contains("unhealthy: http http://127.0.0.1:8080/host.txt failed"),
        "{log_a}"
    );
    let (code, line) = check_level(&p, &p.a);
    let human = String::from_utf8_lossy(&p.ipfail(&p.a, &["status", "--json"]).stdout).into_owned();
    assert_eq!(
        code,
        1,
        "a failing check on a backup warns: {line}\n{human}\n{}\n{}",
        p.log(&p.a),
        p.log(&p.b)
    );

    // nginx comes back on a: after `rise` passing checks a takes the group
    // back by preempt.
    let restarted = Instant::now();
    serve(&p, &p.a);
    let back = p.wait_holder(&p.a, &p.b, 15 * SEC);
    eprintln!(
        "service back on a -> a holds every IP again: {} ms",
        (back - restarted).as_millis()
    );
    let samples = sampler.stop();
    let (double, ip) = lab::longest_double_hold(&samples);
    assert!(ip.is_none(), "{ip:?} held by both for {double:?}");
    assert!(p.log(&p.a).contains("BACKUP -> MASTER: preempted"));
}

#[test]
fn with_both_services_dead_one_host_holds_the_group_and_check_is_critical() {
    let Some(p) = pair("healthboth") else { return };
    let www_a = serve(&p, &p.a);
    let www_b = serve(&p, &p.b);
    p.start(&p.a);
    p.start(&p.b);
    p.wait_holder(&p.a, &p.b, 15 * SEC);
    assert!(p.lab.signal(www_a, "KILL"));
    assert!(p.lab.signal(www_b, "KILL"));
    // Both give way; with nobody healthy, a degraded master beats none.
    std::thread::sleep(INTERVAL * FALL + 5 * SEC);
    let sampler = p.lab.sampler(&[&p.a, &p.b]);
    std::thread::sleep(3 * SEC);
    let samples = sampler.stop();
    let (double, ip) = lab::longest_double_hold(&samples);
    assert!(ip.is_none(), "{ip:?} held by both for {double:?}");
    let holders: Vec<&Host> = [&p.a, &p.b]
        .into_iter()
        .filter(|h| p.holds_all(h))
        .collect();
    assert_eq!(holders.len(), 1, "exactly one host holds the IPs");
    let (code, line) = check_level(&p, holders[0]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("MASTER but unhealthy"), "{line}");
    // The other host follows a master advertising 255/255 and cannot take
    // over itself: nobody healthy holds the group there either.
    let backup = if holders[0].name == p.a.name {
        &p.b
    } else {
        &p.a
    };
    let (code, line) = check_level(&p, backup);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("no healthy host holds the group: master ")
            && line.contains("advertises 255/255"),
        "{line}"
    );
}

#[test]
fn a_host_that_boots_with_its_service_dead_never_takes_the_group() {
    let Some(p) = pair("healthboot") else { return };
    serve(&p, &p.b);
    p.start(&p.b);
    p.wait_holder(&p.b, &p.a, 15 * SEC);
    // a is preferred (advskew 0) but its service is dead from the start.
    let sampler = p.lab.sampler(&[&p.a]);
    p.start(&p.a);
    std::thread::sleep(6 * SEC);
    let samples = sampler.stop();
    let grabbed: Vec<_> = samples
        .iter()
        .filter(|s| {
            !s.addrs.is_empty()
                && s.addrs
                    .iter()
                    .any(|ip| PAIR_IPS.contains(&ip.to_string().as_str()))
        })
        .collect();
    assert!(
        grabbed.is_empty(),
        "a held a floating IP at {} of {} samples",
        grabbed.len(),
        samples.len()
    );
    assert!(p.holds_all(&p.b));
    let st = p.status(&p.a);
    let h = st.groups[0].health.clone().expect("health in status");
    assert!(!h.healthy, "{h:?}");
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_string_lossy().into_owned()
}

#[test]
fn notify_scripts_see_every_transition_in_order_and_a_slow_one_delays_nothing() {
    if !lab::require_root() {
        return;
    }
    let p = Pair::new("notify", Path::new(env!("CARGO_BIN_EXE_ipfail")));
    let seen_a = p.dir.join("a-notify.txt");
    let seen_b = p.dir.join("b-notify.txt");
    let log_args = |out: &Path| {
        format!(
            "echo \"$1 $2 $3 vhid=$IPFAIL_VHID ips=$IPFAIL_IPS\" >> {}",
            out.display()
        )
    };
    let fast = script(&p.dir, "fast.sh", &log_args(&seen_a));
    // b's script takes 60 s for each transition (killed after 30 s).
    let slow = script(
        &p.dir,
        "slow.sh",
        &format!("{}\nsleep 60", log_args(&seen_b)),
    );
    pair_config(&p.dir, "a", 0, &format!("notify = {fast}\n"));
    pair_config(&p.dir, "b", 100, &format!("notify = {slow}\n"));
    let a = p.start(&p.a);
    let b = p.start(&p.b);
    p.wait_holder(&p.a, &p.b, 15 * SEC);
    p.lab
        .wait_until("a's script saw BACKUP -> MASTER", 5 * SEC, || {
            std::fs::read_to_string(&seen_a)
                .unwrap_or_default()
                .contains("BACKUP MASTER")
                .then_some(())
        });
    let lines: Vec<String> = std::fs::read_to_string(&seen_a)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let ips = PAIR_IPS.join(" ");
    assert_eq!(
        lines,
        vec![
            format!("web INIT BACKUP vhid=10 ips={ips}"),
            format!("web BACKUP MASTER vhid=10 ips={ips}"),
        ]
    );
    // b's first script (INIT -> BACKUP) is still sleeping; a graceful stop
    // of a moves the IPs to b as fast as ever.
    let t = Instant::now();
    assert!(p.lab.signal(a, "TERM"));
    let moved = p.wait_holder(&p.b, &p.a, 5 * SEC);
    eprintln!(
        "SIGTERM -> b holds every IP while b's notify script sleeps: {} ms",
        (moved - t).as_millis()
    );
    assert!(moved - t < SEC, "took {:?}", moved - t);
    let b_seen = std::fs::read_to_string(&seen_b).unwrap_or_default();
    assert!(b_seen.starts_with("web INIT BACKUP"), "{b_seen}");
    assert!(
        !b_seen.contains("BACKUP MASTER"),
        "b's scripts run one after another, in order: {b_seen}"
    );
    // A graceful stop ends the script still running (no orphan left).
    assert!(p.lab.signal(b, "TERM"));
    p.lab.wait_exit(b, 10 * SEC).expect("b stops");
}
