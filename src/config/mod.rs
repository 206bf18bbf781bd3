//! Configuration: one INI file (ConfigParser dialect) turned into a
//! validated [`Config`]. Every error names the file and the line.
//!
//! - [`ini`] reads the text into sections and keys with line numbers.
//! - `validate` turns those into [`Config`] and checks cross-group rules.
//! - `describe` renders the table `ipfail check` prints.
//! - [`host`] checks a valid file against this host (interfaces, `state_dir`,
//!   the host's own addresses), for `ipfail check` and the daemon.

mod describe;
pub mod health;
#[cfg(target_os = "linux")]
pub mod host;
pub mod ini;
mod validate;

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The section holding process-wide settings.
pub const GLOBAL_SECTION: &str = "ipfail";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ipfail/ipfail.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ipfail";
/// Longest CARP `pass`: FreeBSD keeps the key in a 20-byte buffer that ends
/// with a NUL (`CARP_KEY_LEN` in netinet/ip_carp.c, `ifconfig ... pass`).
pub const PASS_MAX_LEN: usize = 19;
/// A larger file is refused before parsing (it is not a config file, and
/// reading a device or FIFO must not exhaust memory).
pub const MAX_FILE_SIZE: u64 = 4 << 20;

/// A validated configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
    pub global: Global,
    /// Group sections in file order.
    pub groups: Vec<Group>,
    /// Where the keys the host checks look at are written ([`host`]).
    pub lines: KeyLines,
}

/// The lines of the keys that are checked against the host, so that a
/// problem found there names the line that causes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLines {
    /// `state_dir` in `[ipfail]`; `None`: the default applies.
    pub state_dir: Option<usize>,
    /// Per group section name.
    pub groups: std::collections::BTreeMap<String, GroupLines>,
}

/// Lines of one group's keys (inherited keys: the line in `[DEFAULT]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupLines {
    pub interface: usize,
    /// `None`: `carp_interface` is not set (it is `interface`).
    pub carp_interface: Option<usize>,
    /// The line of each address of `ips`, in the order of `Group::ips`.
    pub ips: Vec<usize>,
    /// `notify`, if the group runs CARP and sets it (the lines of `check`
    /// are in each [`health::Check`]).
    pub notify: Option<usize>,
}

/// Process-wide settings from the optional `[ipfail]` section. Keys of
/// `[DEFAULT]` are not inherited here: `[DEFAULT]` is for group keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub control_socket: PathBuf,
    /// Unix group (name or gid) allowed to use the control socket (mode
    /// 0660); `None`: root only (mode 0600).
    pub control_group: Option<String>,
    /// Where hook runs keep per-group state and locks.
    pub state_dir: PathBuf,
    /// How long a liveness probe waits for an answer.
    pub probe_timeout: Duration,
    /// Gratuitous ARPs (unsolicited NAs) sent per added address.
    pub garp_count: u32,
    pub garp_interval: Duration,
    /// How often an address another host answers for is probed again.
    pub reprobe_interval: Duration,
    /// Where to serve Prometheus metrics (`/metrics`); `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Line of the `[ipfail]` header, if the file has one.
    pub line: Option<usize>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            control_group: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            probe_timeout: Duration::from_millis(300),
            garp_count: 3,
            garp_interval: Duration::from_millis(500),
            reprobe_interval: Duration::from_secs(1),
            metrics_listen: None,
            line: None,
        }
    }
}

