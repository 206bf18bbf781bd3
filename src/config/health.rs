//! Health checks and state-change scripts of a group (issue 8): what the
//! configuration says; `crate::health` runs the checks.

use std::time::Duration;

/// `check_interval` default: seconds between runs of each check.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// `check_timeout` default: a run slower than this is a failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// `check_fall` default: consecutive failures before the group gives way.
pub const DEFAULT_FALL: u32 = 3;
/// `check_rise` default: consecutive successes before it may take the
/// group back.
pub const DEFAULT_RISE: u32 = 2;

/// The checks of one group and how they are judged. A group is healthy
/// when every check is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub checks: Vec<Check>,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
}

/// `host:port`, or `[host]:port` for an IPv6 address (hosts are stored
/// without brackets, ready for `(host, port)` name resolution).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One line of `check`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Check {
    pub kind: CheckKind,
    /// Line of the file it is written on.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// `tcp HOST:PORT`: a TCP connect succeeds. `host` is an IP address
    /// (IPv6 without brackets) or a host name.
    Tcp { host: String, port: u16 },
    /// `http http://HOST[:PORT]/PATH`: a GET is answered 2xx or 3xx.
    Http {
        host: String,
        port: u16,
        path: String,
    },
    /// `exec PATH [ARGS]`: exits 0 (no shell; killed with its process
    /// group at the timeout).
    Exec { argv: Vec<String> },
}

impl CheckKind {
    /// As written in the file, for logs and `ipfail status`.
    pub fn describe(&self) -> String {
        match self {
            CheckKind::Tcp { host, port } => format!("tcp {}", host_port(host, *port)),
            CheckKind::Http { host, port, path } => {
                format!("http http://{}{path}", host_port(host, *port))
            }
            CheckKind::Exec { argv } => format!("exec {}", argv.join(" ")),
        }
    }
}
