//! Per-group lock files: one `ipfail hook` run at a time per group, and no
//! hook run at all for a group the daemon is electing.
//!
//! The file is `<dir>/<group>.lock`, `dir` being the directory of
//! `control_socket` (default /run/ipfail, a tmpfs, so nothing outlives a
//! reboot). A holder takes flock(2) `LOCK_EX` on it for as long as it acts
//! for the group and writes who it is into it: `daemon <pid>` or
//! `hook <pid>`. The kernel drops the lock when the holder exits, however it
//! exits, so a file left behind never blocks anyone; its text only tells a
//! waiter who holds the lock right now.
//!
//! A waiter that finds the lock held by a live daemon gives up at once (the
//! daemon holds it for its whole life); one held by anything else is waited
//! for, up to a bound.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::config::{Config, Global};

/// How long a hook run (or a starting daemon) waits for another holder.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How often a waiter retries.
const POLL: Duration = Duration::from_millis(10);
/// The holder line is tiny; more than this is not a lock file of ours.
const MAX_TEXT: usize = 64;

/// Who takes a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Daemon,
    Hook,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Daemon => "daemon",
            Role::Hook => "hook",
        }
    }
}

/// The holder a lock file names (`daemon 123` / `hook 456`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    pub role: Role,
    pub pid: u32,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.role {
            Role::Daemon => write!(f, "the ipfail daemon (pid {})", self.pid),
            Role::Hook => write!(f, "ipfail hook (pid {})", self.pid),
        }
    }
}

/// Parses the text of a lock file; `None` for anything but one holder line.
pub fn parse_holder(text: &str) -> Option<Holder> {
    let mut words = text.split_whitespace();
    let role = match words.next()? {
        "daemon" => Role::Daemon,
        "hook" => Role::Hook,
        _ => return None,
    };
    let pid: u32 = words.next()?.parse().ok()?;
    (pid > 0 && words.next().is_none()).then_some(Holder { role, pid })
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct GroupLock {
    _file: Flock<File>,
    path: PathBuf,
    waited: Duration,
    waited_for: Option<Holder>,
}

impl GroupLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long taking the lock had to wait for another holder.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The holder seen last while waiting, if there was a wait.
    pub fn waited_for(&self) -> Option<Holder> {
        self.waited_for
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("[{group}] is managed by the running ipfail daemon (pid {pid})")]
    Daemon { group: String, pid: u32 },
    #[error(
        "{}: still held by {} after {:.1} s; giving up",
        .path.display(),
        .holder.map_or("another process".to_string(), |h| h.to_string()),
        .waited.as_secs_f64()
    )]
    Timeout {
        path: PathBuf,
        holder: Option<Holder>,
        waited: Duration,
    },
    #[error("{}: cannot {op}: {err}", .path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        err: io::Error,
    },
    #[error("[{0}]: not usable as a lock file name")]
    BadName(String),
}

/// Where the lock files live: the directory of `control_socket`.
pub fn lock_dir(global: &Global) -> PathBuf {
    global
        .control_socket
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// `<dir>/<group>.lock`. Group names are validated by the config; this
/// check only keeps a bad name from ever reaching another directory.
pub fn lock_path(dir: &Path, group: &str) -> Result<PathBuf, LockError> {
    let safe = !group.is_empty()
        && !group.starts_with('.')
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !safe {
        return Err(LockError::BadName(group.to_string()));
    }
    Ok(dir.join(format!("{group}.lock")))
}

/// Takes `group`'s lock in `dir` (created 0755 if missing) for `role`.
///
/// Fails at once with [`LockError::Daemon`] while a live daemon holds it;
/// otherwise waits up to `wait` for the holder to finish. On success the
/// file names this process as the holder.
pub fn acquire(
    dir: &Path,
    group: &str,
    role: Role,
    wait: Duration,
) -> Result<GroupLock, LockError> {
    let path = lock_path(dir, group)?;
    let io = |op, err| LockError::Io {
        path: path.clone(),
        op,
        err,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| io("create its directory", e))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        // The directory is root's; still, never follow a planted symlink.
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| io("open", e))?;
    let start = Instant::now();
    let mut seen = None;
    loop {
        file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => {
                write_holder(&locked, role).map_err(|e| io("write", e))?;
                return Ok(GroupLock {
                    _file: locked,
                    waited: if seen.is_some() {
                        start.elapsed()
                    } else {
                        Duration::ZERO
                    },
                    waited_for: seen.flatten(),
                    path,
                });
            }
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => f,
            Err((_, e)) => return Err(io("lock", e.into())),
        };
        let holder = read_holder(&file);
        if let Some(Holder {
            role: Role::Daemon,
            pid,
        }) = holder
        {
            if alive(pid) {
                return Err(LockError::Daemon {
                    group: group.to_string(),
                    pid,
                });
            }
        }
        // Between a holder's flock and its write the text still names the
        // previous holder: only a live daemon ends the wait early.
        seen = Some(holder);
        let waited = start.elapsed();
        if waited >= wait {
            return Err(LockError::Timeout {
                path,
                holder,
                waited,
            });
        }
        std::thread::sleep(POLL.min(wait - waited));
    }
}