/// An address with a prefix length, as written in `ips`. Displays as
/// `addr/prefix`; without a prefix in the file it is a host route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// `None` if `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= Self::max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    /// `addr/32` or `addr/128`.
    pub fn host(addr: IpAddr) -> Self {
        IpNet {
            addr,
            prefix: Self::max_prefix(addr),
        }
    }

    pub fn max_prefix(addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    pub fn is_host(&self) -> bool {
        self.prefix == Self::max_prefix(self.addr)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a string is not an `addr[/prefix]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    #[error("not an IP address")]
    NotAnAddress,
    #[error("the prefix length must be 0..={max}")]
    BadPrefix { max: u8 },
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| IpNetError::NotAnAddress)?;
        let max = Self::max_prefix(addr);
        match prefix {
            None => Ok(Self::host(addr)),
            // Digits only: u8::from_str would also take "+24".
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse()
                .ok()
                .and_then(|p| Self::new(addr, p))
                .ok_or(IpNetError::BadPrefix { max }),
            Some(_) => Err(IpNetError::BadPrefix { max }),
        }
    }
}

/// A group: one section, the set of floating IPs that move together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// Line of the `[name]` header.
    pub line: usize,
    /// NIC the addresses are added to.
    pub interface: String,
    /// Never empty; no address appears twice in the file.
    pub ips: Vec<IpNet>,
    /// The CARP election the daemon runs; `None`: used by `ipfail hook` only.
    pub carp: Option<Carp>,
}

impl Group {
    pub fn vhid(&self) -> Option<u8> {
        self.carp.as_ref().map(|c| c.vhid)
    }

    /// The interface adverts go out on (`None` without CARP).
    pub fn carp_interface(&self) -> Option<&str> {
        self.carp.as_ref().map(|c| c.carp_interface.as_str())
    }
}

/// CARP settings of a group that has a `vhid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carp {
    pub vhid: u8,
    pub advbase: u8,
    pub advskew: u8,
    /// The HMAC key, raw bytes, at most [`PASS_MAX_LEN`].
    pub pass: Vec<u8>,
    pub preempt: bool,
    /// Addresses the advert HMAC covers (defaults to the group's `ips`).
    pub hmac_addrs: Vec<IpAddr>,
    pub carp_interface: String,
    /// Advert source; `None`: the first IPv4 address of `carp_interface`.
    pub source: Option<Ipv4Addr>,
    /// Health checks (`check`, `check_*` keys); `None`: always healthy.
    pub health: Option<health::Health>,
    /// State-change script (`notify`): program and arguments.
    pub notify: Option<Vec<String>>,
}

impl Config {
    /// The group of section `[name]`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The group running `vhid` on `iface` (FreeBSD ≥ 10 devd `VHID@IFACE`).
    /// A match on `carp_interface` wins over one on `interface`.
    pub fn find_by_vhid(&self, vhid: u8, iface: &str) -> Option<&Group> {
        let with_vhid = || self.groups.iter().filter(move |g| g.vhid() == Some(vhid));
        with_vhid()
            .find(|g| g.carp_interface() == Some(iface))
            .or_else(|| with_vhid().find(|g| g.interface == iface))
    }

    /// Groups the daemon runs an election for.
    pub fn carp_groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(|g| g.carp.is_some())
    }

    /// The lines of group `name`'s keys.
    pub fn lines_of(&self, name: &str) -> Option<&GroupLines> {
        self.lines.groups.get(name)
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let io = |err| ConfigError::Io {
        path: path.to_path_buf(),
        err,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    parse_bytes(&bytes, path)
}

/// The `control_socket` a file names, read leniently: for clients that must
/// reach a running daemon even when the file no longer validates (someone
/// is editing it). Falls back to [`DEFAULT_CONTROL_SOCKET`].
pub fn control_socket_lenient(path: &Path) -> PathBuf {
    let named = std::fs::File::open(path).ok().and_then(|f| {
        let mut bytes = Vec::new();
        f.take(MAX_FILE_SIZE).read_to_end(&mut bytes).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let ini = ini::parse(&text).ok()?;
        let global = ini.sections.iter().find(|s| s.name == GLOBAL_SECTION)?;
        let value = global.get("control_socket")?.value.trim().to_string();
        let p = PathBuf::from(value);
        p.is_absolute().then_some(p)
    });
    named.unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET))
}

/// Validates file contents that may not be UTF-8; `path` is for messages.
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Config, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, path),
        Err(e) => {
            let good = bytes.get(..e.valid_up_to()).unwrap_or_default();
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: 1 + line_breaks(good),
                problem: Box::new(Problem::NotUtf8),
            })
        }
    }
}

/// Validates config text; `path` is recorded and used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |line, problem| ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        problem: Box::new(problem),
    };
    let ini = ini::parse(text).map_err(|e| invalid(e.line, Problem::Syntax(e.kind)))?;
    validate::build(&ini, path).map_err(|(line, problem)| invalid(line, problem))
}

