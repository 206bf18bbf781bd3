//! `failover bench`: every scenario of issue 9 for ipfail, ucarp and
//! keepalived (1 s and 0.1 s adverts), all agents in each run, then one
//! table per scenario.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::agents::{Agent, STANDBY_SKEW};
use crate::report::{Table, Unit};
use crate::setup::{Res, Setup, A, B};
use crate::{link, planned, scale};

const SEC: Duration = Duration::from_secs(1);
/// a alone has held the IPs this long: the lab is settled for the next
/// scenario (two of ucarp's one-second capture ticks).
const STABLE: Duration = Duration::from_secs(2);

pub struct Opts {
    pub runs: usize,
    /// How long the link flaps.
    pub window: Duration,
    /// Only these agents (`--agents ipfail,ucarp,keepalived`); all if empty.
    pub only: Vec<String>,
}

const ALL: [Agent; 4] = [
    Agent::Ipfail,
    Agent::Ucarp,
    Agent::Keepalived { fast: false },
    Agent::Keepalived { fast: true },
];

type Results = HashMap<(&'static str, &'static str), Vec<Res<Vec<f64>>>>;

pub fn bench(opts: &Opts) {
    let started = Instant::now();
    let wanted = |a: &Agent| {
        opts.only.is_empty() || opts.only.iter().any(|o| a.name().starts_with(o.as_str()))
    };
    let agents: Vec<Agent> = ALL
        .into_iter()
        .filter(|a| a.installed() && wanted(a))
        .collect();
    println!(
        "failover bench: hosts a (preferred) and b (standby) and a client c in network namespaces;"
    );
    println!(
        "CARP advbase 1, advskew 0 / {STANDBY_SKEW} (ipfail with its defaults, ucarp --preempt --shutdown);"
    );
    println!("keepalived priority 254 / 246 (the same 10/256 skew), preempt on, VRRPv2 1 s or VRRPv3 0.1 s;");
    println!(
        "the client pings 203.0.113.10 every 10 ms, a sampler reads both hosts' addresses every 10 ms;"
    );
    println!(
        "{} run(s), min / median / max; link flaps for {} s.",
        opts.runs,
        opts.window.as_secs()
    );
    for a in ALL.iter().filter(|a| !a.installed()) {
        println!("({} is not installed: scripts/deps installs it)", a.name());
    }
    let mut results: Results = HashMap::new();
    for run in 0..opts.runs {
        for &agent in &agents {
            eprintln!("bench: run {} of {}, {}", run + 1, opts.runs, agent.name());
            for (scenario, r) in pair_run(agent, run, opts) {
                results.entry((scenario, agent.name())).or_default().push(r);
            }
        }
        for &agent in agents.iter().filter(|a| **a != Agent::Ucarp) {
            eprintln!(
                "bench: run {} of {}, {}, 757 IPs",
                run + 1,
                opts.runs,
                agent.name()
            );
            let tag = format!("s{}{run}", agent.short());
            let r = guarded(|| scale::sigterm_757(agent, &tag));
            results.entry(("scale", agent.name())).or_default().push(r);
        }
    }
    for t in tables(&agents, opts, &mut results) {
        t.print();
    }
    println!("\nbench took {} s", started.elapsed().as_secs());
}

/// Runs `f`, turning a panic (a lab command failing) into an error.
fn guarded(f: impl FnOnce() -> Res<Vec<f64>>) -> Res<Vec<f64>> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_text(&*p)))
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    format!("panicked: {msg}")
}

