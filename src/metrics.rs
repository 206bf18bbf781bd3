//! Prometheus metrics (`[ipfail] metrics_listen`, issue 10): the text
//! exposition format of the facts `ipfail status` shows, built afresh for
//! each scrape from the same snapshot (so the two never disagree), plus
//! the probe-duration histograms and control-request counters, which live
//! beside it. Served by the control thread (`control/metrics_http.rs`):
//! the election loop never sees a scrape.

use crate::control::schema::Status;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// Control-socket requests by command (`status`, `demote`, ..., `invalid`).
pub type ControlRequests = Family<Labels, Counter>;

/// Probe durations by group: one family, its histograms shared with the
/// IP tasks that observe them.
pub type ProbeSeconds = Family<Labels, Histogram, fn() -> Histogram>;

fn probe_histogram() -> Histogram {
    // 1 ms .. ~4 s: quick handover probes up to slow full ones.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 13,
    ))
}

pub fn probe_seconds() -> ProbeSeconds {
    ProbeSeconds::new_with_constructor(probe_histogram)
}

/// The histogram group `group` observes its probes in.
pub fn probe_histogram_of(family: &ProbeSeconds, group: &str) -> Histogram {
    family.get_or_create(&labels(&[("group", group)])).clone()
}

/// `metrics_listen`: `PORT` (on 127.0.0.1), `ADDR:PORT` or `[ADDR6]:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("'{text}' is not PORT, ADDR:PORT or [IPV6]:PORT (e.g. 9125 for 127.0.0.1:9125)")
    })
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn counter(r: &mut Registry, name: &str, help: &str) -> Counters {
    let f = Counters::default();
    r.register(name, help, f.clone());
    f
}

fn gauge(r: &mut Registry, name: &str, help: &str) -> Gauges {
    let f = Gauges::default();
    r.register(name, help, f.clone());
    f
}

