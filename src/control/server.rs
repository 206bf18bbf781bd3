//! The daemon's control socket, served on a thread of its own with its own
//! small runtime, so that no client (slow, stuck, hostile or many) can
//! delay the election loop. The loop publishes snapshots into a `watch`
//! (`status` reads the newest) and takes commands from a channel with a
//! oneshot for the answer; it never waits for this thread.
//!
//! Each connection: one request line within [`CLIENT_DEADLINE`], one reply
//! line, close. At most [`MAX_CLIENTS`] at once; more are answered "busy"
//! and closed. SIGHUP (a reload) is handled here too: reading the file is
//! I/O the loop must not do.

use super::{ProtocolError, Reply, Request, Target, MAX_LINE};
use crate::config::{self, Config, Global};
use crate::daemon::snapshot::Snapshot;
use crate::state;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch, Mutex, Semaphore};
use tracing::{error, info, warn};

/// Connections served at once.
pub const MAX_CLIENTS: usize = 32;
/// A client has this long to send its request; the reply must be ready by
/// then too.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// Extra time to write the reply (or the error saying time is up).
const WRITE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another ipfail daemon is running on {}: stop it first", .0.display())]
    Running(PathBuf),
    /// One daemon per network namespace, whatever `control_socket` says.
    #[error(transparent)]
    Instance(#[from] crate::lockfile::InstanceError),
    #[error("{}: exists and is not a socket; remove it or set control_socket", .0.display())]
    NotSocket(PathBuf),
    #[error("control socket {}: {op}: {source}", .path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("control_group '{0}' in [ipfail]: no such group")]
    NoGroup(String),
    #[error("cannot start the control socket thread: {0}")]
    Thread(io::Error),
}

/// What the control thread asks of the election loop.
pub(crate) enum LoopCmd {
    /// Demote (or promote) these groups; the reply has one line per group.
    SetDemoted {
        groups: Vec<String>,
        demoted: bool,
        reply: oneshot::Sender<Vec<String>>,
    },
    /// Apply this configuration; the reply says what changed, or why nothing did.
    Reload {
        config: Box<Config>,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Force (or undo) a takeover of the group's IPs; the IP task replies.
    Takeover {
        group: String,
        undo: bool,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// The bound socket, removed again when dropped (if it is still ours).
pub(crate) struct Bound {
    listener: StdListener,
    file: SocketFile,
}

struct SocketFile {
    path: PathBuf,
    /// (device, inode) of the socket we created: never remove another's.
    id: Option<(u64, u64)>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .map(|m| Some((m.dev(), m.ino())) == self.id)
            .unwrap_or(false);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Takes the one-daemon-per-namespace lock `@ipfail/daemon` (a second
/// daemon is refused, naming the first's PID, before anything is created
/// or touched; docs/safety.md, "Only our own addresses"), then creates the
/// control socket: parent directory (0755) if missing, a stale socket file
/// (nobody answers on it) replaced, mode 0600, or 0660 owned by
/// `control_group`. Refuses when a live daemon answers on it.
pub(crate) fn bind(global: &Global) -> Result<Bound, ControlError> {
    crate::lockfile::hold_daemon_instance()?;
    let path = global.control_socket.as_path();
    let io_err = |op: &'static str| {
        move |source| ControlError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io_err("creating its directory"))?;
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match StdStream::connect(path) {
            Ok(_) => return Err(ControlError::Running(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                warn!(socket = %path.display(), "removing a stale control socket (nobody answers on it)");
                fs::remove_file(path).map_err(io_err("removing the stale socket"))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("checking for a running daemon")(e)),
        },
        Ok(_) => return Err(ControlError::NotSocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("checking the path")(e)),
    }
    let gid = match &global.control_group {
        Some(name) => Some(resolve_group(name)?),
        None => None,
    };
    // Created 0600 from the start: no moment in which others may connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = StdListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(io_err("binding"))?;
    let id = fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let file = SocketFile {
        path: path.to_path_buf(),
        id,
    };
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| {
            let op = if e == nix::errno::Errno::EPERM {
                "setting its group to control_group (needs CAP_CHOWN, or a daemon user in that group: SupplementaryGroups= in the unit)"
            } else {
                "setting its group to control_group"
            };
            io_err(op)(e.into())
        })?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o660))
            .map_err(io_err("setting its mode"))?;
    }
    listener
        .set_nonblocking(true)
        .map_err(io_err("making it nonblocking"))?;
    Ok(Bound { listener, file })
}

