//! `ipfail status [-c FILE] [--json] [--check]`.
//!
//! Asks the daemon on its control socket and prints the table
//! ([`render`]), the JSON document (`--json`) or one Nagios line
//! (`--check`, [`check`]). Without a daemon it says so and shows what it can
//! see locally ([`local`]).
//!
//! Exit status: 0 the daemon answered; 1 it did not (or the config cannot be
//! read). With `--check`: 0 OK, 1 WARNING, 2 CRITICAL (including "daemon
//! not running"), 3 UNKNOWN.

pub mod check;
pub mod link;
pub mod local;
pub mod render;

use crate::config;
use crate::control::client::{self, ClientError};
use crate::control::{Request, Status, VERSION};
use check::Level;
use std::path::Path;

/// Why no status came back.
enum NoStatus {
    Client(ClientError),
    Refused(String),
}

impl std::fmt::Display for NoStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoStatus::Client(e) => write!(f, "{e}"),
            NoStatus::Refused(e) => write!(f, "the ipfail daemon refused the status request: {e}"),
        }
    }
}

fn ask(socket: &Path) -> Result<Status, NoStatus> {
    let reply = client::request(socket, &Request::Status).map_err(NoStatus::Client)?;
    match (reply.ok, reply.status) {
        (true, Some(s)) => Ok(*s),
        (true, None) => Err(NoStatus::Refused("the reply has no status".into())),
        (false, _) => Err(NoStatus::Refused(
            reply.error.unwrap_or_else(|| "no reason given".into()),
        )),
    }
}

/// Runs the command; returns the exit status.
pub fn run(config_path: &Path, json: bool, check: bool) -> u8 {
    let cfg = match config::load(config_path) {
        Ok(c) => Some(c),
        // A broken file would stop the daemon from restarting: worth a page.
        Err(e) if check => {
            println!("{}", Level::Unknown.line(&e.to_string()));
            return Level::Unknown.code();
        }
        // The running daemon does not care; ask it anyway.
        Err(e) => {
            eprintln!("ipfail: warning: {e}");
            None
        }
    };
    let socket = cfg.as_ref().map_or_else(
        || config::control_socket_lenient(config_path),
        |c| c.global.control_socket.clone(),
    );
    match ask(&socket) {
        Ok(status) if check => {
            let (level, line) = check::evaluate(&status);
            println!("{line}");
            level.code()
        }
        Ok(status) if json => match serde_json::to_string_pretty(&status) {
            Ok(text) => {
                println!("{text}");
                0
            }
            Err(e) => {
                eprintln!("ipfail: cannot encode the status: {e}");
                1
            }
        },
        Ok(status) => {
            print!("{}", render::render(&status));
            0
        }
        Err(why) if check => {
            let down = matches!(&why, NoStatus::Client(e) if e.is_not_running());
            let level = if down {
                Level::Critical
            } else {
                Level::Unknown
            };
            println!("{}", level.line(&why.to_string()));
            level.code()
        }
        Err(why) => {
            let local = match &cfg {
                Some(cfg) => local::gather(cfg),
                None => Err("the configuration does not validate, so its IPs are unknown".into()),
            };
            if json {
                let doc = serde_json::json!({
                    "v": VERSION,
                    "daemon": null,
                    "error": why.to_string(),
                    "local": local.as_ref().ok(),
                    "local_error": local.as_ref().err(),
                });
                println!("{doc:#}");
            } else {
                println!("{why}");
                match local {
                    Ok(groups) => print!("{}", local::render(&groups)),
                    Err(e) => println!("cannot read this host's addresses either: {e}"),
                }
            }
            1
        }
    }
}