/// Line breaks as [`ini`] counts them: `\n`, `\r\n` or a lone `\r`.
fn line_breaks(bytes: &[u8]) -> usize {
    let lf = bytes.iter().filter(|&&b| b == b'\n').count();
    let lone_cr = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .count();
    lf + lone_cr
}

/// A configuration file that cannot be used. Displays as `PATH:LINE: what`
/// (or `PATH: what` when no line applies).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {err}", .path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: larger than {} bytes; is this really the config file?", .path.display(), MAX_FILE_SIZE)]
    TooLarge { path: PathBuf },
    #[error("{}:{line}: {problem}", .path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        /// Boxed to keep `Result<Config, ConfigError>` small.
        problem: Box<Problem>,
    },
}

impl ConfigError {
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => Some(*line),
            ConfigError::Io { .. } | ConfigError::TooLarge { .. } => None,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Io { path, .. }
            | ConfigError::TooLarge { path }
            | ConfigError::Invalid { path, .. } => path,
        }
    }

    /// What is wrong with the contents (`None` if the file was not read).
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ConfigError::Invalid { problem, .. } => Some(problem),
            ConfigError::Io { .. } | ConfigError::TooLarge { .. } => None,
        }
    }
}

/// What is wrong in a configuration file, without the `PATH:LINE: ` prefix.
/// Text from the file is shown escaped and cut short ([`ini::shown`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Syntax(ini::SyntaxError),
    #[error("the file is not valid UTF-8")]
    NotUtf8,
    #[error(
        "no group sections (a group is a [name] section with 'interface' and 'ips'; \
         [ipfail] and [DEFAULT] are not groups)"
    )]
    NoGroups,
    #[error("[{name}]: invalid group name: {why}")]
    BadGroupName { name: String, why: &'static str },
    #[error("[{section}]: key '{key}' is missing")]
    Missing { section: String, key: &'static str },
    #[error("unknown {at} (known: {known})")]
    UnknownKey { at: KeyAt, known: &'static str },
    #[error("{at}: {why}")]
    BadValue { at: KeyAt, why: ValueError },
    #[error(
        "{at} needs 'vhid' (a section without vhid runs no CARP and is only used \
         by 'ipfail hook'; add vhid or remove the key)"
    )]
    NeedsVhid { at: KeyAt },
    #[error("{at} does nothing without 'check' in the same group (add checks or remove the key)")]
    CheckTuningWithoutCheck { at: KeyAt },
    #[error("{at} does nothing: no group has 'check' (add checks or remove the key)")]
    CheckTuningUnused { at: KeyAt },
    #[error(
        "{at}: check_interval ({interval} s) must be longer than check_timeout ({timeout} s): \
         a check is given up at the timeout before the next one starts"
    )]
    IntervalNotAboveTimeout {
        at: KeyAt,
        interval: String,
        timeout: String,
    },
    #[error("address {addr} is listed twice in [{section}] (first at line {first_line})")]
    RepeatedIp {
        addr: IpAddr,
        section: String,
        first_line: usize,
    },
    #[error("address {addr} in [{section}] is already in [{first_section}] at line {first_line}")]
    DuplicateIp {
        addr: IpAddr,
        section: String,
        first_section: String,
        first_line: usize,
    },
    #[error(
        "vhid {vhid} on interface {interface} in [{section}] is already used by \
         [{first_section}] at line {first_line}"
    )]
    DuplicateVhid {
        vhid: u8,
        interface: String,
        section: String,
        first_section: String,
        first_line: usize,
    },
}

/// A key in a section, for messages: `key 'advskew' in [carp1]`, or
/// `key 'advskew' in [DEFAULT] (inherited by [carp1])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAt {
    pub key: String,
    pub section: String,
    pub inherited: bool,
}

