//! Parsed INI sections -> validated [`Config`]: value syntax and ranges,
//! required and unknown keys, and the rules that span groups (an address in
//! one group only, a vhid once per interface).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::num::IntErrorKind;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::health::{self, Check, CheckKind, Health};
use super::ini::{shown, Entry, Ini, Section};
use super::{
    Carp, Config, Global, Group, GroupLines, IpNet, KeyAt, KeyLines, Problem, ValueError,
    GLOBAL_SECTION, PASS_MAX_LEN,
};

/// An error and the line it is reported at.
type Res<T> = Result<T, (usize, Problem)>;

const GROUP_KEYS: [&str; 16] = [
    "interface",
    "ips",
    "vhid",
    "advbase",
    "advskew",
    "pass",
    "preempt",
    "hmac_addrs",
    "carp_interface",
    "source",
    "check",
    "check_interval",
    "check_timeout",
    "check_fall",
    "check_rise",
    "notify",
];
const GROUP_KEYS_TEXT: &str =
    "interface, ips, vhid, advbase, advskew, pass, preempt, hmac_addrs, carp_interface, source, \
     check, check_interval, check_timeout, check_fall, check_rise, notify";
/// Keys that only mean something to the CARP election.
const DAEMON_KEYS: [&str; 13] = [
    "advbase",
    "advskew",
    "pass",
    "preempt",
    "hmac_addrs",
    "carp_interface",
    "source",
    "check",
    "check_interval",
    "check_timeout",
    "check_fall",
    "check_rise",
    "notify",
];
/// The keys that tune `check` and mean nothing without it.
const CHECK_TUNING_KEYS: [&str; 4] = [
    "check_interval",
    "check_timeout",
    "check_fall",
    "check_rise",
];
/// Range of `check_interval`, `check_timeout` (ms) and `check_fall`/`check_rise`.
const CHECK_INTERVAL_MS: RangeInclusive<u64> = 50..=3_600_000;
const CHECK_TIMEOUT_MS: RangeInclusive<u64> = 10..=600_000;
const CHECK_COUNT: RangeInclusive<u32> = 1..=100;
const CHECK_KINDS: &str = "tcp HOST:PORT, http URL, exec PATH [ARGS]";
const GLOBAL_KEYS_TEXT: &str = "control_socket, control_group, state_dir, probe_timeout, \
     garp_count, garp_interval, reprobe_interval, metrics_listen";

/// Longest Unix socket path that fits `sun_path` with its NUL on every
/// platform (104 bytes on FreeBSD, 108 on Linux).
const SOCKET_PATH_MAX: usize = 103;
/// Group names appear in `--carp=NAME`, state file names and the `describe`
/// table, which fits 100 columns with names this long.
const GROUP_NAME_MAX: usize = 40;

pub(super) fn build(ini: &Ini, path: &Path) -> Res<Config> {
    let mut global = Global::default();
    let mut groups = Vec::new();
    // Who claimed an address or a vhid first: (section name, line).
    let mut ip_owner: HashMap<IpAddr, (&str, usize)> = HashMap::new();
    let mut vhid_owner: HashMap<(u8, String), (&str, usize)> = HashMap::new();
    let mut lines = KeyLines::default();
    for sec in &ini.sections {
        if sec.name == GLOBAL_SECTION {
            global = build_global(sec)?;
            lines.state_dir = sec
                .entries
                .iter()
                .find(|e| !e.inherited && e.key == "state_dir")
                .map(|e| e.line);
            continue;
        }
        let parsed = build_group(sec)?;
        for &(net, line) in &parsed.ip_lines {
            if let Some(&(first_section, first_line)) = ip_owner.get(&net.addr) {
                let problem = if first_section == sec.name {
                    Problem::RepeatedIp {
                        addr: net.addr,
                        section: sec.name.clone(),
                        first_line,
                    }
                } else {
                    Problem::DuplicateIp {
                        addr: net.addr,
                        section: sec.name.clone(),
                        first_section: first_section.to_string(),
                        first_line,
                    }
                };
                return Err((line, problem));
            }
            ip_owner.insert(net.addr, (&sec.name, line));
        }
        if let Some(carp) = &parsed.group.carp {
            let key = (carp.vhid, carp.carp_interface.clone());
            if let Some(&(first_section, first_line)) = vhid_owner.get(&key) {
                return Err((
                    parsed.vhid_line,
                    Problem::DuplicateVhid {
                        vhid: carp.vhid,
                        interface: carp.carp_interface.clone(),
                        section: sec.name.clone(),
                        first_section: first_section.to_string(),
                        first_line,
                    },
                ));
            }
            vhid_owner.insert(key, (&sec.name, parsed.vhid_line));
        }
        let line_of = |key: &str| sec.get(key).map(|e| e.line);
        lines.groups.insert(
            sec.name.clone(),
            GroupLines {
                interface: line_of("interface").unwrap_or(sec.line),
                carp_interface: line_of("carp_interface"),
                ips: parsed.ip_lines.iter().map(|&(_, line)| line).collect(),
                notify: parsed
                    .group
                    .carp
                    .as_ref()
                    .and_then(|c| c.notify.as_ref())
                    .and(line_of("notify")),
            },
        );
        groups.push(parsed.group);
    }
    if groups.is_empty() {
        return Err((ini.last_line, Problem::NoGroups));
    }
    // Tuning in [DEFAULT] is ignored by groups without `check`; if no group
    // has one, it does nothing at all.
    let any_check = groups
        .iter()
        .any(|g| g.carp.as_ref().is_some_and(|c| c.health.is_some()));
    if let (false, Some(defaults)) = (any_check, &ini.defaults) {
        let tuning = defaults
            .entries
            .iter()
            .find(|e| CHECK_TUNING_KEYS.contains(&e.key.as_str()));
        if let Some(entry) = tuning {
            let at = Value::new(defaults, entry).at;
            return Err((entry.line, Problem::CheckTuningUnused { at }));
        }
    }
    Ok(Config {
        path: path.to_path_buf(),
        global,
        groups,
        lines,
    })
}

fn build_global(sec: &Section) -> Res<Global> {
    let mut g = Global {
        line: Some(sec.line),
        ..Global::default()
    };
    let ms = Duration::from_millis;
    // [DEFAULT] holds group keys; it does not reach into [ipfail].
    for entry in sec.entries.iter().filter(|e| !e.inherited) {
        let v = Value::new(sec, entry);
        match entry.key.as_str() {
            "control_socket" => g.control_socket = v.path(Some(SOCKET_PATH_MAX))?,
            "control_group" => g.control_group = Some(v.unix_group()?),
            "state_dir" => g.state_dir = v.path(None)?,
            "probe_timeout" => g.probe_timeout = v.seconds(ms(50)..=ms(10_000))?,
            "garp_count" => g.garp_count = v.int(1..=20)?,
            "garp_interval" => g.garp_interval = v.seconds(ms(10)..=ms(10_000))?,
            "reprobe_interval" => g.reprobe_interval = v.seconds(ms(100)..=ms(60_000))?,
            "metrics_listen" => g.metrics_listen = Some(v.listen()?),
            _ => return Err(v.unknown(GLOBAL_KEYS_TEXT)),
        }
    }
    Ok(g)
}

struct ParsedGroup {
    group: Group,
    /// Each address with the line it is written on.
    ip_lines: Vec<(IpNet, usize)>,
    /// Line of the `vhid` key (header line without CARP).
    vhid_line: usize,
}

