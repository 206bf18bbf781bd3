//! keepalived housekeeping: its VRRP child, if the parent died without
//! stopping it, is killed by PID, and only if it is the keepalived that
//! wrote our pid file and lives in our host's namespace.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::lab::Host;

pub fn kill_orphan(dir: &Path, host: &Host) {
    let file = dir.join(format!("{}.vrrp.pid", host.name));
    let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let ns_of = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let ours = ns_of(&format!("/run/netns/{}", host.ns));
    let its = ns_of(&format!("/proc/{pid}/ns/net"));
    if comm.trim() == "keepalived" && ours.is_some() && ours == its {
        eprintln!(
            "bench: killing keepalived VRRP child {pid} left in {}",
            host.ns
        );
        // SAFETY: kill(2) of a PID checked above to be our keepalived.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
