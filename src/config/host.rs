//! A valid configuration checked against this host: what `ipfail check`
//! reports and what stops `ipfail daemon` before it binds or touches
//! anything (docs/safety.md, "Only our own addresses").
//!
//! - every `interface` and `carp_interface` exists here;
//! - `state_dir` is a directory that can be written, or can be created
//!   (it is created at the first `ipfail demote`);
//! - no address of `ips` (any section) is on any interface of this host
//!   without ipfail's mark (IFA_PROTO [`ADDR_PROTO_IPFAIL`]). Such an address
//!   is the host's own, or a floating IP another tool added; either way it
//!   is not ipfail's to remove, so the file is refused and the address is
//!   left alone.
//!
//! - the program of every `exec` check and of `notify` is an executable
//!   file here.
//!
//! Reading the host ([`HostView::read`]) is separate from judging it
//! ([`check_host`]), so the rules are tested without a network.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::health::CheckKind;
use super::{Config, GLOBAL_SECTION};
use crate::sys::{AddrInfo, LinkInfo, Netlink, SysError, ADDR_PROTO_IPFAIL};

/// At most this many interface names are listed in a message.
const LIST_MAX: usize = 12;

/// The interfaces and addresses of this host (this network namespace).
#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub links: Vec<LinkInfo>,
    pub addrs: Vec<AddrInfo>,
}

impl HostView {
    /// Dumps links and addresses (no privilege needed).
    pub async fn read(netlink: &Netlink) -> Result<HostView, SysError> {
        Ok(HostView {
            links: netlink.links().await?,
            addrs: netlink.all_addr_infos().await?,
        })
    }

    /// [`HostView::read`] for callers without a runtime (`ipfail check`).
    pub fn read_now() -> Result<HostView, SysError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| SysError::Io {
                op: "starting the async runtime",
                source,
            })?;
        rt.block_on(async {
            let netlink = Netlink::new()?;
            HostView::read(&netlink).await
        })
    }

    fn link_name(&self, index: u32) -> String {
        self.links
            .iter()
            .find(|l| l.index == index)
            .map_or_else(|| format!("interface #{index}"), |l| l.name.clone())
    }
}

/// One way the file does not fit this host. Displays as `PATH:LINE: what`
/// (`PATH: what` for a default that no line sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProblem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub issue: HostIssue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostIssue {
    /// `interface` or `carp_interface` names no interface of this host.
    NoInterface {
        key: &'static str,
        section: String,
        name: String,
        /// Whether the daemon elects the group (it has a `vhid`).
        elected: bool,
        /// The interfaces this host has (at most [`LIST_MAX`]).
        here: String,
    },
    /// `state_dir` cannot hold the daemon's state.
    StateDir {
        dir: PathBuf,
        /// Set in the file (else the default applies).
        set: bool,
        why: String,
    },
    /// The program of an `exec` check or of `notify` cannot be run.
    Program {
        key: &'static str,
        section: String,
        program: PathBuf,
        why: String,
    },
    /// An address of `ips` is on this host and ipfail did not add it.
    HostAddress {
        addr: IpAddr,
        prefix: u8,
        section: String,
        iface: String,
    },
}

impl HostProblem {
    /// Whether `ipfail daemon` refuses to start (or a reload is refused) on
    /// this problem. A missing interface of a section without `vhid` is
    /// the hook's business (it may be hot-plugged later): a warning there.
    pub fn stops_daemon(&self) -> bool {
        !matches!(self.issue, HostIssue::NoInterface { elected: false, .. })
    }
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.issue),
            None => write!(f, "{}: {}", self.path.display(), self.issue),
        }
    }
}

impl fmt::Display for HostIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostIssue::NoInterface {
                key,
                section,
                name,
                here,
                ..
            } => write!(
                f,
                "key '{key}' in [{section}]: no interface {name} on this host \
                 (interfaces here: {here})"
            ),
            HostIssue::StateDir { dir, set, why } => {
                if *set {
                    write!(f, "key 'state_dir' in [{GLOBAL_SECTION}]: ")?;
                } else {
                    write!(
                        f,
                        "state_dir (the default; set it in [{GLOBAL_SECTION}] to use another): "
                    )?;
                }
                write!(f, "{}: {why}", dir.display())
            }
            HostIssue::Program {
                key,
                section,
                program,
                why,
            } => write!(f, "key '{key}' in [{section}]: {} {why}", program.display()),
            HostIssue::HostAddress {
                addr,
                prefix,
                section,
                iface,
            } => write!(
                f,
                "key 'ips' in [{section}]: {addr} is an address of this host (on {iface}) \
                 that ipfail did not add (it lacks the IFA_PROTO {ADDR_PROTO_IPFAIL} mark); \
                 ipfail never removes such an address, so it is left untouched. If it is the \
                 host's own address, remove it from the file; if it is a floating IP left \
                 by another tool, remove it with 'ip addr del {addr}/{prefix} dev {iface}'"
            ),
        }
    }
}

