//! Per-group locks: one `ipfail hook` run at a time per group, and no hook
//! run at all for a group the daemon is electing; and the one-daemon-per-
//! host lock (docs/safety.md, "Only our own addresses").
//!
//! Every lock is a Linux abstract Unix socket name. Abstract names belong
//! to the network namespace, not to a directory, and the kernel releases
//! them when the holder's socket closes, however the holder ends (even
//! SIGKILL), so nothing is ever stale and two config files with different
//! `control_socket`s still meet on the same names:
//!
//! - `@ipfail/daemon`: held by the running daemon for its whole life
//!   ([`hold_daemon_instance`]); a second daemon in the same namespace is
//!   refused, naming the first one's PID;
//! - `@ipfail/group/<name>`: held by whoever acts for the group: the daemon
//!   for every group with a `vhid` for its whole life ([`hold_for_daemon`]),
//!   a hook run for as long as it runs ([`acquire`]).
//!
//! A holder binds the name and listens; a small thread accepts every
//! connection, writes the holder's role (`daemon` or `hook`) into it and
//! closes it, so none pile up. Whoever finds a name taken (EADDRINUSE)
//! connects to it, reads the holder's PID with SO_PEERCRED (the kernel's
//! word, not the holder's) and its role. A hook run gives up at once on a
//! daemon's group and waits, up to a bound, for anyone else.
//!
//! For people (and older tools), a holder also writes `<group>.lock` in
//! the directory of `control_socket` saying `daemon <pid>` or `hook <pid>`,
//! as the flock(2) files of earlier versions did. That file is a record
//! only, written on a best-effort basis; the lock is the name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};

use crate::config::{Config, Global};

/// How long a hook run (or a starting daemon) waits for another holder.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How often a waiter retries.
const POLL: Duration = Duration::from_millis(10);
/// How long a waiter waits for the holder to say its role.
const ROLE_WAIT: Duration = Duration::from_millis(500);
/// The prefix of every abstract name ipfail holds.
const HOST_SPACE: &str = "ipfail";

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

    fn from_word(word: &str) -> Option<Role> {
        match word {
            "daemon" => Some(Role::Daemon),
            "hook" => Some(Role::Hook),
            _ => None,
        }
    }
}

/// The holder of a lock (`daemon 123` / `hook 456` in the record file).
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

/// Parses the text of a record file; `None` for anything but one holder line.
pub fn parse_holder(text: &str) -> Option<Holder> {
    let mut words = text.split_whitespace();
    let role = Role::from_word(words.next()?)?;
    let pid: u32 = words.next()?.parse().ok()?;
    (pid > 0 && words.next().is_none()).then_some(Holder { role, pid })
}

/// The family of abstract names a set of locks lives in: `ipfail` for the
/// real ones; tests use their own, so that they never meet a real daemon or
/// each other in the shared namespace they run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Space(String);

impl Space {
    pub(crate) fn host() -> Space {
        Space(HOST_SPACE.to_string())
    }

    /// `@ipfail/daemon`, without the `@`.
    fn daemon(&self) -> String {
        format!("{}/daemon", self.0)
    }

    /// `@ipfail/group/<group>`, without the `@`.
    fn group(&self, group: &str) -> String {
        format!("{}/group/{group}", self.0)
    }
}

/// A bound and listening abstract name, with the thread that accepts
/// whatever connects (a waiter reading who holds it), says the role and
/// closes. Dropping it releases the name.
#[derive(Debug)]
struct NameHold {
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    drain: Option<JoinHandle<()>>,
}

