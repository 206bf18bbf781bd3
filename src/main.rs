//! The `ipfail` binary: parse arguments, run a subcommand, map errors to an
//! exit code. Everything else lives in the library.
use clap::Parser;
use ipfail::cli::{Cli, Command, Targets};
use ipfail::control::{client, Request, Target};
use ipfail::logging::LogFormat;
use ipfail::{config, daemon, hook, status};
use std::process::ExitCode;
use tracing::Level;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, other_host } => check(&config, other_host),
        Command::Hook {
            config,
            carp,
            action,
            dry_run,
            force,
            log_format,
        } => {
            // Sys-layer warnings (e.g. ICMP unavailable) go to stderr; the
            // hook's own report is its stdout lines.
            init_logging(log_format, Level::WARN);
            ExitCode::from(hook::run(&hook::HookArgs {
                config,
                carp,
                event: action,
                dry_run,
                force,
            }))
        }
        Command::Status {
            config,
            json,
            check,
        } => ExitCode::from(status::run(&config, json, check)),
        Command::Demote(t) => {
            let (config, target) = targets(t);
            ExitCode::from(client::run_command(&config, &Request::Demote(target)))
        }
        Command::Promote(t) => {
            let (config, target) = targets(t);
            ExitCode::from(client::run_command(&config, &Request::Promote(target)))
        }
        Command::Takeover {
            group,
            despite_answers,
            undo,
            config,
        } => {
            if !despite_answers && !undo {
                eprintln!(
                    "ipfail: takeover takes the IPs of [{group}] although another host still \
                     answers for them. First check with `ipfail status` who answers and that it \
                     is dead to its service, then run `ipfail takeover {group} --despite-answers` \
                     (undo with `ipfail takeover {group} --undo`)."
                );
                return ExitCode::from(2);
            }
            let req = Request::Takeover { group, undo };
            ExitCode::from(client::run_command(&config, &req))
        }
        Command::Reload { config } => {
            ExitCode::from(client::run_command(&config, &Request::Reload))
        }
        Command::Daemon {
            config,
            verbose,
            log_format,
        } => {
            init_logging(log_format, if verbose { Level::DEBUG } else { Level::INFO });
            let cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    tracing::error!("refusing to start: {e}");
                    return ExitCode::from(1);
                }
            };
            match daemon::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `ipfail check`: the file, then this host (`--other-host`: the host's
/// findings are warnings). Nothing goes to stdout unless the file passes.
fn check(path: &std::path::Path, other_host: bool) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("ipfail: {e}");
            return ExitCode::from(1);
        }
    };
    let (problems, unread) = match config::host::HostView::read_now() {
        Ok(view) => (config::host::check_host(&cfg, &view), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    if other_host {
        if let Some(e) = &unread {
            eprintln!("ipfail: warning: cannot read this host's interfaces and addresses: {e}");
        }
        for p in &problems {
            eprintln!("ipfail: warning (another host's file): {p}");
        }
    } else if unread.is_some() || !problems.is_empty() {
        if let Some(e) = &unread {
            eprintln!("ipfail: cannot read this host's interfaces and addresses: {e}");
        }
        for p in &problems {
            eprintln!("ipfail: {p}");
        }
        eprintln!(
            "ipfail: {}: the file is valid but does not fit this host; \
             for a file meant for another host use: ipfail check --other-host -c {}",
            path.display(),
            path.display()
        );
        return ExitCode::from(1);
    }
    print!("{}", cfg.describe());
    if other_host {
        println!(
            "{}: configuration OK (checked for another host: {} finding(s) about this host \
             were warnings)",
            path.display(),
            problems.len() + usize::from(unread.is_some())
        );
    } else {
        println!("{}: configuration OK", path.display());
    }
    ExitCode::SUCCESS
}

/// clap guarantees exactly one of GROUP and --all.
fn targets(t: Targets) -> (std::path::PathBuf, Target) {
    let target = match t.group {
        Some(g) if !t.all => Target::Group(g),
        _ => Target::All,
    };
    (t.config, target)
}

fn init_logging(format: Option<LogFormat>, level: Level) {
    ipfail::logging::init(format.unwrap_or_else(LogFormat::detect), level);
}
