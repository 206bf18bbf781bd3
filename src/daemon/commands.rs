//! Requests the control thread hands to the loop: demote, promote, reload.
//! The control thread has already checked the group names, persisted the
//! demotion list and read the new configuration; the loop only applies.
//! A reload's checks, locks and netlink lookups run in a task of their
//! own; the loop only commits the prepared result.

use super::apply::{prepare, Prepared};
use super::{flush, Daemon};
use crate::carp::fsm::{master_down_interval, State};
use crate::config::Config;
use crate::control::server::LoopCmd;
use crate::lockfile::DaemonLocks;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info};

impl Daemon {
    pub(super) async fn on_command(&mut self, cmd: LoopCmd) {
        match cmd {
            LoopCmd::SetDemoted {
                groups,
                demoted,
                reply,
            } => {
                let lines = self.set_demoted(&groups, demoted).await;
                let _ = reply.send(lines);
            }
            LoopCmd::Reload { config, reply } => self.start_reload(*config, reply),
            LoopCmd::Takeover { group, undo, reply } => self.takeover(&group, undo, reply),
        }
        // The client's next `status` must see what it just did.
        self.publish(true);
    }

    /// `ipfail takeover`: only a master forces (its IP task checks again);
    /// the IP task answers the operator. Never waits: a busy task is an error.
    fn takeover(
        &mut self,
        name: &str,
        undo: bool,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    ) {
        let Some(g) = self.groups.iter().find(|g| g.cfg.name == name) else {
            let _ = reply.send(Err(format!(
                "no group [{name}] with a vhid runs here (groups: {})",
                self.groups
                    .iter()
                    .map(|g| g.cfg.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
            return;
        };
        let state = g.driver.fsm().state();
        if !undo && state != State::Master {
            let _ = reply.send(Err(format!(
                "{name} is {state} on this host: a forced takeover applies only to a master's IPs. \
                 If a peer still advertises as master, it is not a zombie: demote or stop it there; \
                 if this host cannot become master (link down?), fix that first"
            )));
            return;
        }
        let cmd = crate::ipmgr::IpCmd { undo, reply };
        if let Err(e) = g.ip_cmds.try_send(cmd) {
            let cmd = match e {
                tokio::sync::mpsc::error::TrySendError::Full(c)
                | tokio::sync::mpsc::error::TrySendError::Closed(c) => c,
            };
            let _ = cmd.reply.send(Err(format!(
                "{name}: its IP task is busy or gone; try again"
            )));
        }
        self.dirty = true;
    }

    async fn set_demoted(&mut self, names: &[String], on: bool) -> Vec<String> {
        let now = Instant::now();
        let mut lines = Vec::new();
        for name in names {
            if on {
                self.demoted.insert(name.clone());
            } else {
                self.demoted.remove(name);
            }
            let Some(g) = self.groups.iter_mut().find(|g| &g.cfg.name == name) else {
                lines.push(format!("{name}: not running; recorded for the next start"));
                continue;
            };
            let was = g.driver.fsm().state();
            let unchanged = g.driver.is_operator_demoted() == on;
            g.driver.set_demoted(now, on);
            if flush(&self.ifaces, g).await {
                self.urgent = true;
            }
            self.dirty = true;
            let cfg = g.driver.fsm().config();
            let line = match (on, unchanged, was) {
                (true, true, _) => format!("{name}: already demoted"),
                (false, true, _) => format!("{name}: not demoted"),
                (true, false, State::Master) => format!(
                    "{name}: demoted: released its IPs and bowed out, a peer takes over at once \
                     (if none does, this host takes the group back after {:.2} s)",
                    master_down_interval(cfg.advbase, cfg.advskew).as_secs_f64()
                ),
                (true, false, State::Backup) => {
                    format!("{name}: demoted: stays BACKUP and will not preempt")
                }
                (true, false, State::Init) => format!("{name}: demoted (INIT: link down)"),
                (false, false, State::Master) => format!(
                    "{name}: promoted: advertising advbase {} advskew {} again",
                    cfg.advbase, cfg.advskew
                ),
                (false, false, State::Backup) if cfg.preempt => format!(
                    "{name}: promoted: takes the group back on the master's next advert \
                     if it is preferred"
                ),
                (false, false, State::Backup) => format!(
                    "{name}: promoted, but preempt is off: stays BACKUP until the master goes"
                ),
                (false, false, State::Init) => format!("{name}: promoted (INIT: link down)"),
            };
            info!("{line}");
            lines.push(line);
        }
        lines
    }

    /// Starts a reload: the host check, the group locks and every
    /// netlink lookup run in a task of their own ([`prepare_reload`]); the
    /// loop commits the result when it arrives ([`Daemon::finish_reload`]).
    fn start_reload(&mut self, config: Config, reply: Reply) {
        if self.reloading {
            let _ = reply.send(Err(
                "a reload is still being prepared; nothing changed, try again".to_string(),
            ));
            return;
        }
        info!("reloading {}", config.path.display());
        self.reloading = true;
        let job = ReloadJob {
            netlink: self.netlink.clone(),
            running: self.running(),
            locks: self.group_locks.clone(),
            current: self.config.clone(),
        };
        let done = self.reload_tx.clone();
        tokio::spawn(async move {
            let result = prepare_reload(job, config).await;
            let _ = done.send(ReloadDone { result, reply });
        });
    }

    /// Commits a prepared reload (or reports why nothing changed).
    pub(super) async fn finish_reload(&mut self, done: ReloadDone) {
        self.reloading = false;
        let result = match done.result {
            Ok(prepared) => {
                let lines = self.commit(prepared).await;
                for line in &lines {
                    info!("reload: {line}");
                }
                Ok(lines)
            }
            Err(e) => Err(e),
        };
        let _ = done.reply.send(result);
        self.publish(true);
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Vec<String>, String>>;

/// A reload's preparation, handed back to the loop.
pub(super) struct ReloadDone {
    result: Result<Prepared, String>,
    reply: Reply,
}

/// What a reload's preparation needs, copied off the loop.
struct ReloadJob {
    netlink: crate::sys::linux::Netlink,
    running: super::apply::Running,
    locks: Arc<Mutex<DaemonLocks>>,
    /// The configuration running now, to restore the locks on failure.
    current: Config,
}

/// Everything of a reload that can fail or wait, off the loop.
async fn prepare_reload(job: ReloadJob, config: Config) -> Result<Prepared, String> {
    // A file that does not fit this host (e.g. it lists the host's own
    // address) changes nothing (docs/safety.md, "Only our own addresses").
    if let Err(e) = crate::config::host::check_for_daemon(&config, &job.netlink).await {
        error!("reload refused: {e}");
        return Err(format!("{e}; nothing changed"));
    }
    // Groups that gained a vhid need their lock; never wait for one: a
    // hook run holding it makes the whole reload fail, and the operator
    // tries again. Naming its holder may read a socket, so it runs on a
    // blocking thread, never on the loop's.
    if let Err(e) = update_locks(&job.locks, &config).await {
        error!("reload refused, nothing changed: {e}");
        return Err(format!("{e}; nothing changed, try again"));
    }
    match prepare(&job.netlink, &job.running, config, false).await {
        Ok(prepared) => Ok(prepared),
        Err(e) => {
            // Back to the locks of the configuration still running.
            if let Err(le) = update_locks(&job.locks, &job.current).await {
                error!("reload: could not restore the group locks: {le}");
            }
            error!("reload failed, nothing changed: {e}");
            Err(format!("{e}; nothing changed"))
        }
    }
}

async fn update_locks(locks: &Arc<Mutex<DaemonLocks>>, config: &Config) -> Result<(), String> {
    let (locks, config) = (locks.clone(), config.clone());
    tokio::task::spawn_blocking(move || {
        let mut held = locks
            .lock()
            .map_err(|_| "the group locks are poisoned".to_string())?;
        held.update(&config, Duration::ZERO)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("updating the group locks: {e}"))?
}
