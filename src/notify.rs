//! State-change scripts (`notify`, issue 8): the operator's command, run
//! on every transition of a group, the way keepalived's `notify` and
//! ucarp's up/down scripts are used (start or stop a service, call a cloud
//! API, send an alert).
//!
//! Each group has one task that runs its scripts one after another, in
//! the order of the transitions; the election only queues a job and never
//! waits for it. A script gets, as arguments and in its environment:
//!
//! | argument | environment | value |
//! |---|---|---|
//! | `$1` | `IPFAIL_GROUP` | the section name |
//! | `$2` | `IPFAIL_OLD_STATE` | `INIT`, `BACKUP` or `MASTER` |
//! | `$3` | `IPFAIL_NEW_STATE` | `INIT`, `BACKUP` or `MASTER` |
//! | | `IPFAIL_VHID` | the vhid |
//! | | `IPFAIL_REASON` | why, as in the log |
//! | | `IPFAIL_IPS` | the group's IPs, space separated |
//!
//! after the configured arguments of `notify`. It runs without a shell,
//! stdin closed, in a process group of its own, and is killed with that
//! group after [`NOTIFY_TIMEOUT`]; its exit status and output go to the log.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

/// A script still running after this is killed (with its process group).
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Output kept for the log, per stream.
const OUTPUT_MAX: usize = 400;

/// One transition to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub group: String,
    pub vhid: u8,
    pub old: String,
    pub new: String,
    pub reason: String,
    pub ips: Vec<String>,
}

/// A group's script runner. Dropping it (the group stops, the daemon
/// exits) kills the script running then, with its process group, and
/// drops the jobs still queued.
pub struct Notifier {
    tx: mpsc::UnboundedSender<Job>,
    /// Process group of the script running now.
    running: Arc<Mutex<Option<i32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Notifier {
    /// Starts the runner of `command` (program and its own arguments).
    pub fn start(command: Vec<String>) -> Notifier {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let running = Arc::new(Mutex::new(None));
        let pgid = running.clone();
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                run(&command, &job, NOTIFY_TIMEOUT, &pgid).await;
            }
        });
        Notifier { tx, running, task }
    }

    /// Queues a job; returns at once.
    pub fn notify(&self, job: Job) {
        let _ = self.tx.send(job);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(pid) = self.running.lock().ok().and_then(|g| *g) {
            kill_group(pid);
        }
    }
}

fn kill_group(pid: i32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Runs one job and logs the result; `running` holds its process group
/// while it runs.
pub async fn run(command: &[String], job: &Job, timeout: Duration, running: &Mutex<Option<i32>>) {
    let Some((program, fixed)) = command.split_first() else {
        return;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(fixed)
        .args([&job.group, &job.old, &job.new])
        .env("IPFAIL_GROUP", &job.group)
        .env("IPFAIL_VHID", job.vhid.to_string())
        .env("IPFAIL_OLD_STATE", &job.old)
        .env("IPFAIL_NEW_STATE", &job.new)
        .env("IPFAIL_REASON", &job.reason)
        .env("IPFAIL_IPS", job.ips.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let start = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            warn!(group = %job.group, program = %program, "notify script could not start: {e}");
            return;
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    if let Ok(mut r) = running.lock() {
        *r = pid;
    }
    let result = tokio::time::timeout(timeout, child.wait_with_output()).await;
    if let Ok(mut r) = running.lock() {
        *r = None;
    }
    match result {
        Ok(Ok(out)) => {
            let text = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .trim()
                    .chars()
                    .take(OUTPUT_MAX)
                    .collect::<String>()
            };
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let took = start.elapsed().as_millis() as u64;
            if out.status.success() {
                info!(group = %job.group, program = %program, transition = %format!("{} -> {}", job.old, job.new),
                    took_ms = took, %stdout, %stderr, "notify script done");
            } else {
                warn!(group = %job.group, program = %program, transition = %format!("{} -> {}", job.old, job.new),
                    took_ms = took, %stdout, %stderr, "notify script failed: {}", out.status);
            }
        }
        Ok(Err(e)) => warn!(group = %job.group, program = %program, "notify script: {e}"),
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid);
            }
            warn!(group = %job.group, program = %program, "notify script killed after {timeout:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_gets_the_documented_arguments_and_environment_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let out = std::env::temp_dir().join(format!("ipfail-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let script = format!(
            "echo \"$1 $2 $3 | $IPFAIL_GROUP $IPFAIL_VHID $IPFAIL_OLD_STATE $IPFAIL_NEW_STATE | $IPFAIL_IPS | $IPFAIL_REASON\" >> {}",
            out.display()
        );
        let command = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            script,
            "sh".to_string(),
        ];
        let job = |old: &str, new: &str| Job {
            group: "web".into(),
            vhid: 10,
            old: old.into(),
            new: new.into(),
            reason: "master down: no advert for 3.00 s".into(),
            ips: vec!["203.0.113.10".into(), "203.0.113.11".into()],
        };
        rt.block_on(async {
            let n = Notifier::start(command.clone());
            n.notify(job("INIT", "BACKUP"));
            n.notify(job("BACKUP", "MASTER"));
            // Give the queue time to drain; then a script that hangs is
            // killed at its timeout.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let t = Instant::now();
            run(
                &["/bin/sh".into(), "-c".into(), "sleep 30".into()],
                &job("MASTER", "BACKUP"),
                Duration::from_millis(200),
                &Mutex::new(None),
            )
            .await;
            assert!(t.elapsed() < Duration::from_secs(2));
        });
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "web INIT BACKUP | web 10 INIT BACKUP | 203.0.113.10 203.0.113.11 | master down: no advert for 3.00 s",
                "web BACKUP MASTER | web 10 BACKUP MASTER | 203.0.113.10 203.0.113.11 | master down: no advert for 3.00 s",
            ]
        );
    }
}