fn build_group(sec: &Section) -> Res<ParsedGroup> {
    check_group_name(&sec.name).map_err(|why| {
        let name = shown(&sec.name);
        (sec.line, Problem::BadGroupName { name, why })
    })?;
    if let Some(entry) = sec
        .entries
        .iter()
        .find(|e| !GROUP_KEYS.contains(&e.key.as_str()))
    {
        return Err(Value::new(sec, entry).unknown(GROUP_KEYS_TEXT));
    }
    let value = |key: &str| sec.get(key).map(|e| Value::new(sec, e));
    let required = |key: &'static str| {
        value(key).ok_or_else(|| {
            let section = sec.name.clone();
            (sec.line, Problem::Missing { section, key })
        })
    };
    let interface = required("interface")?.interface()?;
    let ip_lines = required("ips")?.addresses(true)?;
    let ips: Vec<IpNet> = ip_lines.iter().map(|&(net, _)| net).collect();

    let Some(vhid) = value("vhid") else {
        // Set in the section itself, a daemon key without vhid is a mistake;
        // inherited from [DEFAULT] it is meant for the CARP groups only.
        if let Some((line, at)) = set_here(sec, &DAEMON_KEYS) {
            return Err((line, Problem::NeedsVhid { at }));
        }
        let group = Group {
            name: sec.name.clone(),
            line: sec.line,
            interface,
            ips,
            carp: None,
        };
        return Ok(ParsedGroup {
            group,
            ip_lines,
            vhid_line: sec.line,
        });
    };

    let hmac_addrs = match value("hmac_addrs") {
        Some(v) => v.hmac_addresses()?,
        None => ips.iter().map(|net| net.addr).collect(),
    };
    let carp = Carp {
        vhid: vhid.int(1..=255)?,
        advbase: value("advbase")
            .map(|v| v.int(1..=255))
            .transpose()?
            .unwrap_or(1),
        advskew: value("advskew")
            .map(|v| v.int(0..=254))
            .transpose()?
            .unwrap_or(0),
        pass: value("pass")
            .map(|v| v.pass())
            .transpose()?
            .unwrap_or_default(),
        preempt: value("preempt")
            .map(|v| v.boolean())
            .transpose()?
            .unwrap_or(true),
        hmac_addrs,
        carp_interface: match value("carp_interface") {
            Some(v) => v.interface()?,
            None => interface.clone(),
        },
        source: value("source").map(|v| v.ipv4()).transpose()?,
        health: build_health(sec)?,
        notify: value("notify").map(|v| v.argv()).transpose()?,
    };
    Ok(ParsedGroup {
        group: Group {
            name: sec.name.clone(),
            line: sec.line,
            interface,
            ips,
            carp: Some(carp),
        },
        ip_lines,
        vhid_line: vhid.entry.line,
    })
}

/// The first of `keys` written in the section itself (not inherited from
/// `[DEFAULT]`): its line and where it is, for an error.
fn set_here(sec: &Section, keys: &[&str]) -> Option<(usize, KeyAt)> {
    let entry = sec
        .entries
        .iter()
        .find(|e| !e.inherited && keys.contains(&e.key.as_str()))?;
    Some((entry.line, Value::new(sec, entry).at))
}

/// `check` and its tuning keys; `None` without `check`.
fn build_health(sec: &Section) -> Res<Option<Health>> {
    let value = |key: &str| sec.get(key).map(|e| Value::new(sec, e));
    let Some(check) = value("check") else {
        // Set here, tuning without a check is a mistake; inherited from
        // [DEFAULT] it is meant for the groups that have checks.
        if let Some((line, at)) = set_here(sec, &CHECK_TUNING_KEYS) {
            return Err((line, Problem::CheckTuningWithoutCheck { at }));
        }
        return Ok(None);
    };
    let checks = check.checks()?;
    let ms = |r: &RangeInclusive<u64>| {
        Duration::from_millis(*r.start())..=Duration::from_millis(*r.end())
    };
    let interval_v = value("check_interval");
    let timeout_v = value("check_timeout");
    let interval = match &interval_v {
        Some(v) => v.seconds(ms(&CHECK_INTERVAL_MS))?,
        None => health::DEFAULT_INTERVAL,
    };
    let timeout = match &timeout_v {
        Some(v) => v.seconds(ms(&CHECK_TIMEOUT_MS))?,
        None => health::DEFAULT_TIMEOUT,
    };
    let count = |key: &str, default: u32| match value(key) {
        Some(v) => v.int(CHECK_COUNT),
        None => Ok(default),
    };
    let fall = count("check_fall", health::DEFAULT_FALL)?;
    let rise = count("check_rise", health::DEFAULT_RISE)?;
    if interval <= timeout {
        // Blame the key written last in the file (a default has no line).
        let blamed = [&timeout_v, &interval_v]
            .into_iter()
            .flatten()
            .max_by_key(|v| v.entry.line);
        let (line, at) = match blamed {
            Some(v) => (v.entry.line, v.at.clone()),
            None => (check.entry.line, check.at.clone()),
        };
        return Err((
            line,
            Problem::IntervalNotAboveTimeout {
                at,
                interval: fmt_seconds(interval),
                timeout: fmt_seconds(timeout),
            },
        ));
    }
    Ok(Some(Health {
        checks,
        interval,
        timeout,
        fall,
        rise,
    }))
}

/// `HOST:PORT` (`[v6]:PORT`), or `HOST[:PORT]` with `default_port`.
fn parse_host_port(text: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err("'[' without ']' (write an IPv6 address as [addr]:port)".into());
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "'{}' in brackets is not an IPv6 address",
                shown(addr)
            ));
        }
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected '{}' after ']'", shown(after))),
        };
        (addr, port)
    } else {
        match text.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("write an IPv6 address as [addr]:port".into())
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if !host.contains(':') {
        check_host_name(host)?;
    }
    let port = match (port, default_port) {
        (Some(p), _) => parse_port(p)?,
        (None, Some(p)) => p,
        (None, None) => return Err("the port is missing (HOST:PORT)".into()),
    };
    Ok((host.to_string(), port))
}

fn parse_port(text: &str) -> Result<u16, String> {
    let bad = || format!("'{}' is not a port (1..=65535)", shown(text));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad()),
    }
}

/// An IPv4 address or a DNS host name (letters, digits, '-', '.').
fn check_host_name(host: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "'{}' is not an IP address or a host name: {why}",
            shown(host)
        ))
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if host.len() > 253 {
        return bad("longer than 253 bytes");
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let mut labels = name.split('.');
    if labels.clone().any(|l| l.is_empty() || l.len() > 63) {
        return bad("a label is empty or longer than 63 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
    {
        return bad("use only letters, digits, '-' and '.'");
    }
    if labels
        .clone()
        .any(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return bad("a label starts or ends with '-'");
    }
    if labels
        .next_back()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("not a valid IPv4 address");
    }
    Ok(())
}

/// `http://HOST[:PORT][/PATH]`: host, port (80) and path (`/`).
fn parse_http_url(url: &str) -> Result<(String, u16, String), String> {
    let scheme_end = url.find("://");
    let rest = match scheme_end.map(|i| url.split_at(i)) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            rest.strip_prefix("://").unwrap_or(rest)
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(
                "https is not supported, only http:// (check a TLS port with \
                        tcp HOST:443)"
                    .into(),
            )
        }
        _ => return Err("not an http:// URL".into()),
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err("user info (user@) is not supported in the URL".into());
    }
    if path.contains('#') {
        return Err("a fragment (#...) is never sent; remove it".into());
    }
    if path.contains(|c: char| c.is_control()) {
        return Err("the path contains a control character".into());
    }
    let (host, port) = parse_host_port(authority, Some(80))?;
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok((host, port, path))
}

/// One line of `check`: `tcp HOST:PORT`, `http URL` or `exec PATH [ARGS]`.
fn parse_check(text: &str) -> Result<CheckKind, String> {
    let mut words = text.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let one = |what: &str| match args[..] {
        [arg] => Ok(arg),
        [] => Err(format!("{kind} needs {what}")),
        _ => Err(format!("{kind} takes one argument, {what}")),
    };
    match kind {
        "tcp" => {
            let (host, port) = parse_host_port(one("HOST:PORT")?, None)?;
            Ok(CheckKind::Tcp { host, port })
        }
        "http" => {
            let (host, port, path) = parse_http_url(one("a URL (http://HOST[:PORT]/PATH)")?)?;
            Ok(CheckKind::Http { host, port, path })
        }
        "exec" => {
            let argv = args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
            check_argv(&argv)?;
            Ok(CheckKind::Exec { argv })
        }
        other => Err(format!(
            "unknown kind of check '{}' (known: {CHECK_KINDS})",
            shown(other)
        )),
    }
}

/// A program to run without a shell: an absolute path, then arguments.
fn check_argv(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => Err("the program is missing (an absolute path)".into()),
        Some(p) if !p.starts_with('/') => Err(format!(
            "the program '{}' must be an absolute path",
            shown(p)
        )),
        Some(_) if argv.iter().any(|a| a.contains('\0')) => Err("contains a NUL byte".into()),
        Some(_) => Ok(()),
    }
}

fn check_group_name(name: &str) -> Result<(), &'static str> {
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("use only letters, digits, '-', '_' and '.'");
    }
    if name.len() > GROUP_NAME_MAX {
        return Err("longer than 40 characters");
    }
    if name.starts_with('.') {
        return Err("must not start with '.'");
    }
    Ok(())
}