impl NameHold {
    /// Takes `name` for `role`; `Err` of kind `AddrInUse` if someone holds it.
    fn take(name: &str, role: Role) -> io::Result<NameHold> {
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        // std binds with SOCK_CLOEXEC and listens: a child process never
        // inherits (and so never outlives us holding) the name.
        let listener = UnixListener::bind_addr(&addr)?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = listener.try_clone()?;
        let flag = stop.clone();
        let drain = std::thread::Builder::new()
            .name("ipfail-lock".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match accepting.accept() {
                        Ok((conn, _)) => {
                            // MSG_NOSIGNAL: a waiter gone already is no SIGPIPE.
                            let flags =
                                socket::MsgFlags::MSG_NOSIGNAL | socket::MsgFlags::MSG_DONTWAIT;
                            let fd = std::os::fd::AsRawFd::as_raw_fd(&conn);
                            let _ = socket::send(fd, role.word().as_bytes(), flags);
                        }
                        // shutdown(2) of the listener (our drop) ends accept.
                        Err(e) if e.kind() == io::ErrorKind::InvalidInput => break,
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })?;
        Ok(NameHold {
            listener,
            stop,
            drain: Some(drain),
        })
    }
}

impl Drop for NameHold {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept(2) of the drain thread (EINVAL on Linux).
        let _ = socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&self.listener),
            socket::Shutdown::Both,
        );
        if let Some(t) = self.drain.take() {
            let _ = t.join();
        }
    }
}

/// Who holds abstract `name`: the PID from SO_PEERCRED of a connection to
/// it, and the role the holder writes into that connection (`None` if it
/// says nothing in time: not a holder of ours). `None` if nobody holds it
/// (or it does not listen). Never waits on a full backlog.
fn holder_of(name: &str) -> Option<(u32, Option<Role>)> {
    use std::io::Read;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .ok()?;
    let addr = UnixAddr::new_abstract(name.as_bytes()).ok()?;
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).ok()?;
    let cred = socket::getsockopt(&fd.as_fd(), sockopt::PeerCredentials).ok()?;
    let pid = u32::try_from(cred.pid()).ok().filter(|&pid| pid > 0)?;
    let mut stream = std::os::unix::net::UnixStream::from(fd);
    let role = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(ROLE_WAIT)))
        .ok()
        .and_then(|()| {
            let mut buf = [0u8; 16];
            let mut n = 0;
            // The holder writes one word and closes: read to EOF.
            while let Ok(k @ 1..) = stream.read(buf.get_mut(n..)?) {
                n += k;
            }
            std::str::from_utf8(buf.get(..n)?)
                .ok()
                .and_then(Role::from_word)
        });
    Some((pid, role))
}

/// The PID of the process holding abstract `name`, if any.
fn holder_pid(name: &str) -> Option<u32> {
    holder_of(name).map(|(pid, _)| pid)
}

