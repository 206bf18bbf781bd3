//! Failover between two hosts in network namespaces, for people and for
//! figures.
//!
//! - `failover demo`: one ipfail pair and a client; election, link cut,
//!   failover, failback, graceful stop; prints the merged timeline
//!   (`demo.rs`).
//! - `failover bench [--runs N] [--long] [--agents A,B]`: issue 9's scenarios (link cut,
//!   SIGTERM, preempt back, demote, 757 IPs, a carrier blip, a flapping
//!   link) for ipfail, ucarp and keepalived side by side, one table per
//!   scenario with min / median / max over the runs (`bench.rs`).
//!
//! Needs root. Run through `scripts/demo` / `scripts/bench`, which build the
//! `ipfail` binary this uses (`$IPFAIL_BIN`, else target/<profile>/ipfail).
//! Traffic stays inside the namespaces it creates, on documentation
//! addresses; it signals only the processes it started, by PID.

#[path = "../../tests/lab/mod.rs"]
mod lab;

mod adverts;
mod agents;
mod bench;
mod client;
mod demo;
mod keepalived;
mod link;
mod planned;
mod report;
mod sampler;
mod scale;
mod setup;

use std::time::Duration;

/// How long the link flaps by default, and with `--long`.
const FLAP_WINDOW: Duration = Duration::from_secs(10);
const FLAP_WINDOW_LONG: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("demo");
    if !lab::require_root() {
        std::process::exit(1);
    }
    match mode {
        "demo" => demo::demo(),
        "bench" => {
            let runs = args
                .iter()
                .position(|a| a == "--runs")
                .and_then(|i| args.get(i + 1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(3usize)
                .clamp(1, 50);
            let long = args.iter().any(|a| a == "--long");
            let window = if long { FLAP_WINDOW_LONG } else { FLAP_WINDOW };
            let only = args
                .iter()
                .position(|a| a == "--agents")
                .and_then(|i| args.get(i + 1))
                .map(|list| list.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            bench::bench(&bench::Opts { runs, window, only });
        }
        other => {
            eprintln!(
                "usage: failover [demo | bench [--runs N] [--long] [--agents ipfail,ucarp,keepalived]] (got {other:?})"
            );
            std::process::exit(2);
        }
    }
}