/// Linux `dev_valid_name()` rules (FreeBSD's are looser).
fn check_interface(name: &str) -> Result<(), &'static str> {
    if name.len() > 15 {
        Err("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Err("'.' and '..' are not interface names")
    } else if name.contains('/') {
        Err("contains '/'")
    } else if name.contains(char::is_whitespace) {
        Err("contains whitespace")
    } else if name.contains(char::is_control) {
        Err("contains a control character")
    } else {
        Ok(())
    }
}

/// Addresses that can be added to a NIC and probed for.
fn check_unicast(addr: IpAddr) -> Result<(), &'static str> {
    let (unspecified, loopback, multicast) = match addr {
        IpAddr::V4(a) if a.is_broadcast() => return Err("broadcast"),
        IpAddr::V4(a) => (a.is_unspecified(), a.is_loopback(), a.is_multicast()),
        IpAddr::V6(a) => (a.is_unspecified(), a.is_loopback(), a.is_multicast()),
    };
    match () {
        () if unspecified => Err("unspecified"),
        () if loopback => Err("loopback"),
        () if multicast => Err("multicast"),
        () => Ok(()),
    }
}

/// Seconds written as a decimal (`2`, `0.3`, `.5`); `None` if not one.
/// More than 9 decimals are cut (below a nanosecond).
fn parse_seconds(text: &str) -> Option<Result<Duration, ()>> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    // Too many seconds or negative: a number, but out of any range.
    let Ok(secs) = (if int.is_empty() {
        Ok(0)
    } else {
        int.parse::<u64>()
    }) else {
        return Some(Err(()));
    };
    let nanos = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    let duration = Duration::new(secs, nanos);
    Some(if negative && !duration.is_zero() {
        Err(())
    } else {
        Ok(duration)
    })
}

/// `0.3`, `1`, `0.05`: seconds the way an operator writes them.
pub(super) fn fmt_seconds(d: Duration) -> String {
    let text = format!("{}.{:09}", d.as_secs(), d.subsec_nanos());
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One key of one section, with what error messages need to name it.
struct Value<'a> {
    at: KeyAt,
    entry: &'a Entry,
}

impl<'a> Value<'a> {
    fn new(sec: &Section, entry: &'a Entry) -> Self {
        let at = KeyAt {
            key: shown(&entry.key),
            section: shown(&sec.name),
            inherited: entry.inherited,
        };
        Value { at, entry }
    }

    fn fail(&self, line: usize, why: ValueError) -> (usize, Problem) {
        let at = self.at.clone();
        (line, Problem::BadValue { at, why })
    }

    fn unknown(&self, known: &'static str) -> (usize, Problem) {
        let at = self.at.clone();
        (self.entry.line, Problem::UnknownKey { at, known })
    }

    /// The value of a single-value key and its line. `key =` followed by one
    /// indented line is accepted; two lines with text are an error.
    fn scalar(&self) -> Res<(usize, &'a str)> {
        let mut pieces = self.entry.lines.iter().filter(|l| !l.text.is_empty());
        let first = pieces.next();
        if let Some(extra) = pieces.next() {
            let text = shown(&extra.text);
            return Err(self.fail(extra.line, ValueError::MultiLine { text }));
        }
        Ok(first.map_or((self.entry.line, ""), |l| (l.line, l.text.as_str())))
    }

    fn non_empty(&self) -> Res<(usize, &'a str)> {
        match self.scalar()? {
            (line, "") => Err(self.fail(line, ValueError::Empty)),
            found => Ok(found),
        }
    }

    fn int<T>(&self, range: RangeInclusive<T>) -> Res<T>
    where
        T: Copy + fmt::Display + Into<i64> + TryFrom<i64>,
    {
        let (line, text) = self.non_empty()?;
        let allowed = format!("{}..={}", range.start(), range.end());
        let value = shown(text);
        let n = match text.parse::<i64>() {
            Ok(n) => Some(n),
            Err(e)
                if matches!(
                    e.kind(),
                    IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
                ) =>
            {
                None
            }
            Err(_) => return Err(self.fail(line, ValueError::NotInteger { value, allowed })),
        };
        let (lo, hi) = ((*range.start()).into(), (*range.end()).into());
        match n.filter(|n| (lo..=hi).contains(n)).map(T::try_from) {
            Some(Ok(n)) => Ok(n),
            _ => Err(self.fail(line, ValueError::OutOfRange { value, allowed })),
        }
    }

    fn seconds(&self, range: RangeInclusive<Duration>) -> Res<Duration> {
        let (line, text) = self.non_empty()?;
        let allowed = format!(
            "{}..={}",
            fmt_seconds(*range.start()),
            fmt_seconds(*range.end())
        );
        let value = shown(text);
        match parse_seconds(text) {
            Some(Ok(d)) if range.contains(&d) => Ok(d),
            Some(_) => Err(self.fail(line, ValueError::OutOfRange { value, allowed })),
            None => Err(self.fail(line, ValueError::NotSeconds { value, allowed })),
        }
    }