fn resolve_group(name: &str) -> Result<nix::unistd::Gid, ControlError> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        _ => Err(ControlError::NoGroup(name.to_string())),
    }
}

/// What the control thread needs from the daemon.
pub(crate) struct Ctx {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub cmds: mpsc::Sender<LoopCmd>,
    /// The configuration file a reload reads.
    pub config: PathBuf,
    /// `metrics_listen`, bound at start.
    pub metrics: Option<std::net::TcpListener>,
}

struct Shared {
    ctx: Ctx,
    /// Requests by command, for the metrics.
    requests: crate::metrics::ControlRequests,
    /// Demote, promote and reload one at a time (the demotion file is
    /// read, changed and written).
    ops: Mutex<()>,
}

/// The running control thread.
pub(crate) struct ControlThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _file: SocketFile,
}

impl ControlThread {
    /// Stops serving, waits for the thread and removes the socket file.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `bound` on a new thread until [`ControlThread::stop`].
pub(crate) fn spawn(bound: Bound, ctx: Ctx) -> Result<ControlThread, ControlError> {
    let Bound { listener, file } = bound;
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("ipfail-control".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    error!("cannot start the control socket runtime: {e}");
                    return;
                }
            };
            rt.block_on(serve(listener, ctx, stop_rx));
        })
        .map_err(ControlError::Thread)?;
    Ok(ControlThread {
        stop: Some(stop_tx),
        thread: Some(thread),
        _file: file,
    })
}

