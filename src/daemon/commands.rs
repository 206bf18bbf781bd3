//! Requests the control thread hands to the loop: demote, promote, reload.
//! The control thread has already checked the group names, persisted the
//! demotion list and read the new configuration; the loop only applies.

use super::{flush, Daemon};
use crate::carp::fsm::{master_down_interval, State};
use crate::config::Config;
use crate::control::server::LoopCmd;
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
            LoopCmd::Reload { config, reply } => {
                let result = self.reload(*config).await;
                let _ = reply.send(result);
            }
        }
        // The client's next `status` must see what it just did.
        self.publish(true);
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
            let unchanged = g.driver.fsm().is_demoted() == on;
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

    async fn reload(&mut self, config: Config) -> Result<Vec<String>, String> {
        info!("reloading {}", config.path.display());
        // A file that does not fit this host (e.g. it lists the host's own
        // address) changes nothing (docs/safety.md, "Only our own addresses").
        if let Err(e) = crate::config::host::check_for_daemon(&config, &self.netlink).await {
            error!("reload refused: {e}");
            return Err(format!("{e}; nothing changed"));
        }
        // Groups that gained a vhid need their lock file; never wait for it
        // here (the loop must not block): a hook run holding one makes the
        // whole reload fail, and the operator tries again.
        if let Err(e) = self.group_locks.update(&config, Duration::ZERO) {
            error!("reload refused, nothing changed: {e}");
            return Err(format!("{e}; nothing changed, try again"));
        }
        match self.apply_config(config).await {
            Ok(lines) => {
                for line in &lines {
                    info!("reload: {line}");
                }
                Ok(lines)
            }
            Err(e) => {
                // Back to the locks of the configuration still running.
                if let Err(le) = self.group_locks.update(&self.config, Duration::ZERO) {
                    error!("reload: could not restore the group locks: {le}");
                }
                error!("reload failed, nothing changed: {e}");
                Err(format!("{e}; nothing changed"))
            }
        }
    }
}