impl fmt::Display for KeyAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inherited {
            write!(
                f,
                "key '{}' in [{}] (inherited by [{}])",
                self.key,
                ini::DEFAULT_SECTION,
                self.section
            )
        } else {
            write!(f, "key '{}' in [{}]", self.key, self.section)
        }
    }
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("the value is empty")]
    Empty,
    #[error(
        "takes one value but continues on this line with '{text}' \
         (remove the indentation if that is a key of its own)"
    )]
    MultiLine { text: String },
    #[error("{value} is out of range (allowed {allowed})")]
    OutOfRange { value: String, allowed: String },
    #[error("'{value}' is not a whole number (allowed {allowed})")]
    NotInteger { value: String, allowed: String },
    #[error("'{value}' is not a number of seconds (allowed {allowed}, e.g. 0.5)")]
    NotSeconds { value: String, allowed: String },
    #[error("'{value}' is not yes or no (allowed yes, no, true, false, on, off, 1, 0)")]
    NotBool { value: String },
    #[error("'{value}': {why}")]
    BadAddress { value: String, why: IpNetError },
    #[error("{addr} is not a usable unicast address ({why})")]
    NotUnicast { addr: IpAddr, why: &'static str },
    #[error("'{value}' is not an IPv4 address")]
    NotIpv4 { value: String },
    #[error("lists no address")]
    NoAddresses,
    #[error("address {addr} is listed twice")]
    RepeatedAddress { addr: IpAddr },
    #[error("'{value}' is not a valid interface name: {why}")]
    BadInterface { value: String, why: &'static str },
    #[error("'{value}' is not usable: {why}")]
    BadPath { value: String, why: String },
    #[error("'{value}' is not a Unix group name or number: {why}")]
    BadUnixGroup { value: String, why: &'static str },
    #[error("lists no check (one per line: tcp HOST:PORT, http URL, exec PATH [ARGS])")]
    NoChecks,
    #[error("'{check}': {why}")]
    BadCheck { check: String, why: String },
    #[error("'{value}': {why}")]
    BadCommand { value: String, why: String },
    #[error("{why}")]
    BadListen { why: String },
    #[error(
        "is {len} bytes long; at most {} bytes are allowed (as with ifconfig pass)",
        PASS_MAX_LEN
    )]
    PassTooLong { len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = "[carp1]
interface = igb1
ips : 208.43.48.2
      208.43.48.3
      208.43.48.4
[carp2]
interface = igb1
ips : 208.43.48.5
      208.43.48.6
";

    fn ips(g: &Group) -> Vec<String> {
        g.ips.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn legacy_mas_ip_manager_file_parses_unchanged() {
        let cfg = parse(LEGACY, Path::new("legacy.cfg")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.path, Path::new("legacy.cfg"));
        assert_eq!(cfg.global, Global::default());
        assert_eq!(cfg.groups.len(), 2);
        let (c1, c2) = (&cfg.groups[0], &cfg.groups[1]);
        assert_eq!(
            (c1.name.as_str(), c1.line, c1.interface.as_str()),
            ("carp1", 1, "igb1")
        );
        assert_eq!(
            ips(c1),
            ["208.43.48.2/32", "208.43.48.3/32", "208.43.48.4/32"]
        );
        assert_eq!(
            (c2.name.as_str(), c2.line, c2.interface.as_str()),
            ("carp2", 6, "igb1")
        );
        assert_eq!(ips(c2), ["208.43.48.5/32", "208.43.48.6/32"]);
        // Legacy groups have no vhid: hook only.
        assert!(c1.carp.is_none() && c2.carp.is_none());
        assert_eq!(cfg.carp_groups().count(), 0);
    }

    #[test]
    fn example_files_parse() {
        let legacy = include_str!("../../etc/mas_ip_manager.cfg");
        let cfg =
            parse(legacy, Path::new("etc/mas_ip_manager.cfg")).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = cfg.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["carp1", "carp2"]);
        assert_eq!(ips(&cfg.groups[1]), ["208.43.48.5/32", "208.43.48.6/32"]);
        // The legacy file quoted verbatim in docs/design.md §2.1.
        assert!(
            legacy.ends_with(LEGACY),
            "etc/mas_ip_manager.cfg must end with the legacy text"
        );

        let example = include_str!("../../etc/ipfail.cfg");
        let cfg = parse(example, Path::new("etc/ipfail.cfg")).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.carp_groups().count() >= 2, "{cfg:?}");
        assert!(
            cfg.groups.iter().any(|g| g.carp.is_none()),
            "no hook-only example"
        );
        for g in &cfg.groups {
            for ip in &g.ips {
                let documentation = match ip.addr {
                    IpAddr::V4(a) => matches!(a.octets(), [192, 0, 2, _] | [203, 0, 113, _]),
                    IpAddr::V6(a) => a.segments()[..2] == [0x2001, 0xdb8],
                };
                assert!(
                    documentation,
                    "{ip} in the example is not a documentation address"
                );
            }
        }
    }

    #[test]
    fn load_reads_file_and_names_path_on_io_error() {
        let dir = std::env::temp_dir().join(format!("ipfail-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("x.cfg");
        std::fs::write(&file, LEGACY).unwrap_or_else(|e| panic!("{e}"));
        let cfg = load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((cfg.path.as_path(), cfg.groups.len()), (file.as_path(), 2));

        let missing = dir.join("missing.cfg");
        let e = load(&missing)
            .err()
            .unwrap_or_else(|| panic!("loaded a missing file"));
        assert!(matches!(e, ConfigError::Io { .. }));
        assert_eq!(e.line(), None);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{}: cannot read: ", missing.display())),
            "{text}"
        );

        std::fs::write(&file, b"[carp1]\ninterface = igb1\nips = 192.0.2.1 \xff\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = load(&file)
            .err()
            .unwrap_or_else(|| panic!("accepted invalid UTF-8"));
        assert_eq!(
            e.to_string(),
            format!("{}:3: the file is not valid UTF-8", file.display())
        );

        // A device or a huge file is refused before it is read into memory.
        let size = usize::try_from(MAX_FILE_SIZE).unwrap_or(usize::MAX);
        std::fs::write(&file, vec![b'#'; size + 1]).unwrap_or_else(|e| panic!("{e}"));
        let e = load(&file)
            .err()
            .unwrap_or_else(|| panic!("accepted a huge file"));
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_socket_is_found_even_in_a_file_that_does_not_validate() {
        let dir = std::env::temp_dir().join(format!("ipfail-cfg-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("x.cfg");
        std::fs::write(
            &file,
            "[ipfail]\ncontrol_socket = /run/x/y.sock\n[web]\nvhid = 300\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(load(&file).is_err());
        assert_eq!(control_socket_lenient(&file), Path::new("/run/x/y.sock"));
        std::fs::write(&file, "[web\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            control_socket_lenient(&file),
            Path::new(DEFAULT_CONTROL_SOCKET)
        );
        assert_eq!(
            control_socket_lenient(&dir.join("missing")),
            Path::new(DEFAULT_CONTROL_SOCKET)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ipnet_parse_and_display() {
        let net = |s: &str| s.parse::<IpNet>();
        assert_eq!(
            net("203.0.113.5/24").map(|n| n.to_string()),
            Ok("203.0.113.5/24".into())
        );
        assert_eq!(
            net("2001:db8::1").map(|n| (n.prefix, n.is_host())),
            Ok((128, true))
        );
        assert_eq!(net("192.0.2.1/0").map(|n| n.prefix), Ok(0));
        assert_eq!(net("192.0.2.1/33"), Err(IpNetError::BadPrefix { max: 32 }));
        assert_eq!(
            net("2001:db8::1/129"),
            Err(IpNetError::BadPrefix { max: 128 })
        );
        for bad_prefix in [
            "192.0.2.1/",
            "192.0.2.1/+8",
            "192.0.2.1/-1",
            "192.0.2.1/999999",
        ] {
            assert_eq!(
                net(bad_prefix),
                Err(IpNetError::BadPrefix { max: 32 }),
                "{bad_prefix}"
            );
        }
        for bad in [
            "",
            "192.0.2",
            "192.0.2.256",
            "010.0.0.1",
            "fe80::1%eth0",
            "x/24",
        ] {
            assert_eq!(net(bad), Err(IpNetError::NotAnAddress), "{bad}");
        }
    }

    #[test]
    fn find_groups_by_name_and_vhid() {
        let text = "[a]\ninterface = em0\nips = 192.0.2.1\nvhid = 1\n\
                    [c]\ninterface = em0.5\nips = 192.0.2.3\nvhid = 1\ncarp_interface = em9\n\
                    [b]\ninterface = em1\nips = 192.0.2.2\nvhid = 1\ncarp_interface = em0.5\n\
                    [d]\ninterface = em0\nips = 192.0.2.4\n";
        let cfg = parse(text, Path::new("x.cfg")).unwrap_or_else(|e| panic!("{e}"));
        let name = |g: Option<&Group>| g.map(|g| g.name.clone());
        assert_eq!(name(cfg.group("d")), Some("d".into()));
        assert_eq!(name(cfg.group("e")), None);
        assert_eq!(name(cfg.find_by_vhid(1, "em0")), Some("a".into()));
        assert_eq!(name(cfg.find_by_vhid(1, "em9")), Some("c".into()));
        // [b] advertises on em0.5 and wins over the earlier [c], whose
        // addresses live on em0.5.
        assert_eq!(name(cfg.find_by_vhid(1, "em0.5")), Some("b".into()));
        // The address interface matches when nothing advertises there.
        assert_eq!(name(cfg.find_by_vhid(1, "em1")), Some("b".into()));
        assert_eq!(name(cfg.find_by_vhid(2, "em0")), None);
        let names: Vec<&str> = cfg.carp_groups().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "b"]);
    }

    /// xorshift64: deterministic pseudo-random numbers without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % (n.max(1) as u64)) as usize
        }
    }

    fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
        const INTERESTING: &[u8] = b"[]=:#; \t\r\n/,.0123456789abcdef\xef\xbb\xbf\xff\x00";
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(input.len() + 1);
            let byte = if rng.below(4) == 0 {
                rng.next() as u8
            } else {
                INTERESTING[rng.below(INTERESTING.len())]
            };
            match rng.below(6) {
                0 if at < input.len() => input[at] = byte,
                1 => input.insert(at, byte),
                2 if at < input.len() => {
                    let end = (at + rng.below(12)).min(input.len());
                    input.drain(at..end);
                }
                3 => {
                    // Copy a chunk elsewhere: duplicates keys, sections, lines.
                    let from = rng.below(input.len());
                    let end = (from + rng.below(40)).min(input.len());
                    let chunk = input[from..end].to_vec();
                    input.splice(at..at, chunk);
                }
                4 => input.truncate(at),
                _ => input.insert(at, b'\n'),
            }
        }
    }

    #[test]
    fn never_panics_on_mutated_input() {
        let seeds: [&[u8]; 4] = [
            LEGACY.as_bytes(),
            include_bytes!("../../etc/ipfail.cfg"),
            b"[DEFAULT]\ninterface = eth0\n[ipfail]\ngarp_count = 3\n[g]\nips = 192.0.2.1/24,\n  2001:db8::1\nvhid = 9\npass = x\n",
            b"[DEFAULT]\ncheck_fall = 2\n[g]\ninterface = e0\nips = 192.0.2.1\nvhid = 9\n\
              check : tcp [2001:db8::1]:443\n  http http://h.example:8080/a?b\n  exec /bin/true -q\n\
              check_interval = 1.5\ncheck_timeout = 0.2\ncheck_rise = 1\nnotify = /bin/true x\n",
        ];
        let path = Path::new("fuzz.cfg");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut rejected) = (0, 0);
        for round in 0..6000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            mutate(&mut rng, &mut input);
            match parse_bytes(&input, path) {
                Ok(cfg) => {
                    accepted += 1;
                    assert!(!cfg.groups.is_empty());
                    assert!(cfg.groups.iter().all(|g| !g.ips.is_empty()));
                    assert!(!cfg.describe().is_empty());
                }
                Err(e) => {
                    rejected += 1;
                    let line = e.line().unwrap_or_else(|| panic!("no line: {e}"));
                    let lines = 1 + line_breaks(&input);
                    assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
                    assert!(
                        e.to_string().starts_with(&format!("fuzz.cfg:{line}: ")),
                        "{e}"
                    );
                }
            }
        }
        // Both paths must have been exercised for the loop to mean anything.
        assert!(
            accepted > 100 && rejected > 100,
            "{accepted} accepted, {rejected} rejected"
        );
    }
}