/// Who holds group lock `name`. A holder that does not say its role is
/// taken for a hook run: waited for, not deferred to.
fn group_holder(name: &str) -> Option<Holder> {
    let (pid, role) = holder_of(name)?;
    Some(Holder {
        role: role.unwrap_or(Role::Hook),
        pid,
    })
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct GroupLock {
    _hold: NameHold,
    path: PathBuf,
    waited: Duration,
    waited_for: Option<Holder>,
}

impl GroupLock {
    /// The record file naming the holder (see the module comment).
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
        /// The lock's abstract name, shown as `@ipfail/group/<name>`.
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
    #[error("[{0}]: not usable as a lock name")]
    BadName(String),
}

/// Where the record files live: the directory of `control_socket`.
pub fn lock_dir(global: &Global) -> PathBuf {
    global
        .control_socket
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// `<dir>/<group>.lock`, the record file. Group names are validated by the
/// config; this check only keeps a bad name from ever reaching another
/// directory or lock name.
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

/// Takes `group`'s lock for `role` (the record goes to `dir`, created 0755
/// if missing).
///
/// Fails at once with [`LockError::Daemon`] while the daemon holds it;
/// otherwise waits up to `wait` for the holder to finish.
pub fn acquire(
    dir: &Path,
    group: &str,
    role: Role,
    wait: Duration,
) -> Result<GroupLock, LockError> {
    acquire_in(&Space::host(), dir, group, role, wait)
}

pub(crate) fn acquire_in(
    space: &Space,
    dir: &Path,
    group: &str,
    role: Role,
    wait: Duration,
) -> Result<GroupLock, LockError> {
    let path = lock_path(dir, group)?;
    let name = space.group(group);
    let shown = PathBuf::from(format!("@{name}"));
    let start = Instant::now();
    let mut seen = None;
    loop {
        match NameHold::take(&name, role) {
            Ok(hold) => {
                write_record(dir, &path, role);
                return Ok(GroupLock {
                    _hold: hold,
                    waited: if seen.is_some() {
                        start.elapsed()
                    } else {
                        Duration::ZERO
                    },
                    waited_for: seen.flatten(),
                    path,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
            Err(err) => {
                return Err(LockError::Io {
                    path: shown,
                    op: "bind",
                    err,
                })
            }
        }
        let holder = group_holder(&name);
        if let Some(Holder {
            role: Role::Daemon,
            pid,
        }) = holder
        {
            return Err(LockError::Daemon {
                group: group.to_string(),
                pid,
            });
        }
        // `None`: the holder let go between our bind and the connect.
        seen = Some(holder.or(seen.flatten()));
        let waited = start.elapsed();
        if waited >= wait {
            return Err(LockError::Timeout {
                path: shown,
                holder: seen.flatten(),
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
    space: Space,
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
    /// The record directory stays the one of the start, like the control
    /// socket.
    pub fn update(&mut self, config: &Config, wait: Duration) -> Result<(), LockError> {
        let wanted: BTreeSet<&str> = config.carp_groups().map(|g| g.name.as_str()).collect();
        let mut new = BTreeMap::new();
        for name in wanted.iter().filter(|n| !self.held.contains_key(**n)) {
            // On error `new` drops here, releasing what this call took.
            new.insert(
                name.to_string(),
                acquire_in(&self.space, &self.dir, name, Role::Daemon, wait)?,
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
    hold_for_daemon_in(&Space::host(), config)
}

pub(crate) fn hold_for_daemon_in(space: &Space, config: &Config) -> Result<DaemonLocks, LockError> {
    let mut locks = DaemonLocks {
        space: space.clone(),
        dir: lock_dir(&config.global),
        held: BTreeMap::new(),
    };
    locks.update(config, LOCK_WAIT)?;
    Ok(locks)
}

/// Another daemon holds `@ipfail/daemon` in this network namespace.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(
        "another ipfail daemon is running on this host ({}); one daemon per network \
         namespace, whatever control_socket says: stop it first (nothing was touched)",
        .pid.map_or("pid unknown: it does not answer on @ipfail/daemon".to_string(), |p| format!("pid {p}"))
    )]
    Running { pid: Option<u32> },
    #[error("cannot take the daemon lock @ipfail/daemon: {0}")]
    Io(io::Error),
}

/// The daemon lock of this process, once taken: kept until the process
/// ends, when the kernel releases it (after the IPs are removed).
static INSTANCE: OnceLock<NameHold> = OnceLock::new();

/// Takes `@ipfail/daemon` for the rest of this process's life: the first
/// thing a daemon does, so that a second one says so and touches nothing.
/// Taking it again in the same process is a no-op.
pub fn hold_daemon_instance() -> Result<(), InstanceError> {
    if INSTANCE.get().is_some() {
        return Ok(());
    }
    let hold = hold_instance_in(&Space::host())?;
    // Lost a race with another thread of this process: either one is ours.
    let _ = INSTANCE.set(hold);
    Ok(())
}

fn hold_instance_in(space: &Space) -> Result<NameHold, InstanceError> {
    let name = space.daemon();
    match NameHold::take(&name, Role::Daemon) {
        Ok(hold) => Ok(hold),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(InstanceError::Running {
            pid: holder_pid(&name),
        }),
        Err(e) => Err(InstanceError::Io(e)),
    }
}

/// Writes `daemon <pid>` / `hook <pid>` into the record file; failures are
/// ignored (the record is for people; the lock is the abstract name).
fn write_record(dir: &Path, path: &Path, role: Role) {
    let _ = DirBuilder::new().recursive(true).mode(0o755).create(dir);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        // The directory is root's; still, never follow a planted symlink.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    if let Ok(file) = file {
        let line = format!("{} {}\n", role.word(), std::process::id());
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all_at(line.as_bytes(), 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Lock names of this test alone: never a real daemon's, nor another
    /// test's (tests run in the namespace they are started in).
    fn space(name: &str) -> Space {
        Space(format!("ipfail-test-{}-{name}", std::process::id()))
    }

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

    /// The record directory is created 0755 and the file names its holder;
    /// a second hook waits for the first and gives up after the bound.
    #[test]
    fn a_second_hook_waits_and_times_out() {
        let sp = space("wait");
        let acquire = |dir: &Path, group: &str, role, wait| acquire_in(&sp, dir, group, role, wait);
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
        let third = acquire_in(&sp, &dir, "carp2", Role::Hook, Duration::from_secs(5))
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
        let sp = space("daemon");
        let acquire = |dir: &Path, group: &str, role, wait| acquire_in(&sp, dir, group, role, wait);
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
        let lock = acquire_in(&space("stale"), &dir, "web", Role::Hook, Duration::ZERO)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text(&path), format!("hook {}\n", std::process::id()));
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The daemon's set follows reloads: new vhid groups are locked, groups
    /// that lost their vhid are released; a busy lock changes nothing.
    #[test]
    fn daemon_locks_follow_the_config() {
        let sp = space("reload");
        let acquire = |dir: &Path, group: &str, role, wait| acquire_in(&sp, dir, group, role, wait);
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
        let mut locks = hold_for_daemon_in(&sp, &one).unwrap_or_else(|e| panic!("{e}"));
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

    /// The lock is the name in the network namespace, not a file: two
    /// record directories (two control_socket settings) do not make two
    /// locks.
    #[test]
    fn locks_are_per_namespace_not_per_directory() {
        let sp = space("perns");
        let (one, two) = (tempdir("perns-1"), tempdir("perns-2"));
        let held =
            acquire_in(&sp, &one, "web", Role::Hook, LOCK_WAIT).unwrap_or_else(|e| panic!("{e}"));
        match acquire_in(&sp, &two, "web", Role::Hook, Duration::from_millis(50)) {
            Err(LockError::Timeout { path, holder, .. }) => {
                assert_eq!(path, PathBuf::from(format!("@{}", sp.group("web"))));
                assert_eq!(
                    holder,
                    Some(Holder {
                        role: Role::Hook,
                        pid: std::process::id()
                    })
                );
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        drop(held);
        assert!(acquire_in(&sp, &two, "web", Role::Hook, Duration::ZERO).is_ok());
        let _ = std::fs::remove_dir_all(&one);
        let _ = std::fs::remove_dir_all(&two);
    }

    /// One daemon per namespace: the second is told the first's PID; once
    /// the first lets go, the name is free.
    #[test]
    fn a_second_daemon_is_refused_naming_the_first() {
        let sp = space("instance");
        let first = hold_instance_in(&sp).unwrap_or_else(|e| panic!("{e}"));
        match hold_instance_in(&sp) {
            Err(e @ InstanceError::Running { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(&format!(
                        "another ipfail daemon is running on this host (pid {});",
                        std::process::id()
                    )),
                    "{msg}"
                );
            }
            other => panic!("expected the running error, got {other:?}"),
        }
        drop(first);
        assert!(hold_instance_in(&sp).is_ok(), "released on drop");
    }

    /// Every waiter connects to read the holder's PID; the holder accepts
    /// and closes those connections, so however many come, the next one
    /// still gets an answer (an unaccepted backlog would fill at ~128).
    #[test]
    fn waiters_do_not_fill_the_holders_backlog() {
        let sp = space("backlog");
        let name = sp.group("web");
        let _held = NameHold::take(&name, Role::Hook).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..600 {
            assert_eq!(
                holder_of(&name),
                Some((std::process::id(), Some(Role::Hook))),
                "connection {i}"
            );
            if i % 100 == 99 {
                // Let the accepting thread catch up now and then.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert_eq!(holder_pid(&sp.group("nobody")), None);
    }
}