/// The daemon's hold on every group it elects (those with a `vhid`), kept
/// for its whole life so that `ipfail hook` leaves those groups alone.
/// Dropping it releases every lock.
#[derive(Debug)]
pub struct DaemonLocks {
    dir: PathBuf,
    held: BTreeMap<String, GroupLock>,
}

impl DaemonLocks {
    /// The names of the groups held, sorted.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.held.keys().map(String::as_str)
    }

    /// After a reload: locks the groups that now have a `vhid` and releases
    /// those that no longer do (or are gone). All or nothing: if a new lock
    /// cannot be had within `wait` (a hook run holds it), nothing changes.
    /// The directory stays the one of the start, like the control socket.
    pub fn update(&mut self, config: &Config, wait: Duration) -> Result<(), LockError> {
        let wanted: BTreeSet<&str> = config.carp_groups().map(|g| g.name.as_str()).collect();
        let mut new = BTreeMap::new();
        for name in wanted.iter().filter(|n| !self.held.contains_key(**n)) {
            // On error `new` drops here, releasing what this call took.
            new.insert(
                name.to_string(),
                acquire(&self.dir, name, Role::Daemon, wait)?,
            );
        }
        self.held.retain(|name, _| wanted.contains(name.as_str()));
        self.held.append(&mut new);
        Ok(())
    }
}

/// Takes the daemon's locks at start, waiting up to [`LOCK_WAIT`] for a
/// hook run in progress.
pub fn hold_for_daemon(config: &Config) -> Result<DaemonLocks, LockError> {
    let mut locks = DaemonLocks {
        dir: lock_dir(&config.global),
        held: BTreeMap::new(),
    };
    locks.update(config, LOCK_WAIT)?;
    Ok(locks)
}

fn write_holder(file: &File, role: Role) -> io::Result<()> {
    let line = format!("{} {}\n", role.word(), std::process::id());
    file.set_len(0)?;
    file.write_all_at(line.as_bytes(), 0)
}

fn read_holder(file: &File) -> Option<Holder> {
    let mut buf = [0u8; MAX_TEXT];
    let n = file.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?;
    parse_holder(text)
}