    fn boolean(&self) -> Res<bool> {
        let (line, text) = self.non_empty()?;
        match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Ok(true),
            "no" | "false" | "off" | "0" => Ok(false),
            _ => Err(self.fail(line, ValueError::NotBool { value: shown(text) })),
        }
    }

    fn interface(&self) -> Res<String> {
        let (line, text) = self.non_empty()?;
        check_interface(text).map_err(|why| {
            let value = shown(text);
            self.fail(line, ValueError::BadInterface { value, why })
        })?;
        Ok(text.to_string())
    }

    fn path(&self, max_len: Option<usize>) -> Res<PathBuf> {
        let (line, text) = self.non_empty()?;
        let why = if !text.starts_with('/') {
            Some("must be an absolute path".to_string())
        } else if text.contains('\0') {
            Some("contains a NUL byte".to_string())
        } else {
            max_len
                .filter(|&max| text.len() > max)
                .map(|max| format!("longer than {max} bytes (the limit of a Unix socket path)"))
        };
        match why {
            Some(why) => Err(self.fail(
                line,
                ValueError::BadPath {
                    value: shown(text),
                    why,
                },
            )),
            None => Ok(PathBuf::from(text)),
        }
    }

    /// A group name as useradd/groupadd accept it, or a numeric gid. Whether
    /// it exists is checked when the daemon creates its socket.
    fn unix_group(&self) -> Res<String> {
        let (line, text) = self.non_empty()?;
        let why = if text.len() > 32 {
            Some("longer than 32 bytes")
        } else if text.starts_with('-') {
            Some("starts with '-'")
        } else if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            Some("only letters, digits, '_', '-' and '.' are allowed")
        } else {
            None
        };
        match why {
            Some(why) => Err(self.fail(
                line,
                ValueError::BadUnixGroup {
                    value: shown(text),
                    why,
                },
            )),
            None => Ok(text.to_string()),
        }
    }

    /// `metrics_listen`: `PORT` (loopback), `ADDR:PORT` or `[IPV6]:PORT`.
    fn listen(&self) -> Res<std::net::SocketAddr> {
        let (line, text) = self.non_empty()?;
        crate::metrics::parse_listen(text)
            .map_err(|why| self.fail(line, ValueError::BadListen { why }))
    }

    fn pass(&self) -> Res<Vec<u8>> {
        let (line, text) = self.scalar()?;
        if text.len() > PASS_MAX_LEN {
            let len = text.len();
            return Err(self.fail(line, ValueError::PassTooLong { len }));
        }
        Ok(text.as_bytes().to_vec())
    }

    fn ipv4(&self) -> Res<Ipv4Addr> {
        let (line, text) = self.non_empty()?;
        let addr: Ipv4Addr = text.parse().map_err(|_| {
            let value = shown(text);
            self.fail(line, ValueError::NotIpv4 { value })
        })?;
        check_unicast(IpAddr::V4(addr)).map_err(|why| {
            let addr = IpAddr::V4(addr);
            self.fail(line, ValueError::NotUnicast { addr, why })
        })?;
        Ok(addr)
    }

    /// A list of `addr[/prefix]` separated by blanks, commas or line breaks,
    /// each with its line. `floating`: must be addable to a NIC.
    fn addresses(&self, floating: bool) -> Res<Vec<(IpNet, usize)>> {
        let mut out = Vec::new();
        for piece in &self.entry.lines {
            let words = piece.text.split(|c: char| c.is_whitespace() || c == ',');
            for word in words.filter(|w| !w.is_empty()) {
                let net: IpNet = word.parse().map_err(|why| {
                    let value = shown(word);
                    self.fail(piece.line, ValueError::BadAddress { value, why })
                })?;
                if floating {
                    check_unicast(net.addr).map_err(|why| {
                        let addr = net.addr;
                        self.fail(piece.line, ValueError::NotUnicast { addr, why })
                    })?;
                }
                out.push((net, piece.line));
            }
        }
        if out.is_empty() {
            return Err(self.fail(self.entry.line, ValueError::NoAddresses));
        }
        Ok(out)
    }

    /// `check`: one check per line, each with its line.
    fn checks(&self) -> Res<Vec<Check>> {
        let mut out = Vec::new();
        for piece in self.entry.lines.iter().filter(|l| !l.text.is_empty()) {
            let kind = parse_check(&piece.text).map_err(|why| {
                let check = shown(&piece.text);
                self.fail(piece.line, ValueError::BadCheck { check, why })
            })?;
            out.push(Check {
                kind,
                line: piece.line,
            });
        }
        if out.is_empty() {
            return Err(self.fail(self.entry.line, ValueError::NoChecks));
        }
        Ok(out)
    }

    /// `notify`: program and arguments on one line, split on whitespace.
    fn argv(&self) -> Res<Vec<String>> {
        let (line, text) = self.non_empty()?;
        let argv: Vec<String> = text.split_whitespace().map(String::from).collect();
        check_argv(&argv).map_err(|why| {
            let value = shown(text);
            self.fail(line, ValueError::BadCommand { value, why })
        })?;
        Ok(argv)
    }

    /// `hmac_addrs`: addresses only (a prefix is accepted and ignored, so the
    /// `ips` list can be copied), each once.
    fn hmac_addresses(&self) -> Res<Vec<IpAddr>> {
        let mut out: Vec<IpAddr> = Vec::new();
        for (net, line) in self.addresses(false)? {
            if out.contains(&net.addr) {
                let addr = net.addr;
                return Err(self.fail(line, ValueError::RepeatedAddress { addr }));
            }
            out.push(net.addr);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ConfigError};
    use super::*;

    fn ok(text: &str) -> Config {
        parse(text, Path::new("x.cfg")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> ConfigError {
        match parse(text, Path::new("etc/x.cfg")) {
            Ok(cfg) => panic!("accepted: {cfg:?}"),
            Err(e) => e,
        }
    }

    /// Asserts the exact message, which starts with `etc/x.cfg:LINE: `.
    fn assert_err(text: &str, expected: &str) {
        assert_eq!(err(text).to_string(), expected, "for input:\n{text}");
    }

    const HEAD: &str = "[carp1]\ninterface = igb1\nips = 192.0.2.10\n";

    #[test]
    fn carp_defaults_follow_the_group() {
        let cfg = ok("[g]\ninterface = igb1\nips = 192.0.2.10 192.0.2.11/24\nvhid = 7\n");
        let g = &cfg.groups[0];
        let carp = g.carp.clone().unwrap_or_else(|| panic!("no carp"));
        assert_eq!(
            carp,
            Carp {
                vhid: 7,
                advbase: 1,
                advskew: 0,
                pass: Vec::new(),
                preempt: true,
                hmac_addrs: vec![
                    "192.0.2.10".parse().unwrap_or_else(|e| panic!("{e}")),
                    "192.0.2.11".parse().unwrap_or_else(|e| panic!("{e}"))
                ],
                carp_interface: "igb1".into(),
                source: None,
                health: None,
                notify: None,
            }
        );
    }

    #[test]
    fn every_key_set() {
        let cfg = ok("[ipfail]\ncontrol_socket = /run/x.sock\nstate_dir = /var/tmp/ipf\n\
                      probe_timeout = .25\ngarp_count = 5\ngarp_interval = 1\nreprobe_interval = 2.5\n\
                      [web]\ninterface = eth0.5\nips = 203.0.113.5/24, 2001:db8::5/64\n\
                      vhid = 255\nadvbase = 3\nadvskew = 254\npass = s3cr#t;x\npreempt = Off\n\
                      hmac_addrs = 192.0.2.1\ncarp_interface = eth0\nsource = 192.0.2.2\n");
        let g = &cfg.global;
        assert_eq!(g.control_socket, Path::new("/run/x.sock"));
        assert_eq!(g.state_dir, Path::new("/var/tmp/ipf"));
        assert_eq!(g.probe_timeout, Duration::from_millis(250));
        assert_eq!((g.garp_count, g.garp_interval), (5, Duration::from_secs(1)));
        assert_eq!(g.reprobe_interval, Duration::from_millis(2500));
        assert_eq!(g.line, Some(1));
        let group = &cfg.groups[0];
        assert_eq!((group.name.as_str(), group.line), ("web", 8));
        let ips: Vec<String> = group.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["203.0.113.5/24", "2001:db8::5/64"]);
        let carp = group.carp.clone().unwrap_or_else(|| panic!("no carp"));
        assert_eq!((carp.vhid, carp.advbase, carp.advskew), (255, 3, 254));
        assert_eq!(carp.pass, b"s3cr#t;x");
        assert!(!carp.preempt);
        assert_eq!(carp.hmac_addrs, [IpAddr::from([192, 0, 2, 1])]);
        assert_eq!(carp.carp_interface, "eth0");
        assert_eq!(carp.source, Some(Ipv4Addr::new(192, 0, 2, 2)));
    }

    #[test]
    fn booleans() {
        for (text, expected) in [
            ("yes", true),
            ("TRUE", true),
            ("on", true),
            ("1", true),
            ("No", false),
            ("false", false),
            ("OFF", false),
            ("0", false),
        ] {
            let cfg = ok(&format!("{HEAD}vhid = 1\npreempt = {text}\n"));
            assert_eq!(
                cfg.groups[0].carp.as_ref().map(|c| c.preempt),
                Some(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn key_colon_form_case_insensitive_keys_comments_in_lists() {
        let cfg = ok(
            "# header comment\n[g]\nINTERFACE: igb1\nIps:\n  192.0.2.1\n  # 192.0.2.2 retired\n\
                      ; 192.0.2.3 too\n  192.0.2.4, 192.0.2.5\nVHID : 3\n",
        );
        let g = &cfg.groups[0];
        assert_eq!(g.interface, "igb1");
        let ips: Vec<String> = g.ips.iter().map(|n| n.addr.to_string()).collect();
        assert_eq!(ips, ["192.0.2.1", "192.0.2.4", "192.0.2.5"]);
        assert_eq!(g.vhid(), Some(3));
    }

    #[test]
    fn crlf_and_bom() {
        let text = "\u{feff}[carp1]\r\ninterface = igb1\r\nips : 192.0.2.1\r\n      192.0.2.2\r\nvhid = 4\r\n";
        let cfg = ok(text);
        let g = &cfg.groups[0];
        assert_eq!(
            (g.name.as_str(), g.interface.as_str(), g.vhid()),
            ("carp1", "igb1", Some(4))
        );
        assert_eq!(g.ips.len(), 2);
        // Line numbers survive CRLF.
        assert_eq!(
            err("[carp1]\r\ninterface = igb1\r\nips : 192.0.2.1\r\n      192.0.2.x\r\n").line(),
            Some(4)
        );
    }

    #[test]
    fn default_section_is_inherited() {
        let cfg = ok("[DEFAULT]\ninterface = igb1\nadvbase = 2\npass = secret\n\
                      [a]\nips = 192.0.2.1\nvhid = 1\n\
                      [b]\nips = 192.0.2.2\nvhid = 2\nadvbase = 5\ninterface = igb2\n\
                      [hook]\nips = 192.0.2.3\n");
        let [a, b, hook] = &cfg.groups[..] else {
            panic!("{cfg:?}")
        };
        assert_eq!(
            (a.interface.as_str(), a.carp.as_ref().map(|c| c.advbase)),
            ("igb1", Some(2))
        );
        assert_eq!(
            a.carp.as_ref().map(|c| c.pass.as_slice()),
            Some(&b"secret"[..])
        );
        assert_eq!(
            (b.interface.as_str(), b.carp.as_ref().map(|c| c.advbase)),
            ("igb2", Some(5))
        );
        // Inherited daemon keys do not turn a hook-only group into an error.
        assert!(hook.carp.is_none());
        assert_eq!(hook.interface, "igb1");
    }

    #[test]
    fn inherited_errors_point_at_the_default_section() {
        assert_err(
            "[DEFAULT]\nadvskew = 300\n[carp1]\ninterface = igb1\nips = 192.0.2.1\nvhid = 1\n",
            "etc/x.cfg:2: key 'advskew' in [DEFAULT] (inherited by [carp1]): \
             300 is out of range (allowed 0..=254)",
        );
        assert_err(
            "[DEFAULT]\nprobe_timeout = 1\n[carp1]\ninterface = igb1\nips = 192.0.2.1\n",
            &format!(
                "etc/x.cfg:2: unknown key 'probe_timeout' in [DEFAULT] (inherited by [carp1]) \
                      (known: {GROUP_KEYS_TEXT})"
            ),
        );
    }

    #[test]
    fn default_keys_do_not_reach_the_global_section() {
        let cfg =
            ok("[DEFAULT]\ninterface = igb1\n[ipfail]\ngarp_count = 4\n[g]\nips = 192.0.2.1\n");
        assert_eq!(cfg.global.garp_count, 4);
    }

    #[test]
    fn out_of_range_and_bad_numbers() {
        let cases = [
            (
                "advskew = 300",
                "key 'advskew' in [carp1]: 300 is out of range (allowed 0..=254)",
            ),
            (
                "advskew = 255",
                "key 'advskew' in [carp1]: 255 is out of range (allowed 0..=254)",
            ),
            (
                "advbase = 0",
                "key 'advbase' in [carp1]: 0 is out of range (allowed 1..=255)",
            ),
            (
                "advbase = -1",
                "key 'advbase' in [carp1]: -1 is out of range (allowed 1..=255)",
            ),
            (
                "advbase = 99999999999999999999",
                "key 'advbase' in [carp1]: 99999999999999999999 is out of range (allowed 1..=255)",
            ),
            (
                "advbase = 1.5",
                "key 'advbase' in [carp1]: '1.5' is not a whole number (allowed 1..=255)",
            ),
            ("advbase =", "key 'advbase' in [carp1]: the value is empty"),
            (
                "preempt = maybe",
                "key 'preempt' in [carp1]: 'maybe' is not yes or no \
              (allowed yes, no, true, false, on, off, 1, 0)",
            ),
        ];
        for (line, expected) in cases {
            assert_err(
                &format!("{HEAD}vhid = 1\n{line}\n"),
                &format!("etc/x.cfg:5: {expected}"),
            );
        }
        assert_err(
            &format!("{HEAD}vhid = 0\n"),
            "etc/x.cfg:4: key 'vhid' in [carp1]: 0 is out of range (allowed 1..=255)",
        );
        assert_err(
            &format!("{HEAD}vhid = 256\n"),
            "etc/x.cfg:4: key 'vhid' in [carp1]: 256 is out of range (allowed 1..=255)",
        );
    }

    #[test]
    fn global_values() {
        let cases = [
            ("probe_timeout = 0.01", "key 'probe_timeout' in [ipfail]: 0.01 is out of range (allowed 0.05..=10)"),
            ("probe_timeout = 11", "key 'probe_timeout' in [ipfail]: 11 is out of range (allowed 0.05..=10)"),
            ("probe_timeout = 1e3",
             "key 'probe_timeout' in [ipfail]: '1e3' is not a number of seconds (allowed 0.05..=10, e.g. 0.5)"),
            ("probe_timeout = -1", "key 'probe_timeout' in [ipfail]: -1 is out of range (allowed 0.05..=10)"),
            ("probe_timeout = 300ms",
             "key 'probe_timeout' in [ipfail]: '300ms' is not a number of seconds (allowed 0.05..=10, e.g. 0.5)"),
            ("garp_count = 0", "key 'garp_count' in [ipfail]: 0 is out of range (allowed 1..=20)"),
            ("garp_count = 21", "key 'garp_count' in [ipfail]: 21 is out of range (allowed 1..=20)"),
            ("garp_interval = 0.001", "key 'garp_interval' in [ipfail]: 0.001 is out of range (allowed 0.01..=10)"),
            ("reprobe_interval = 61", "key 'reprobe_interval' in [ipfail]: 61 is out of range (allowed 0.1..=60)"),
            ("reprobe_interval = 99999999999999999999999",
             "key 'reprobe_interval' in [ipfail]: 99999999999999999999999 is out of range (allowed 0.1..=60)"),
            ("state_dir = var/lib/ipfail",
             "key 'state_dir' in [ipfail]: 'var/lib/ipfail' is not usable: must be an absolute path"),
            ("interface = igb1",
             &format!("unknown key 'interface' in [ipfail] (known: {GLOBAL_KEYS_TEXT})")),
            ("control_group = ops team",
             "key 'control_group' in [ipfail]: 'ops team' is not a Unix group name or number: \
              only letters, digits, '_', '-' and '.' are allowed"),
            ("control_group = -wheel",
             "key 'control_group' in [ipfail]: '-wheel' is not a Unix group name or number: starts with '-'"),
        ];
        for (line, expected) in cases {
            assert_err(
                &format!("{HEAD}[ipfail]\n{line}\n"),
                &format!("etc/x.cfg:5: {expected}"),
            );
        }
        let long = format!("/{}", "s".repeat(103));
        assert_err(
            &format!("[ipfail]\ncontrol_socket = {long}\n{HEAD}"),
            &format!(
                "etc/x.cfg:2: key 'control_socket' in [ipfail]: '{}...' is not usable: \
                      longer than 103 bytes (the limit of a Unix socket path)",
                &long[..60]
            ),
        );
        // Boundaries are inclusive.
        let cfg = ok(&format!(
            "{HEAD}[ipfail]\nprobe_timeout = 0.05\nreprobe_interval = 60\n"
        ));
        assert_eq!(cfg.global.probe_timeout, Duration::from_millis(50));
        assert_eq!(cfg.global.reprobe_interval, Duration::from_secs(60));
        assert_eq!(cfg.global.control_group, None);
        let cfg = ok(&format!("{HEAD}[ipfail]\ncontrol_group = nagios\n"));
        assert_eq!(cfg.global.control_group.as_deref(), Some("nagios"));
        assert!(cfg.describe().contains("control_group=nagios"));
    }

    #[test]
    fn missing_and_unknown_keys() {
        assert_err(
            "[carp1]\ninterface = igb1\n[carp2]\ninterface = igb1\n",
            "etc/x.cfg:1: [carp1]: key 'ips' is missing",
        );
        assert_err(
            &format!("{HEAD}\n[carp2]\nips = 192.0.2.2\n"),
            "etc/x.cfg:5: [carp2]: key 'interface' is missing",
        );
        assert_err(
            &format!("{HEAD}advskw = 3\n"),
            &format!("etc/x.cfg:4: unknown key 'advskw' in [carp1] (known: {GROUP_KEYS_TEXT})"),
        );
        assert_eq!(
            GROUP_KEYS_TEXT,
            "interface, ips, vhid, advbase, advskew, pass, preempt, hmac_addrs, carp_interface, \
             source, check, check_interval, check_timeout, check_fall, check_rise, notify"
        );
        assert_eq!(GROUP_KEYS.join(", "), GROUP_KEYS_TEXT);
    }

    #[test]
    fn daemon_keys_need_vhid() {
        for key in DAEMON_KEYS {
            let value = match key {
                "hmac_addrs" | "source" => "192.0.2.1",
                "carp_interface" => "igb0",
                "preempt" => "yes",
                "check" => "tcp 127.0.0.1:80",
                "notify" => "/bin/true",
                _ => "1",
            };
            let e = err(&format!("{HEAD}\n{key} = {value}\n"));
            assert_eq!(
                e.to_string(),
                format!("etc/x.cfg:5: key '{key}' in [carp1] needs 'vhid' (a section without vhid \
                         runs no CARP and is only used by 'ipfail hook'; add vhid or remove the key)")
            );
        }
    }

    #[test]
    fn addresses() {
        let cases = [
            (
                "ips = 192.0.2.1\n  192.0.2.300",
                3,
                "key 'ips' in [g]: '192.0.2.300': not an IP address",
            ),
            (
                "ips = 192.0.2.1/33",
                2,
                "key 'ips' in [g]: '192.0.2.1/33': the prefix length must be 0..=32",
            ),
            (
                "ips = 2001:db8::1/200",
                2,
                "key 'ips' in [g]: '2001:db8::1/200': the prefix length must be 0..=128",
            ),
            (
                "ips = 224.0.0.18",
                2,
                "key 'ips' in [g]: 224.0.0.18 is not a usable unicast address (multicast)",
            ),
            (
                "ips = 0.0.0.0",
                2,
                "key 'ips' in [g]: 0.0.0.0 is not a usable unicast address (unspecified)",
            ),
            (
                "ips = ::1",
                2,
                "key 'ips' in [g]: ::1 is not a usable unicast address (loopback)",
            ),
            (
                "ips = 255.255.255.255",
                2,
                "key 'ips' in [g]: 255.255.255.255 is not a usable unicast address (broadcast)",
            ),
            ("ips = ,", 2, "key 'ips' in [g]: lists no address"),
            ("ips =", 2, "key 'ips' in [g]: lists no address"),
            (
                "ips = 192.0.2.1\n  192.0.2.2\n  # 192.0.2.3\n  192.0.2.1",
                5,
                "address 192.0.2.1 is listed twice in [g] (first at line 2)",
            ),
            (
                "ips = 192.0.2.1 192.0.2.1/24",
                2,
                "address 192.0.2.1 is listed twice in [g] (first at line 2)",
            ),
            (
                "ips = 192.0.2.1\nvhid = 1\nhmac_addrs = 192.0.2.1\n  192.0.2.1",
                5,
                "key 'hmac_addrs' in [g]: address 192.0.2.1 is listed twice",
            ),
            (
                "ips = 192.0.2.1\nvhid = 1\nhmac_addrs =",
                4,
                "key 'hmac_addrs' in [g]: lists no address",
            ),
            (
                "ips = 192.0.2.1\nvhid = 1\nsource = 2001:db8::1",
                4,
                "key 'source' in [g]: '2001:db8::1' is not an IPv4 address",
            ),
            (
                "ips = 192.0.2.1\nvhid = 1\nsource = 0.0.0.0",
                4,
                "key 'source' in [g]: 0.0.0.0 is not a usable unicast address (unspecified)",
            ),
        ];
        for (body, line, expected) in cases {
            assert_err(
                &format!("[g]\n{body}\ninterface = e0\n"),
                &format!("etc/x.cfg:{line}: {expected}"),
            );
        }
        // hmac_addrs may carry prefixes (copied from ips) and any address.
        let cfg = ok("[g]\ninterface = e0\nips = 192.0.2.1/24\nvhid = 1\nhmac_addrs = 192.0.2.1/24 10.0.0.10\n");
        let carp = cfg.groups[0]
            .carp
            .clone()
            .unwrap_or_else(|| panic!("no carp"));
        assert_eq!(
            carp.hmac_addrs,
            [IpAddr::from([192, 0, 2, 1]), IpAddr::from([10, 0, 0, 10])]
        );
    }

    #[test]
    fn same_ip_in_two_groups() {
        assert_err(
            "[carp1]\ninterface = igb1\nips = 192.0.2.1\n  192.0.2.2\n\n\
             [carp2]\ninterface = igb2\nips = 192.0.2.3\n    192.0.2.2/24\n",
            "etc/x.cfg:9: address 192.0.2.2 in [carp2] is already in [carp1] at line 4",
        );
        // IPv6 addresses compare as addresses, not as text.
        assert_err(
            "[a]\ninterface = igb1\nips = 2001:db8::1\n[b]\ninterface = igb1\nips = 2001:0db8:0::1\n",
            "etc/x.cfg:6: address 2001:db8::1 in [b] is already in [a] at line 3",
        );
    }

    #[test]
    fn same_vhid_on_same_interface() {
        assert_err(
            "[carp1]\ninterface = igb1\nips = 192.0.2.1\nvhid = 5\n\
             [carp2]\ninterface = igb1\nips = 192.0.2.2\nadvskew = 10\nvhid = 5\n",
            "etc/x.cfg:9: vhid 5 on interface igb1 in [carp2] is already used by [carp1] at line 4",
        );
        // carp_interface decides where the vhid lives.
        assert_err(
            "[carp1]\ninterface = igb1\nips = 192.0.2.1\nvhid = 5\n\
             [carp2]\ninterface = igb2\ncarp_interface = igb1\nips = 192.0.2.2\nvhid = 5\n",
            "etc/x.cfg:9: vhid 5 on interface igb1 in [carp2] is already used by [carp1] at line 4",
        );
        // The same vhid on another interface is fine.
        let cfg = ok("[carp1]\ninterface = igb1\nips = 192.0.2.1\nvhid = 5\n\
                      [carp2]\ninterface = igb2\nips = 192.0.2.2\nvhid = 5\n");
        assert_eq!(cfg.carp_groups().count(), 2);
    }

    #[test]
    fn pass_length() {
        let ok19 = ok(&format!("{HEAD}vhid = 1\npass = {}\n", "p".repeat(19)));
        assert_eq!(ok19.groups[0].carp.as_ref().map(|c| c.pass.len()), Some(19));
        assert_err(
            &format!("{HEAD}vhid = 1\npass = {}\n", "p".repeat(20)),
            "etc/x.cfg:5: key 'pass' in [carp1]: is 20 bytes long; \
             at most 19 bytes are allowed (as with ifconfig pass)",
        );
        // Bytes, not characters: 10 × 'é' is 20 bytes.
        assert_eq!(
            err(&format!("{HEAD}vhid = 1\npass = {}\n", "é".repeat(10))).line(),
            Some(5)
        );
    }

    #[test]
    fn single_value_keys_reject_continuations() {
        assert_err(
            "[carp1]\ninterface = igb1\n vhid = 1\nips = 192.0.2.1\n",
            "etc/x.cfg:3: key 'interface' in [carp1]: takes one value but continues on this line \
             with 'vhid = 1' (remove the indentation if that is a key of its own)",
        );
        // A lone value on the next line is what ConfigParser users write too.
        let cfg = ok("[carp1]\ninterface =\n    igb1\nips = 192.0.2.1\n");
        assert_eq!(cfg.groups[0].interface, "igb1");
    }

    #[test]
    fn interface_and_group_names() {
        let cases = [
            ("interface = igb/1", 2, "key 'interface' in [g]: 'igb/1' is not a valid interface name: contains '/'"),
            ("interface = abcdefghijklmnop", 2,
             "key 'interface' in [g]: 'abcdefghijklmnop' is not a valid interface name: longer than 15 bytes"),
            ("interface = ..", 2,
             "key 'interface' in [g]: '..' is not a valid interface name: '.' and '..' are not interface names"),
            ("interface = a\u{0}b", 2,
             "key 'interface' in [g]: 'a\\0b' is not a valid interface name: contains a control character"),
            ("interface =", 2, "key 'interface' in [g]: the value is empty"),
        ];
        for (body, line, expected) in cases {
            assert_err(
                &format!("[g]\n{body}\nips = 192.0.2.1\n"),
                &format!("etc/x.cfg:{line}: {expected}"),
            );
        }
        let ok15 = ok("[g]\ninterface = abcdefghijklmno\nips = 192.0.2.1\n");
        assert_eq!(ok15.groups[0].interface.len(), 15);
        assert_err(
            "[a b]\ninterface = e0\nips = 192.0.2.1\n",
            "etc/x.cfg:1: [a b]: invalid group name: use only letters, digits, '-', '_' and '.'",
        );
        assert_err(
            "[1@igb0]\ninterface = e0\nips = 192.0.2.1\n",
            "etc/x.cfg:1: [1@igb0]: invalid group name: use only letters, digits, '-', '_' and '.'",
        );
    }

    #[test]
    fn syntax_errors_and_empty_files() {
        assert_err(
            "",
            "etc/x.cfg:1: no group sections (a group is a [name] section with \
                        'interface' and 'ips'; [ipfail] and [DEFAULT] are not groups)",
        );
        assert_eq!(err("# only\n# comments\n\n").line(), Some(3));
        assert_eq!(err("[ipfail]\ngarp_count = 2\n").line(), Some(2));
        assert_err(
            "interface = igb1\n",
            "etc/x.cfg:1: 'interface = igb1' comes before the first [section] header",
        );
        assert_err(
            &format!("{HEAD}[carp1]\n"),
            "etc/x.cfg:4: section [carp1] appears twice (first at line 1)",
        );
        assert_err(
            &format!("{HEAD}Interface = igb2\n"),
            "etc/x.cfg:4: key 'interface' appears twice in [carp1] (first at line 2)",
        );
        assert_err(
            &format!("{HEAD}vhid 1\n"),
            "etc/x.cfg:4: expected '[section]' or 'key = value', found 'vhid 1'",
        );
    }

    #[test]
    fn seconds_format_round_trip() {
        for (text, ms) in [
            ("0.3", 300),
            ("1", 1000),
            ("0.05", 50),
            ("10", 10_000),
            ("2.5", 2500),
        ] {
            assert_eq!(parse_seconds(text), Some(Ok(Duration::from_millis(ms))));
            assert_eq!(fmt_seconds(Duration::from_millis(ms)), text);
        }
        assert_eq!(parse_seconds("1."), Some(Ok(Duration::from_secs(1))));
        assert_eq!(parse_seconds("."), None);
        assert_eq!(parse_seconds("nan"), None);
        assert_eq!(parse_seconds("inf"), None);
        assert_eq!(fmt_seconds(Duration::ZERO), "0");
    }
}

#[cfg(test)]
mod health_tests {
    use super::super::{parse, ConfigError};
    use super::*;

    const WEB: &str = "[web]\ninterface = eth0\nips = 192.0.2.10\nvhid = 1\n";

    fn ok(text: &str) -> Config {
        parse(text, Path::new("x.cfg")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn err(text: &str) -> ConfigError {
        match parse(text, Path::new("etc/x.cfg")) {
            Ok(cfg) => panic!("accepted: {cfg:?}\n{text}"),
            Err(e) => e,
        }
    }

    fn health(cfg: &Config, group: usize) -> Health {
        cfg.groups[group]
            .carp
            .as_ref()
            .and_then(|c| c.health.clone())
            .unwrap_or_else(|| panic!("no health: {cfg:?}"))
    }

    fn kinds(h: &Health) -> Vec<(String, usize)> {
        h.checks
            .iter()
            .map(|c| (c.kind.describe(), c.line))
            .collect()
    }

    fn kind(line: &str) -> CheckKind {
        let cfg = ok(&format!("{WEB}check = {line}\n"));
        let h = health(&cfg, 0);
        assert_eq!(h.checks.len(), 1);
        h.checks[0].kind.clone()
    }

    fn check_err(line: &str) -> String {
        err(&format!("{WEB}check = {line}\n")).to_string()
    }

    #[test]
    fn the_issue_example_parses_with_lines_and_defaults() {
        let cfg = ok(&format!(
            "{WEB}check : http http://127.0.0.1/health\n        tcp 127.0.0.1:443\n\
             \x20       # a comment\n        exec /usr/local/bin/check-php-fpm --quick\n\
             notify = /usr/local/sbin/on-ipfail-change up  now\n"
        ));
        let h = health(&cfg, 0);
        assert_eq!(
            kinds(&h),
            [
                ("http http://127.0.0.1:80/health".to_string(), 5),
                ("tcp 127.0.0.1:443".to_string(), 6),
                ("exec /usr/local/bin/check-php-fpm --quick".to_string(), 8),
            ]
        );
        assert_eq!(
            (h.interval, h.timeout, h.fall, h.rise),
            (
                health::DEFAULT_INTERVAL,
                health::DEFAULT_TIMEOUT,
                health::DEFAULT_FALL,
                health::DEFAULT_RISE
            )
        );
        let carp = cfg.groups[0]
            .carp
            .clone()
            .unwrap_or_else(|| panic!("no carp"));
        assert_eq!(
            carp.notify,
            Some(vec![
                "/usr/local/sbin/on-ipfail-change".to_string(),
                "up".into(),
                "now".into()
            ])
        );
        assert_eq!(cfg.lines_of("web").and_then(|l| l.notify), Some(9));
        // Without check and notify: always healthy, nothing to run.
        let cfg = ok(WEB);
        let carp = cfg.groups[0]
            .carp
            .clone()
            .unwrap_or_else(|| panic!("no carp"));
        assert_eq!((carp.health, carp.notify), (None, None));
        assert_eq!(cfg.lines_of("web").and_then(|l| l.notify), None);
    }

    #[test]
    fn tuning_keys() {
        let cfg = ok(&format!(
            "{WEB}check = tcp db:5432\ncheck_interval = 2.5\ncheck_timeout = .25\n\
             check_fall = 1\ncheck_rise = 100\n"
        ));
        let h = health(&cfg, 0);
        assert_eq!(h.interval, Duration::from_millis(2500));
        assert_eq!(h.timeout, Duration::from_millis(250));
        assert_eq!((h.fall, h.rise), (1, 100));
        let cases = [
            ("check_fall = 0", 6, "key 'check_fall' in [web]: 0 is out of range (allowed 1..=100)"),
            ("check_rise = 0", 6, "key 'check_rise' in [web]: 0 is out of range (allowed 1..=100)"),
            ("check_rise = x", 6, "key 'check_rise' in [web]: 'x' is not a whole number (allowed 1..=100)"),
            ("check_timeout = 0", 6,
             "key 'check_timeout' in [web]: 0 is out of range (allowed 0.01..=600)"),
            ("check_interval = -1", 6,
             "key 'check_interval' in [web]: -1 is out of range (allowed 0.05..=3600)"),
            ("check_interval = 1s", 6,
             "key 'check_interval' in [web]: '1s' is not a number of seconds (allowed 0.05..=3600, e.g. 0.5)"),
            // The default timeout is 0.5 s.
            ("check_interval = 0.5", 6,
             "key 'check_interval' in [web]: check_interval (0.5 s) must be longer than \
              check_timeout (0.5 s): a check is given up at the timeout before the next one starts"),
            ("check_timeout = 2", 6,
             "key 'check_timeout' in [web]: check_interval (1 s) must be longer than \
              check_timeout (2 s): a check is given up at the timeout before the next one starts"),
            // Both set: the one written last is blamed.
            ("check_timeout = 3\ncheck_interval = 2", 7,
             "key 'check_interval' in [web]: check_interval (2 s) must be longer than \
              check_timeout (3 s): a check is given up at the timeout before the next one starts"),
        ];
        for (body, line, expected) in cases {
            assert_eq!(
                err(&format!("{WEB}check = tcp 127.0.0.1:80\n{body}\n")).to_string(),
                format!("etc/x.cfg:{line}: {expected}")
            );
        }
    }

    #[test]
    fn tcp_forms() {
        let tcp = |host: &str, port| CheckKind::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(kind("tcp 127.0.0.1:443"), tcp("127.0.0.1", 443));
        assert_eq!(kind("tcp db.example.com:5432"), tcp("db.example.com", 5432));
        assert_eq!(kind("tcp localhost:1"), tcp("localhost", 1));
        assert_eq!(kind("tcp [::1]:65535"), tcp("::1", 65535));
        assert_eq!(kind("tcp [::1]:80").describe(), "tcp [::1]:80");
        for (line, why) in [
            ("tcp 127.0.0.1", "the port is missing (HOST:PORT)"),
            ("tcp 127.0.0.1:", "'' is not a port (1..=65535)"),
            ("tcp 127.0.0.1:0", "'0' is not a port (1..=65535)"),
            ("tcp 127.0.0.1:65536", "'65536' is not a port (1..=65535)"),
            ("tcp 127.0.0.1:+80", "'+80' is not a port (1..=65535)"),
            ("tcp :80", "the host is missing"),
            ("tcp ::1:80", "write an IPv6 address as [addr]:port"),
            ("tcp [::1:80", "'[' without ']' (write an IPv6 address as [addr]:port)"),
            ("tcp [::1]", "the port is missing (HOST:PORT)"),
            ("tcp [::1]x:80", "unexpected 'x:80' after ']'"),
            ("tcp [127.0.0.1]:80", "'127.0.0.1' in brackets is not an IPv6 address"),
            ("tcp 192.0.2.300:80",
             "'192.0.2.300' is not an IP address or a host name: not a valid IPv4 address"),
            ("tcp db_1:80",
             "'db_1' is not an IP address or a host name: use only letters, digits, '-' and '.'"),
            ("tcp a..b:80",
             "'a..b' is not an IP address or a host name: a label is empty or longer than 63 bytes"),
            ("tcp -db:80",
             "'-db' is not an IP address or a host name: a label starts or ends with '-'"),
            ("tcp", "tcp needs HOST:PORT"),
            ("tcp a:1 b:2", "tcp takes one argument, HOST:PORT"),
        ] {
            let text = shown(line);
            assert_eq!(
                check_err(line),
                format!("etc/x.cfg:5: key 'check' in [web]: '{text}': {why}")
            );
        }
    }

    #[test]
    fn http_forms() {
        let http = |host: &str, port, path: &str| CheckKind::Http {
            host: host.into(),
            port,
            path: path.into(),
        };
        assert_eq!(
            kind("http http://127.0.0.1/health"),
            http("127.0.0.1", 80, "/health")
        );
        assert_eq!(kind("http http://127.0.0.1"), http("127.0.0.1", 80, "/"));
        assert_eq!(
            kind("http HTTP://web.local:8080/"),
            http("web.local", 8080, "/")
        );
        assert_eq!(
            kind("http http://[::1]:81/a?b=c"),
            http("::1", 81, "/a?b=c")
        );
        assert_eq!(kind("http http://[::1]"), http("::1", 80, "/"));
        assert_eq!(kind("http http://h?x=1"), http("h", 80, "/?x=1"));
        for (line, why) in [
            (
                "http https://127.0.0.1/health",
                "https is not supported, only http:// (check a TLS port with tcp HOST:443)",
            ),
            ("http ftp://127.0.0.1/", "not an http:// URL"),
            ("http 127.0.0.1/health", "not an http:// URL"),
            (
                "http http://user:pw@127.0.0.1/",
                "user info (user@) is not supported in the URL",
            ),
            ("http http:///health", "the host is missing"),
            ("http http://127.0.0.1:0/", "'0' is not a port (1..=65535)"),
            (
                "http http://h/#top",
                "a fragment (#...) is never sent; remove it",
            ),
            ("http", "http needs a URL (http://HOST[:PORT]/PATH)"),
            (
                "http http://a/ http://b/",
                "http takes one argument, a URL (http://HOST[:PORT]/PATH)",
            ),
        ] {
            let text = shown(line);
            assert_eq!(
                check_err(line),
                format!("etc/x.cfg:5: key 'check' in [web]: '{text}': {why}")
            );
        }
    }

    #[test]
    fn exec_forms_and_unknown_kinds() {
        assert_eq!(
            kind("exec /usr/bin/pgrep  -x\tnginx"),
            CheckKind::Exec {
                argv: vec!["/usr/bin/pgrep".into(), "-x".into(), "nginx".into()]
            }
        );
        for (line, why) in [
            ("exec pgrep nginx", "the program 'pgrep' must be an absolute path"),
            ("exec", "the program is missing (an absolute path)"),
            ("exec /bin/x a\u{0}b", "contains a NUL byte"),
            ("ping 127.0.0.1",
             "unknown kind of check 'ping' (known: tcp HOST:PORT, http URL, exec PATH [ARGS])"),
            ("TCP 127.0.0.1:80",
             "unknown kind of check 'TCP' (known: tcp HOST:PORT, http URL, exec PATH [ARGS])"),
            ("http://127.0.0.1/",
             "unknown kind of check 'http://127.0.0.1/' (known: tcp HOST:PORT, http URL, exec PATH [ARGS])"),
        ] {
            let text = shown(line);
            assert_eq!(
                check_err(line),
                format!("etc/x.cfg:5: key 'check' in [web]: '{text}': {why}")
            );
        }
        // The line of the bad check, not of the key.
        assert_eq!(
            err(&format!("{WEB}check : tcp a:1\n  tcp b:2\n  bogus\n")).to_string(),
            "etc/x.cfg:7: key 'check' in [web]: 'bogus': unknown kind of check 'bogus' \
             (known: tcp HOST:PORT, http URL, exec PATH [ARGS])"
        );
        assert_eq!(
            err(&format!("{WEB}check =\n")).to_string(),
            "etc/x.cfg:5: key 'check' in [web]: lists no check \
             (one per line: tcp HOST:PORT, http URL, exec PATH [ARGS])"
        );
    }

    #[test]
    fn notify_forms() {
        for (body, expected) in [
            ("notify = on-change", "key 'notify' in [web]: 'on-change': the program 'on-change' must be an absolute path"),
            ("notify =", "key 'notify' in [web]: the value is empty"),
        ] {
            assert_eq!(
                err(&format!("{WEB}{body}\n")).to_string(),
                format!("etc/x.cfg:5: {expected}")
            );
        }
        assert_eq!(
            err(&format!("{WEB}notify = /bin/a\n  b\n")).to_string(),
            "etc/x.cfg:6: key 'notify' in [web]: takes one value but continues on this line \
             with 'b' (remove the indentation if that is a key of its own)"
        );
    }

    #[test]
    fn tuning_without_check() {
        for key in CHECK_TUNING_KEYS {
            assert_eq!(
                err(&format!("{WEB}{key} = 1\n")).to_string(),
                format!(
                    "etc/x.cfg:5: key '{key}' in [web] does nothing without 'check' in the same \
                     group (add checks or remove the key)"
                )
            );
        }
        // From [DEFAULT]: ignored by a group without check, but an error if
        // no group has one.
        let cfg = ok(&format!(
            "[DEFAULT]\ncheck_fall = 5\n{WEB}check = tcp 127.0.0.1:80\n\
             [mail]\ninterface = eth0\nips = 192.0.2.20\nvhid = 2\n"
        ));
        assert_eq!(health(&cfg, 0).fall, 5);
        assert_eq!(
            cfg.groups[1].carp.as_ref().map(|c| c.health.is_none()),
            Some(true)
        );
        assert_eq!(
            err(&format!("[DEFAULT]\ncheck_fall = 5\n{WEB}")).to_string(),
            "etc/x.cfg:2: key 'check_fall' in [DEFAULT] does nothing: no group has 'check' \
             (add checks or remove the key)"
        );
    }

    #[test]
    fn default_inheritance_and_sections_without_vhid() {
        let cfg = ok(
            "[DEFAULT]\ninterface = eth0\ncheck : tcp 127.0.0.1:443\n  http http://127.0.0.1/\n\
             check_interval = 2\nnotify = /bin/logger ipfail\n\
             [web]\nips = 192.0.2.10\nvhid = 1\n\
             [mail]\nips = 192.0.2.20\nvhid = 2\ncheck = tcp 127.0.0.1:25\ncheck_rise = 4\n\
             [hook]\nips = 192.0.2.30\n",
        );
        let web = health(&cfg, 0);
        assert_eq!(
            kinds(&web),
            [
                ("tcp 127.0.0.1:443".to_string(), 3),
                ("http http://127.0.0.1:80/".to_string(), 4)
            ]
        );
        assert_eq!(web.interval, Duration::from_secs(2));
        let mail = health(&cfg, 1);
        assert_eq!(kinds(&mail), [("tcp 127.0.0.1:25".to_string(), 13)]);
        assert_eq!((mail.interval, mail.rise), (Duration::from_secs(2), 4));
        assert_eq!(cfg.lines_of("mail").and_then(|l| l.notify), Some(6));
        let notify = cfg.groups[1].carp.as_ref().and_then(|c| c.notify.clone());
        assert_eq!(notify, Some(vec!["/bin/logger".into(), "ipfail".into()]));
        // Inherited daemon keys are ignored without vhid.
        assert!(cfg.groups[2].carp.is_none());
        assert_eq!(cfg.lines_of("hook").and_then(|l| l.notify), None);
        // A bad inherited check names [DEFAULT] and its line.
        assert_eq!(
            err(&format!("[DEFAULT]\ncheck = tcp x\n{WEB}")).to_string(),
            "etc/x.cfg:2: key 'check' in [DEFAULT] (inherited by [web]): 'tcp x': \
             the port is missing (HOST:PORT)"
        );
        // Set in a section without vhid: an error like the other daemon keys.
        for body in [
            "check = tcp 127.0.0.1:80",
            "notify = /bin/true",
            "check_rise = 2",
        ] {
            let key = body.split(' ').next().unwrap_or_default();
            assert_eq!(
                err(&format!(
                    "[hook]\ninterface = eth0\nips = 192.0.2.1\n{body}\n"
                ))
                .to_string(),
                format!(
                    "etc/x.cfg:4: key '{key}' in [hook] needs 'vhid' (a section without vhid \
                     runs no CARP and is only used by 'ipfail hook'; add vhid or remove the key)"
                )
            );
        }
    }

    #[test]
    fn the_readme_nginx_example_parses() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("For nginx in front of PHP-FPM")
            .nth(1)
            .and_then(|rest| rest.split("```ini\n").nth(1))
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_else(|| panic!("no nginx example in the README"));
        let h = health(&ok(block), 0);
        assert_eq!(
            kinds(&h),
            [
                ("http http://127.0.0.1:80/health".to_string(), 6),
                ("tcp 127.0.0.1:443".to_string(), 7)
            ]
        );
        assert_eq!((h.fall, h.rise), (3, 2));
    }

    #[test]
    fn never_panics_on_odd_checks() {
        for line in [
            "tcp [",
            "tcp []:1",
            "tcp [:1",
            "tcp ]:1",
            "http http://",
            "http http://[",
            "http http://:",
            "http http://a:99999999999999999999/",
            "exec /",
            "tcp é:1",
            "http http://é/",
            "tcp 1.2.3.4.5:1",
            "http http://[::1]:/",
            "tcp a:1:2",
            "http ://",
            "http :",
        ] {
            let _ = parse(&format!("{WEB}check = {line}\n"), Path::new("x.cfg"));
        }
    }
}