async fn serve(listener: StdListener, mut ctx: Ctx, mut stop: oneshot::Receiver<()>) {
    let requests = crate::metrics::ControlRequests::default();
    if let Some(m) = ctx.metrics.take() {
        tokio::spawn(super::metrics_http::serve(
            m,
            ctx.snapshot.clone(),
            requests.clone(),
        ));
    }
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            error!("control socket: {e}; ipfail status and commands are unavailable");
            return;
        }
    };
    let shared = Arc::new(Shared {
        ctx,
        requests,
        ops: Mutex::new(()),
    });
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| warn!("cannot handle SIGHUP ({e}); use `ipfail reload`"))
        .ok();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            Some(()) = next_hup(&mut hup) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    info!("SIGHUP: reloading the configuration");
                    // The loop logs what changed; errors are logged in reload().
                    let _ = reload(&shared).await;
                });
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            client(stream, &shared).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        // Best effort, never waits: the client may not read.
                        let busy = Reply::error(format!(
                            "busy: {MAX_CLIENTS} control connections are open; try again"
                        ));
                        let _ = stream.try_write(busy.to_line().as_bytes());
                    }
                },
                Err(e) => {
                    // EMFILE and friends: do not spin.
                    warn!("control socket: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn next_hup(hup: &mut Option<Signal>) -> Option<()> {
    match hup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// One connection: read a request, answer, close. Bounded in time.
async fn client(stream: UnixStream, shared: &Shared) {
    let deadline = tokio::time::Instant::now() + CLIENT_DEADLINE;
    let (rd, mut wr) = stream.into_split();
    let reply = match tokio::time::timeout_at(deadline, read_request(rd)).await {
        Err(_) => Reply::error(format!(
            "no complete request line within {} s",
            CLIENT_DEADLINE.as_secs()
        )),
        Ok(Err(e)) => Reply::error(e),
        Ok(Ok(line)) => match Request::parse(&line) {
            Err(e) => {
                count(shared, "invalid");
                Reply::error(e.to_string())
            }
            Ok(req) => tokio::time::timeout_at(deadline, handle(req, shared))
                .await
                .unwrap_or_else(|_| {
                    Reply::error(format!(
                        "no answer within {} s (the command may still complete)",
                        CLIENT_DEADLINE.as_secs()
                    ))
                }),
        },
    };
    let until = deadline.max(tokio::time::Instant::now()) + WRITE_GRACE;
    let _ = tokio::time::timeout_at(until, async {
        wr.write_all(reply.to_line().as_bytes()).await?;
        wr.shutdown().await
    })
    .await;
}

/// One line, at most [`MAX_LINE`] bytes; a last line without a newline
/// counts (the client may have shut down its side).
async fn read_request(rd: tokio::net::unix::OwnedReadHalf) -> Result<Vec<u8>, String> {
    let mut reader = BufReader::new(rd.take(MAX_LINE as u64 + 1));
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("reading the request: {e}"))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > MAX_LINE {
        return Err(ProtocolError::TooLong.to_string());
    }
    Ok(line)
}

fn count(shared: &Shared, cmd: &str) {
    shared
        .requests
        .get_or_create(&vec![("cmd".to_string(), cmd.to_string())])
        .inc();
}

async fn handle(req: Request, shared: &Shared) -> Reply {
    count(
        shared,
        match &req {
            Request::Status => "status",
            Request::Demote(_) => "demote",
            Request::Promote(_) => "promote",
            Request::Reload => "reload",
            Request::Takeover { .. } => "takeover",
        },
    );
    match req {
        Request::Status => {
            let snap = shared.ctx.snapshot.borrow().clone();
            Reply::status(snap.to_status(Instant::now(), SystemTime::now()))
        }
        Request::Demote(target) => set_demoted(shared, target, true).await,
        Request::Promote(target) => set_demoted(shared, target, false).await,
        Request::Reload => match reload(shared).await {
            Ok(lines) => Reply::ok(lines),
            Err(e) => Reply::error(e),
        },
        Request::Takeover { group, undo } => takeover(shared, group, undo).await,
    }
}

/// Hands a forced takeover (or its undo) to the loop, which hands it to
/// the group's IP task; the reply is that task's.
async fn takeover(shared: &Shared, group: String, undo: bool) -> Reply {
    let (reply, answer) = oneshot::channel();
    let cmd = LoopCmd::Takeover { group, undo, reply };
    if shared.ctx.cmds.send(cmd).await.is_err() {
        return Reply::error("the election loop is not running");
    }
    match answer.await {
        Ok(Ok(line)) => Reply::ok(vec![line]),
        Ok(Err(e)) => Reply::error(e),
        Err(_) => Reply::error("the group's IP task stopped before answering"),
    }
}

/// Checks the names, persists the new list (a demotion that would not
/// survive a restart is refused), then has the loop apply it.
async fn set_demoted(shared: &Shared, target: Target, on: bool) -> Reply {
    let _one_at_a_time = shared.ops.lock().await;
    let snap = shared.ctx.snapshot.borrow().clone();
    let names = match &target {
        Target::All => snap.carp_group_names(),
        Target::Group(name) => match snap.sections.iter().find(|(n, _)| n == name) {
            Some((_, true)) => vec![name.clone()],
            Some((_, false)) => {
                return Reply::error(format!(
                    "[{name}] has no vhid: the daemon runs no election for it"
                ))
            }
            None => {
                return Reply::error(format!(
                    "no group [{name}] in {} (groups: {})",
                    snap.config.display(),
                    snap.carp_group_names().join(", ")
                ))
            }
        },
    };
    let dir = snap.state_dir.as_path();
    let persisted = state::load_demoted(dir).and_then(|mut set| {
        match (on, &target) {
            (true, _) => set.extend(names.iter().cloned()),
            // promote --all also forgets groups that are not running.
            (false, Target::All) => set.clear(),
            (false, Target::Group(_)) => {
                for n in &names {
                    set.remove(n);
                }
            }
        }
        state::save_demoted(dir, &set)
    });
    if let Err(e) = persisted {
        error!("{e}");
        return Reply::error(format!("{e}; nothing changed"));
    }
    let (reply, answer) = oneshot::channel();
    let cmd = LoopCmd::SetDemoted {
        groups: names,
        demoted: on,
        reply,
    };
    if shared.ctx.cmds.send(cmd).await.is_err() {
        return Reply::error("the election loop is not running");
    }
    match answer.await {
        Ok(lines) => Reply::ok(lines),
        Err(_) => Reply::error("the election loop stopped before answering"),
    }
}

/// Reads and validates the file, then has the loop apply it.
async fn reload(shared: &Shared) -> Result<Vec<String>, String> {
    let _one_at_a_time = shared.ops.lock().await;
    let config = config::load(&shared.ctx.config).map_err(|e| {
        error!("reload refused, nothing changed: {e}");
        format!("{e}; nothing changed")
    })?;
    let (reply, answer) = oneshot::channel();
    let cmd = LoopCmd::Reload {
        config: Box::new(config),
        reply,
    };
    if shared.ctx.cmds.send(cmd).await.is_err() {
        return Err("the election loop is not running".into());
    }
    answer
        .await
        .unwrap_or_else(|_| Err("the election loop stopped before answering".into()))
}