/// The exposition of `status`, the groups' probe histograms and the
/// control requests.
pub fn render(status: &Status, probe_seconds: &ProbeSeconds, control: &ControlRequests) -> String {
    let mut r = Registry::with_prefix("ipfail");
    let up = gauge(&mut r, "uptime_seconds", "Seconds since the daemon started");
    up.get_or_create(&Vec::new()).set(status.daemon.uptime_secs);
    let state = gauge(
        &mut r,
        "group_state",
        "1 for the group's current state (MASTER, BACKUP, INIT), 0 for the others",
    );
    let healthy = gauge(
        &mut r,
        "group_healthy",
        "1 when every health check of the group passes (groups with checks only)",
    );
    let demoted = gauge(
        &mut r,
        "group_demoted",
        "1 while the operator demoted the group",
    );
    let held = gauge(&mut r, "ips_held", "Floating IPs of the group on this host");
    let configured = gauge(&mut r, "ips_configured", "Floating IPs in the group's ips");
    let conflicting = gauge(
        &mut r,
        "ips_in_conflict",
        "IPs another host answers for, so not taken",
    );
    let forced = gauge(
        &mut r,
        "takeover_forced",
        "1 while an operator's forced takeover (ipfail takeover --despite-answers) runs",
    );
    let transitions = counter(&mut r, "transitions", "State changes by reason");
    let sent = counter(&mut r, "adverts_sent", "CARP adverts sent");
    let received = counter(&mut r, "adverts_received", "Valid CARP adverts received");
    let rejected = counter(
        &mut r,
        "adverts_rejected",
        "CARP datagrams dropped, by class (per group, or per interface before a group is known)",
    );
    let conflicts = counter(
        &mut r,
        "conflicts",
        "Probe answers from another host for our IPs",
    );
    let announcements = counter(
        &mut r,
        "announcements",
        "Gratuitous ARPs and unsolicited neighbour advertisements sent",
    );
    let lost = counter(
        &mut r,
        "ips_lost",
        "Held IPs that disappeared from the interface and were taken back",
    );
    let probes = counter(
        &mut r,
        "probe_verdicts",
        "Probe verdicts per IP (silent, answered) and probes that could not be done (failed)",
    );
    let check_up = gauge(
        &mut r,
        "check_up",
        "1 while the health check's verdict is ok",
    );
    let check_latency = gauge(
        &mut r,
        "check_latency_seconds",
        "How long the health check's last run took",
    );
    for g in &status.groups {
        let group = g.name.as_str();
        let base = labels(&[("group", group)]);
        for s in ["MASTER", "BACKUP", "INIT"] {
            let on = if g.state == s { 1.0 } else { 0.0 };
            state
                .get_or_create(&labels(&[("group", group), ("state", s)]))
                .set(on);
        }
        demoted
            .get_or_create(&base)
            .set(if g.demoted { 1.0 } else { 0.0 });
        let count = |state: &str| g.ips.iter().filter(|i| i.state == state).count() as f64;
        held.get_or_create(&base).set(count("held"));
        conflicting.get_or_create(&base).set(count("conflict"));
        configured.get_or_create(&base).set(g.ips.len() as f64);
        forced
            .get_or_create(&base)
            .set(if g.takeover.is_some() { 1.0 } else { 0.0 });
        let c = &g.counters;
        for (reason, n) in &c.transitions_by_reason {
            transitions
                .get_or_create(&labels(&[("group", group), ("reason", reason)]))
                .inc_by(*n);
        }
        sent.get_or_create(&base).inc_by(c.adverts_sent);
        received.get_or_create(&base).inc_by(c.adverts_received);
        for (class, n) in &c.rejected {
            rejected
                .get_or_create(&labels(&[("group", group), ("class", class)]))
                .inc_by(*n);
        }
        conflicts.get_or_create(&base).inc_by(c.conflicts);
        announcements.get_or_create(&base).inc_by(c.garps_sent);
        lost.get_or_create(&base).inc_by(c.ips_lost);
        for (verdict, n) in &c.probes {
            probes
                .get_or_create(&labels(&[("group", group), ("result", verdict)]))
                .inc_by(*n);
        }
        if let Some(h) = &g.health {
            healthy
                .get_or_create(&base)
                .set(if h.healthy { 1.0 } else { 0.0 });
            for check in &h.checks {
                let l = labels(&[("group", group), ("check", &check.check)]);
                check_up
                    .get_or_create(&l)
                    .set(if check.state == "ok" { 1.0 } else { 0.0 });
                if let Some(ms) = check.last_latency_ms {
                    check_latency.get_or_create(&l).set(ms / 1000.0);
                }
            }
        }
    }
    for i in &status.interfaces {
        for (class, n) in &i.rejected {
            rejected
                .get_or_create(&labels(&[("interface", &i.name), ("class", class)]))
                .inc_by(*n);
        }
    }
    r.register(
        "control_requests",
        "Control-socket requests by command",
        control.clone(),
    );
    r.register(
        "probe_duration_seconds",
        "How long probes before taking IPs took",
        probe_seconds.clone(),
    );
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &r) {
        return format!("# cannot encode the metrics: {e}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_defaults_to_loopback() {
        assert_eq!(
            parse_listen("9125"),
            Ok("127.0.0.1:9125".parse().expect("literal"))
        );
        assert_eq!(
            parse_listen(" 192.0.2.1:9 "),
            Ok("192.0.2.1:9".parse().expect("literal"))
        );
        assert_eq!(
            parse_listen("[2001:db8::1]:9125"),
            Ok("[2001:db8::1]:9125".parse().expect("literal"))
        );
        for bad in [
            "",
            "localhost:9125",
            "99999",
            "192.0.2.1",
            "2001:db8::1:9125",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_status_reads_as_prometheus_text() {
        let mut s = crate::status::render::tests::sample();
        s.groups[0].ips[0].state = "held".into();
        s.groups[0]
            .counters
            .rejected
            .insert("auth_failed".into(), 4);
        let control = ControlRequests::default();
        control
            .get_or_create(&labels(&[("cmd", "status")]))
            .inc_by(3);
        let family = probe_seconds();
        probe_histogram_of(&family, "web").observe(0.3);
        probe_histogram_of(&family, "db");
        let text = render(&s, &family, &control);
        // One family per name, whatever the number of groups.
        assert_eq!(
            text.matches("# TYPE ipfail_probe_duration_seconds histogram")
                .count(),
            1,
            "{text}"
        );
        for line in [
            "ipfail_group_state{group=\"web\",state=\"BACKUP\"} 1.0",
            "ipfail_group_state{group=\"web\",state=\"MASTER\"} 0.0",
            "ipfail_ips_held{group=\"web\"} 1.0",
            "ipfail_ips_configured{group=\"web\"} 2.0",
            "ipfail_adverts_received_total{group=\"web\"} 751",
            "ipfail_adverts_rejected_total{group=\"web\",class=\"auth_failed\"} 4",
            "ipfail_transitions_total{group=\"web\",reason=\"more_preferred\"} 1",
            "ipfail_announcements_total{group=\"web\"} 6",
            "ipfail_control_requests_total{cmd=\"status\"} 3",
            "ipfail_probe_duration_seconds_count{group=\"web\"} 1",
            "ipfail_probe_duration_seconds_bucket{le=\"0.512\",group=\"web\"} 1",
            "ipfail_probe_duration_seconds_bucket{le=\"0.256\",group=\"web\"} 0",
            "# TYPE ipfail_group_state gauge",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }
}