/// Every problem of `config` on the host `view` shows, in file order
/// (then `state_dir`). Reads the file system for `state_dir` only.
pub fn check_host(config: &Config, view: &HostView) -> Vec<HostProblem> {
    let mut out = Vec::new();
    let problem = |line, issue| HostProblem {
        path: config.path.clone(),
        line,
        issue,
    };
    let names: Vec<&str> = view.links.iter().map(|l| l.name.as_str()).collect();
    let here = {
        let mut list: Vec<&str> = names.iter().copied().take(LIST_MAX).collect();
        if names.len() > LIST_MAX {
            list.push("...");
        }
        if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        }
    };
    // Addresses without ipfail's mark, by address: (prefix, interface).
    let mut fixed: BTreeMap<IpAddr, Vec<&AddrInfo>> = BTreeMap::new();
    for a in view.addrs.iter().filter(|a| !a.is_ours()) {
        fixed.entry(a.addr).or_default().push(a);
    }
    for g in &config.groups {
        let lines = config.lines_of(&g.name);
        let elected = g.carp.is_some();
        let mut ifaces = vec![(
            "interface",
            g.interface.as_str(),
            lines.map_or(g.line, |l| l.interface),
        )];
        if let Some(carp) = &g.carp {
            if carp.carp_interface != g.interface {
                let line = lines.and_then(|l| l.carp_interface).unwrap_or(g.line);
                ifaces.push(("carp_interface", carp.carp_interface.as_str(), line));
            }
        }
        for (key, name, line) in ifaces {
            if !names.contains(&name) {
                let issue = HostIssue::NoInterface {
                    key,
                    section: g.name.clone(),
                    name: name.to_string(),
                    elected,
                    here: here.clone(),
                };
                out.push(problem(Some(line), issue));
            }
        }
        let mut programs: Vec<(&'static str, &str, usize)> = Vec::new();
        if let Some(carp) = &g.carp {
            for check in carp.health.iter().flat_map(|h| &h.checks) {
                if let CheckKind::Exec { argv } = &check.kind {
                    if let Some(program) = argv.first() {
                        programs.push(("check", program, check.line));
                    }
                }
            }
            if let Some(program) = carp.notify.as_ref().and_then(|argv| argv.first()) {
                let line = lines.and_then(|l| l.notify).unwrap_or(g.line);
                programs.push(("notify", program, line));
            }
        }
        for (key, program, line) in programs {
            if let Some(why) = program_problem(Path::new(program)) {
                let issue = HostIssue::Program {
                    key,
                    section: g.name.clone(),
                    program: PathBuf::from(program),
                    why,
                };
                out.push(problem(Some(line), issue));
            }
        }
        for (i, net) in g.ips.iter().enumerate() {
            let line = lines.and_then(|l| l.ips.get(i).copied()).unwrap_or(g.line);
            for a in fixed.get(&net.addr).into_iter().flatten() {
                let issue = HostIssue::HostAddress {
                    addr: a.addr,
                    prefix: a.prefix,
                    section: g.name.clone(),
                    iface: view.link_name(a.ifindex),
                };
                out.push(problem(Some(line), issue));
            }
        }
    }
    let dir = &config.global.state_dir;
    if let Some(why) = state_dir_problem(dir) {
        let issue = HostIssue::StateDir {
            dir: dir.clone(),
            set: config.lines.state_dir.is_some(),
            why,
        };
        out.push(problem(config.lines.state_dir, issue));
    }
    out
}

