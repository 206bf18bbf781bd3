//! The client side of the control socket, blocking (the CLI needs no
//! runtime for one request), and the `demote`, `promote` and `reload`
//! commands built on it.

use super::{Reply, Request, Target, VERSION};
use crate::config;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the CLI waits for the daemon (which answers within 5 s).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A longer reply is not one: refuse rather than buffer without end.
const MAX_REPLY: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("ipfail daemon is not running (no answer on {}: {reason})", .socket.display())]
    NotRunning { socket: PathBuf, reason: String },
    #[error(
        "cannot talk to the ipfail daemon on {}: permission denied \
         (run as root, or as a member of [ipfail] control_group)",
        .socket.display()
    )]
    Permission { socket: PathBuf },
    #[error("talking to the ipfail daemon on {}: {source}", .socket.display())]
    Io { socket: PathBuf, source: io::Error },
    #[error("the ipfail daemon on {} answered something this client does not understand: {why}", .socket.display())]
    BadReply { socket: PathBuf, why: String },
}

impl ClientError {
    /// Nothing listens on the socket: the daemon is not running.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::NotRunning { .. })
    }
}

/// Sends one request and returns the reply (which may be an error reply).
pub fn request(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    let path = || socket.to_path_buf();
    let io = |source: io::Error| ClientError::Io {
        socket: path(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ClientError::NotRunning {
            socket: path(),
            reason: "the socket does not exist".into(),
        },
        io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            socket: path(),
            reason: "connection refused, nothing listens on it".into(),
        },
        io::ErrorKind::PermissionDenied => ClientError::Permission { socket: path() },
        _ => io(e),
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    (&stream).write_all(req.to_line().as_bytes()).map_err(io)?;
    let mut line = Vec::new();
    BufReader::new((&stream).take(MAX_REPLY))
        .read_until(b'\n', &mut line)
        .map_err(io)?;
    let bad = |why: String| ClientError::BadReply {
        socket: path(),
        why,
    };
    if line.is_empty() {
        return Err(bad("it closed the connection without a reply".into()));
    }
    let reply: Reply = serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?;
    if reply.v != VERSION {
        return Err(bad(format!(
            "protocol version {} (this client speaks {VERSION})",
            reply.v
        )));
    }
    Ok(reply)
}

/// `ipfail demote|promote GROUP|--all` and `ipfail reload`: prints what the
/// daemon did; exit status 0 when it did it, 1 otherwise.
pub fn run_command(config_path: &Path, req: &Request) -> u8 {
    let socket = match config::load(config_path) {
        Ok(c) => c.global.control_socket,
        Err(e) if *req == Request::Reload => {
            eprintln!("ipfail: {e}; not reloaded, nothing changed");
            return 1;
        }
        // Demote and promote must work while someone edits the file.
        Err(e) => {
            eprintln!("ipfail: warning: {e}");
            config::control_socket_lenient(config_path)
        }
    };
    match request(&socket, req) {
        Ok(reply) if reply.ok => {
            for line in &reply.messages {
                println!("{line}");
            }
            if reply.messages.is_empty() {
                println!("done");
            }
            0
        }
        Ok(reply) => {
            let what = match req {
                Request::Demote(t) => format!("demote {}", target_text(t)),
                Request::Promote(t) => format!("promote {}", target_text(t)),
                Request::Reload => "reload".into(),
                Request::Status => "status".into(),
                Request::Takeover { group, undo: false } => {
                    format!("takeover {group} --despite-answers")
                }
                Request::Takeover { group, undo: true } => format!("takeover {group} --undo"),
            };
            eprintln!(
                "ipfail: {what}: {}",
                reply.error.as_deref().unwrap_or("the daemon refused")
            );
            1
        }
        Err(e) => {
            eprintln!("ipfail: {e}");
            1
        }
    }
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Group(g) => g.clone(),
        Target::All => "--all".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn serve_once(reply: &'static [u8]) -> (PathBuf, std::thread::JoinHandle<Vec<u8>>) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ipfail-client-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut got = Vec::new();
            let _ = BufReader::new(&s).read_until(b'\n', &mut got);
            let _ = s.write_all(reply);
            got
        });
        (path, t)
    }

    #[test]
    fn talks_one_line_each_way() {
        let (path, t) = serve_once(b"{\"v\":1,\"ok\":true,\"messages\":[\"web: demoted\"]}\n");
        let reply = request(&path, &Request::Demote(Target::Group("web".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply, Reply::ok(vec!["web: demoted".into()]));
        let sent = t.join().unwrap_or_default();
        assert_eq!(sent, b"{\"cmd\":\"demote\",\"group\":\"web\",\"v\":1}\n");
    }

    #[test]
    fn a_missing_or_dead_socket_means_not_running() {
        let e = request(Path::new("/nonexistent/ipfail.sock"), &Request::Status)
            .err()
            .unwrap_or_else(|| panic!("connected to nothing"));
        assert!(e.is_not_running(), "{e}");
        assert!(
            e.to_string()
                .starts_with("ipfail daemon is not running (no answer on /nonexistent/ipfail.sock"),
            "{e}"
        );
        // A socket file nobody listens on any more.
        let dir = std::env::temp_dir().join(format!("ipfail-client-dead-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("dead.sock");
        drop(UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}")));
        let e = request(&path, &Request::Status)
            .err()
            .unwrap_or_else(|| panic!("connected to a dead socket"));
        assert!(e.is_not_running(), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nonsense_from_the_daemon_is_an_error_not_a_panic() {
        for reply in [&b"garbage\n"[..], b"", b"{\"v\":2,\"ok\":true}\n"] {
            let (path, t) = serve_once(reply);
            let e = request(&path, &Request::Status)
                .err()
                .unwrap_or_else(|| panic!("accepted {reply:?}"));
            assert!(matches!(e, ClientError::BadReply { .. }), "{e}");
            let _ = t.join();
        }
    }
}