/// The scenarios on one pair, in order; each from a settled lab except
/// preempt, which follows SIGTERM.
fn pair_run(agent: Agent, run: usize, opts: &Opts) -> Vec<(&'static str, Res<Vec<f64>>)> {
    let mut out: Vec<(&'static str, Res<Vec<f64>>)> = Vec::new();
    let done = catch_unwind(AssertUnwindSafe(|| {
        let mut s = Setup::new(&format!("p{}{run}", agent.short()), agent, 1);
        let t = std::time::SystemTime::now();
        s.start(A);
        s.start(B);
        if let Err(e) = s.wait("a alone holds the IP", t, 20 * SEC, |r| r.alone(A)) {
            out.push(("start", Err(e)));
            return;
        }
        s.start_client();
        type Step = fn(&mut Setup, &Opts) -> Res<Vec<f64>>;
        let mut steps: Vec<(&'static str, Step)> = vec![
            ("blip", |s, _| link::blip(s)),
            ("cut", |s, _| link::cut(s)),
            ("sigterm", |s, _| planned::sigterm(s)),
            ("preempt", |s, _| planned::preempt(s)),
        ];
        if agent == Agent::Ipfail {
            steps.push(("demote", |s, _| planned::demote(s)));
        }
        steps.push(("flap200", |s, o| {
            link::flap(s, Duration::from_millis(200), o.window)
        }));
        steps.push(("flap1s", |s, o| link::flap(s, SEC, o.window)));
        for (name, step) in steps {
            let r = if name == "preempt" {
                step(&mut s, opts)
            } else {
                s.settle(STABLE, 25 * SEC).and_then(|_| step(&mut s, opts))
            };
            if let Err(e) = &r {
                eprintln!("bench: {} {name}: {e}", agent.name());
            }
            out.push((name, r));
        }
    }));
    if let Err(p) = done {
        out.push(("lab", Err(panic_text(&*p))));
    }
    // A failure before the scenarios, or a panic, fails the rest.
    let failure = out
        .iter()
        .find(|(n, _)| *n == "start" || *n == "lab")
        .and_then(|(_, r)| r.as_ref().err().cloned());
    if let Some(e) = failure {
        for name in [
            "blip", "cut", "sigterm", "preempt", "demote", "flap200", "flap1s",
        ] {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, Err(e.clone())));
            }
        }
    }
    out
}

/// A table: the scenario key, its title and its columns.
type Spec = (&'static str, String, Vec<(&'static str, Unit)>);

fn tables(agents: &[Agent], opts: &Opts, results: &mut Results) -> Vec<Table> {
    let w = opts.window.as_secs();
    let specs: Vec<Spec> = vec![
        (
            "cut",
            "Link cut on the master (its veth loses carrier)".into(),
            vec![
                ("last advert -> IP on the standby", Unit::Ms),
                ("client outage", Unit::Ms),
            ],
        ),
        (
            "sigterm",
            "SIGTERM of the master's agent".into(),
            vec![
                ("standby holds the IP", Unit::Ms),
                ("client outage", Unit::Ms),
                ("double hold", Unit::Double),
            ],
        ),
        (
            "preempt",
            "Preempt back: the preferred host's agent started while the standby is master".into(),
            vec![
                ("preferred holds the IP", Unit::Ms),
                ("client outage", Unit::Ms),
                ("double hold", Unit::Double),
            ],
        ),
        (
            "demote",
            "ipfail demote on the master, then promote".into(),
            vec![
                ("demote: client outage", Unit::Ms),
                ("double hold", Unit::Double),
                ("promote: client outage", Unit::Ms),
                ("double hold", Unit::Double),
            ],
        ),
        (
            "scale",
            format!(
                "{} IPs in one group: SIGTERM of the master's agent",
                scale::SCALE_IPS
            ),
            vec![("standby holds every IP", Unit::Ms)],
        ),
        (
            "blip",
            "One 100 ms carrier loss on the master".into(),
            vec![("client outage", Unit::Ms), ("double hold", Unit::Double)],
        ),
        (
            "flap200",
            format!("Master link down/up every 200 ms for {w} s"),
            vec![
                ("served", Unit::Pct),
                ("held by the stable host", Unit::Pct),
                ("double hold", Unit::Double),
            ],
        ),
        (
            "flap1s",
            format!("Master link down/up every 1 s for {w} s"),
            vec![
                ("served", Unit::Pct),
                ("held by the stable host", Unit::Pct),
                ("double hold", Unit::Double),
            ],
        ),
    ];
    specs
        .into_iter()
        .map(|(key, title, columns)| {
            let mut rows = Vec::new();
            let mut skipped = Vec::new();
            for a in agents {
                match results.remove(&(key, a.name())) {
                    Some(runs) => rows.push((a.name().to_string(), runs)),
                    None if key == "scale" && *a == Agent::Ucarp => skipped.push((
                        a.name().to_string(),
                        "not run: one ucarp process per IP".to_string(),
                    )),
                    None if key == "demote" => {}
                    None => skipped.push((a.name().to_string(), "no result".to_string())),
                }
            }
            Table {
                title,
                columns,
                rows,
                skipped,
            }
        })
        .collect()
}