/// Why `program` cannot be run, if it cannot: it must be a file (a link
/// to one is fine) with an execute bit.
fn program_problem(program: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(program) {
        Ok(m) if !m.is_file() => Some("is not a regular file".to_string()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
            "is not executable (mode {:04o}; chmod +x it)",
            m.permissions().mode() & 0o7777
        )),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("does not exist".to_string()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => None,
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

/// Why `dir` cannot be the state directory, if it cannot. A missing
/// directory is fine if it can be created (the daemon creates it at the
/// first `ipfail demote`): its nearest existing ancestor must be a
/// writable directory. Permission is judged for root, who runs the daemon:
/// an unprivileged `ipfail check` reports a read-only file system, not
/// that it may not write there itself.
fn state_dir_problem(dir: &Path) -> Option<String> {
    const WHAT: &str = "the daemon keeps the list of demoted groups there";
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Some(format!("exists and is not a directory ({WHAT})")),
        Ok(_) => writable(dir)
            .err()
            .map(|e| format!("is not writable: {e} ({WHAT})")),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            let mut up = dir.parent();
            while let Some(a) = up {
                match std::fs::metadata(a) {
                    Ok(m) if !m.is_dir() => {
                        return Some(format!(
                            "cannot be created: {} is not a directory",
                            a.display()
                        ))
                    }
                    Ok(_) => {
                        return writable(a).err().map(|e| {
                            format!(
                                "does not exist and cannot be created: {} is not writable: {e}",
                                a.display()
                            )
                        })
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                        ) =>
                    {
                        up = a.parent();
                    }
                    Err(e) => return Some(format!("cannot be created: {}: {e}", a.display())),
                }
            }
            None
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => None,
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

/// access(2) W_OK|X_OK, except that EACCES for a user other than root is
/// no finding (root, who runs the daemon, is not bound by permissions).
fn writable(dir: &Path) -> Result<(), io::Error> {
    use nix::unistd::{access, AccessFlags};
    match access(dir, AccessFlags::W_OK | AccessFlags::X_OK) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EACCES) if !is_root() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The daemon's verdict on a file: the problems that stop it.
#[derive(Debug, thiserror::Error)]
pub enum HostRefusal {
    #[error("{}", join(.0))]
    Problems(Vec<HostProblem>),
    #[error("cannot read this host's interfaces and addresses: {0}")]
    Read(#[from] SysError),
}

fn join(problems: &[HostProblem]) -> String {
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// For `ipfail daemon` at start and for a reload: `Err` with every problem
/// that stops the daemon; the others are logged as warnings.
pub async fn check_for_daemon(config: &Config, netlink: &Netlink) -> Result<(), HostRefusal> {
    let view = HostView::read(netlink).await?;
    let (stop, warn): (Vec<_>, Vec<_>) = check_host(config, &view)
        .into_iter()
        .partition(HostProblem::stops_daemon);
    for p in &warn {
        tracing::warn!("{p} (a section without vhid: the daemon does not use it)");
    }
    if stop.is_empty() {
        Ok(())
    } else {
        Err(HostRefusal::Problems(stop))
    }
}

/// [`check_for_daemon`] with a netlink socket of its own: the first thing
/// `ipfail daemon` does, before it binds or touches anything.
pub async fn check_before_start(config: &Config) -> Result<(), HostRefusal> {
    let netlink = Netlink::new()?;
    check_for_daemon(config, &netlink).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn link(index: u32, name: &str) -> LinkInfo {
        LinkInfo {
            index,
            name: name.into(),
            mac: None,
            up: true,
            running: true,
        }
    }

    fn addr(ifindex: u32, text: &str, prefix: u8, proto: u8) -> AddrInfo {
        AddrInfo {
            ifindex,
            addr: text.parse().unwrap_or_else(|e| panic!("{e}")),
            prefix,
            secondary: false,
            proto,
            valid_left: None,
        }
    }

    fn view() -> HostView {
        HostView {
            links: vec![link(1, "lo"), link(2, "eth0")],
            addrs: vec![
                addr(1, "127.0.0.1", 8, 0),
                addr(2, "192.0.2.1", 24, 0),
                addr(2, "2001:db8::1", 64, 0),
                // A floating IP ipfail added (a crashed daemon's, say).
                addr(2, "203.0.113.10", 32, ADDR_PROTO_IPFAIL),
            ],
        }
    }

    fn problems(text: &str) -> Vec<String> {
        let cfg = parse(text, Path::new("h.cfg")).unwrap_or_else(|e| panic!("{e}"));
        check_host(&cfg, &view())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn state_dir() -> String {
        let dir = std::env::temp_dir().join(format!("ipfail-host-{}", std::process::id()));
        format!("[ipfail]\nstate_dir = {}\n", dir.display())
    }

    #[test]
    fn a_file_that_fits_has_no_problem() {
        let text = format!(
            "{}[web]\ninterface = eth0\nvhid = 1\nips = 203.0.113.10 203.0.113.11\n\
             [hook]\ninterface = lo\nips = 2001:db8::5\n",
            state_dir()
        );
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[test]
    fn missing_interfaces_name_their_line_and_key() {
        let text = format!(
            "{}[web]\ninterface = eth9\nvhid = 1\nips = 203.0.113.10\n\
             [x]\ninterface = eth0\nvhid = 2\ncarp_interface = eth7\nips = 203.0.113.11\n\
             [hook]\ninterface = eth8\nips = 203.0.113.12\n",
            state_dir()
        );
        let cfg = parse(&text, Path::new("h.cfg")).unwrap_or_else(|e| panic!("{e}"));
        let found = check_host(&cfg, &view());
        let texts: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "h.cfg:4: key 'interface' in [web]: no interface eth9 on this host \
                 (interfaces here: lo, eth0)",
                "h.cfg:10: key 'carp_interface' in [x]: no interface eth7 on this host \
                 (interfaces here: lo, eth0)",
                "h.cfg:13: key 'interface' in [hook]: no interface eth8 on this host \
                 (interfaces here: lo, eth0)",
            ]
        );
        let stops: Vec<bool> = found.iter().map(HostProblem::stops_daemon).collect();
        assert_eq!(stops, [true, true, false], "a hook-only section only warns");
    }

    #[test]
    fn an_unmarked_address_of_this_host_is_refused_a_marked_one_is_not() {
        let text = format!(
            "{}[web]\ninterface = eth0\nvhid = 1\nips : 203.0.113.10\n      192.0.2.1/24\n\
             [hook]\ninterface = eth0\nips = 2001:db8::1\n",
            state_dir()
        );
        let p = problems(&text);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with(
                "h.cfg:7: key 'ips' in [web]: 192.0.2.1 is an address of this host (on eth0) \
                 that ipfail did not add"
            ),
            "{}",
            p[0]
        );
        assert!(
            p[0].ends_with("remove it with 'ip addr del 192.0.2.1/24 dev eth0'"),
            "{}",
            p[0]
        );
        assert!(p[0].contains("remove it from the file"), "{}", p[0]);
        // Any section, IPv6 too; the prefix in the file does not matter.
        assert!(
            p[1].starts_with("h.cfg:10: key 'ips' in [hook]: 2001:db8::1 is an address"),
            "{}",
            p[1]
        );
        assert!(p[1].ends_with("'ip addr del 2001:db8::1/64 dev eth0'"));
    }

    #[test]
    fn exec_checks_and_notify_must_be_executable_files() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("ipfail-host-prog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("{e}"));
        let script = base.join("ok.sh");
        let plain = base.join("plain.sh");
        for (file, mode) in [(&script, 0o755), (&plain, 0o644)] {
            std::fs::write(file, "#!/bin/sh\nexit 0\n").unwrap_or_else(|e| panic!("{e}"));
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let missing = base.join("missing");
        let text = format!(
            "{}[web]\ninterface = eth0\nvhid = 1\nips = 203.0.113.10\n\
             check : exec {} --quick\n  tcp 127.0.0.1:80\n  exec {}\n  exec {}\n\
             notify = {} up\n\
             [mail]\ninterface = eth0\nvhid = 2\nips = 203.0.113.20\n\
             check = exec {}\nnotify = {}\n",
            state_dir(),
            script.display(),
            missing.display(),
            plain.display(),
            base.display(),
            script.display(),
            script.display(),
        );
        let cfg = parse(&text, Path::new("h.cfg")).unwrap_or_else(|e| panic!("{e}"));
        let found = check_host(&cfg, &view());
        let texts: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                format!(
                    "h.cfg:9: key 'check' in [web]: {} does not exist",
                    missing.display()
                ),
                format!(
                    "h.cfg:10: key 'check' in [web]: {} is not executable (mode 0644; chmod +x it)",
                    plain.display()
                ),
                format!(
                    "h.cfg:11: key 'notify' in [web]: {} is not a regular file",
                    base.display()
                ),
            ]
        );
        assert!(found.iter().all(HostProblem::stops_daemon));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn state_dir_must_be_a_directory_that_can_be_written_or_created() {
        let base = std::env::temp_dir().join(format!("ipfail-host-sd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("{e}"));
        let file = base.join("file");
        std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
        let cfg = |dir: &Path| {
            format!(
                "[ipfail]\nstate_dir = {}\n[web]\ninterface = eth0\nips = 203.0.113.10\n",
                dir.display()
            )
        };
        assert_eq!(problems(&cfg(&base)), Vec::<String>::new());
        assert_eq!(
            problems(&cfg(&base.join("new/deeper"))),
            Vec::<String>::new(),
            "created when needed"
        );
        assert_eq!(
            problems(&cfg(&file)),
            [format!(
                "h.cfg:2: key 'state_dir' in [ipfail]: {}: exists and is not a directory \
                 (the daemon keeps the list of demoted groups there)",
                file.display()
            )]
        );
        assert_eq!(
            problems(&cfg(&file.join("sub"))),
            [format!(
                "h.cfg:2: key 'state_dir' in [ipfail]: {}: cannot be created: {} is not a \
                 directory",
                file.join("sub").display(),
                file.display()
            )]
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