/// Whether process `pid` exists (kill(pid, 0): EPERM still means it does).
fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(e) => e == Errno::EPERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ipfail-lockfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn text(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn holder_lines() {
        assert_eq!(
            parse_holder("daemon 42\n"),
            Some(Holder {
                role: Role::Daemon,
                pid: 42
            })
        );
        assert_eq!(
            parse_holder("hook 7"),
            Some(Holder {
                role: Role::Hook,
                pid: 7
            })
        );
        for bad in [
            "",
            "daemon",
            "daemon x",
            "daemon 0",
            "daemon -1",
            "demon 4",
            "hook 1 2",
        ] {
            assert_eq!(parse_holder(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        let dir = Path::new("/run/ipfail");
        assert_eq!(
            lock_path(dir, "carp2").ok(),
            Some(PathBuf::from("/run/ipfail/carp2.lock"))
        );
        for bad in ["", "..", ".hidden", "a/b", "../etc/x", "1@igb0"] {
            assert!(
                matches!(lock_path(dir, bad), Err(LockError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn lock_dir_is_the_control_sockets_directory() {
        let global = Global::default();
        assert_eq!(lock_dir(&global), PathBuf::from("/run/ipfail"));
    }

    /// The directory is created 0755 and the file names its holder; a
    /// second hook waits for the first and gives up after the bound.
    #[test]
    fn a_second_hook_waits_and_times_out() {
        let dir = tempdir("wait").join("run");
        let first = acquire(&dir, "carp2", Role::Hook, LOCK_WAIT).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&dir)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o755);
        assert_eq!(first.waited(), Duration::ZERO);
        assert_eq!(text(first.path()), format!("hook {}\n", std::process::id()));

        let t = Instant::now();
        let second = acquire(&dir, "carp2", Role::Hook, Duration::from_millis(150));
        assert!(t.elapsed() >= Duration::from_millis(150));
        match second {
            Err(e @ LockError::Timeout { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!(
                        "still held by ipfail hook (pid {})",
                        std::process::id()
                    )),
                    "{msg}"
                );
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        // Another group is independent.
        assert!(acquire(&dir, "carp1", Role::Hook, Duration::ZERO).is_ok());

        // Released on drop; the next holder waits only as long as needed.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        let third = acquire(&dir, "carp2", Role::Hook, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            third.waited() >= Duration::from_millis(50),
            "{:?}",
            third.waited()
        );
        assert_eq!(third.waited_for().map(|h| h.role), Some(Role::Hook));
        let _ = releaser.join();
        let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(&dir));
    }

    /// A live daemon's lock ends a hook's wait at once.
    #[test]
    fn a_daemons_lock_is_not_waited_for() {
        let dir = tempdir("daemon");
        let held = acquire(&dir, "web", Role::Daemon, LOCK_WAIT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text(held.path()),
            format!("daemon {}\n", std::process::id())
        );
        let t = Instant::now();
        match acquire(&dir, "web", Role::Hook, LOCK_WAIT) {
            Err(e @ LockError::Daemon { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "[web] is managed by the running ipfail daemon (pid {})",
                    std::process::id()
                )
            ),
            other => panic!("expected the daemon error, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1));
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A file left by a daemon that is gone does not block anyone.
    #[test]
    fn a_stale_file_is_taken_over() {
        let dir = tempdir("stale");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("web.lock");
        // i32::MAX is above any pid_max (at most 2^22), so surely not running.
        std::fs::write(&path, format!("daemon {}\n", i32::MAX)).unwrap_or_else(|e| panic!("{e}"));
        let lock =
            acquire(&dir, "web", Role::Hook, Duration::ZERO).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text(&path), format!("hook {}\n", std::process::id()));
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The daemon's set follows reloads: new vhid groups are locked, groups
    /// that lost their vhid are released; a busy lock changes nothing.
    #[test]
    fn daemon_locks_follow_the_config() {
        let dir = tempdir("reload");
        let sock = dir.join("ipfail.sock");
        let cfg = |body: &str| {
            crate::config::parse(
                &format!("[ipfail]\ncontrol_socket = {}\n{body}", sock.display()),
                Path::new("x.cfg"),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let one = cfg("[a]\ninterface = e0\nvhid = 1\nips = 192.0.2.1\n\
                       [b]\ninterface = e0\nips = 192.0.2.2\n");
        let two = cfg("[a]\ninterface = e0\nips = 192.0.2.1\n\
                       [b]\ninterface = e0\nvhid = 2\nips = 192.0.2.2\n\
                       [c]\ninterface = e0\nvhid = 3\nips = 192.0.2.3\n");
        let mut locks = hold_for_daemon(&one).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(locks.groups().collect::<Vec<_>>(), ["a"]);
        assert!(matches!(
            acquire(&dir, "a", Role::Hook, Duration::ZERO),
            Err(LockError::Daemon { .. })
        ));

        // A hook run holds c: the reload changes nothing.
        let hook = acquire(&dir, "c", Role::Hook, LOCK_WAIT).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            locks.update(&two, Duration::from_millis(50)),
            Err(LockError::Timeout { .. })
        ));
        assert_eq!(locks.groups().collect::<Vec<_>>(), ["a"]);
        assert!(
            acquire(&dir, "b", Role::Hook, Duration::ZERO).is_ok(),
            "b was released again"
        );

        drop(hook);
        locks
            .update(&two, Duration::ZERO)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(locks.groups().collect::<Vec<_>>(), ["b", "c"]);
        assert!(
            acquire(&dir, "a", Role::Hook, Duration::ZERO).is_ok(),
            "a is the hook's now"
        );
        drop(locks);
        assert!(acquire(&dir, "b", Role::Hook, Duration::ZERO).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn liveness() {
        assert!(alive(std::process::id()));
        assert!(alive(1));
        assert!(!alive(0));
        assert!(!alive(u32::MAX));
        assert!(!alive(i32::MAX as u32));
    }
}
