//! The human summary `ipfail check` prints: one row per group, then the
//! process-wide settings, within 100 columns.

use std::fmt::Write as _;

use super::validate::fmt_seconds;
use super::{Config, Group, IpNet};

const WIDTH: usize = 100;
const GAP: &str = "  ";

const HEADERS: [&str; 7] = [
    "GROUP",
    "INTERFACE",
    "VHID",
    "ADVBASE",
    "ADVSKEW",
    "PREEMPT",
    "PASS",
];

impl Config {
    /// A table of the groups and a summary of the `[ipfail]` settings.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let carp = self.carp_groups().count();
        let hook_only = self.groups.len() - carp;
        let _ = writeln!(
            out,
            "{}: {} group(s): {carp} with CARP (daemon), {hook_only} hook only",
            self.path.display(),
            self.groups.len()
        );

        let rows: Vec<[String; 7]> = self.groups.iter().map(columns).collect();
        let mut widths = HEADERS.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let ip_lists: Vec<Vec<String>> = self.groups.iter().map(ip_texts).collect();
        let widest_ip = ip_lists.iter().flatten().map(String::len).max();
        let ip_column = widths.iter().map(|w| w + GAP.len()).sum::<usize>();
        // Too little room for the widest address: all lists go on lines of
        // their own.
        let (ip_indent, inline) = if ip_column + widest_ip.unwrap_or(0) > WIDTH {
            (4, false)
        } else {
            (ip_column, true)
        };

        let header = pad_row(&HEADERS.map(String::from), &widths);
        let _ = if inline {
            writeln!(out, "{header}IPS")
        } else {
            writeln!(out, "{}", header.trim_end())
        };
        for ((group, row), ips) in self.groups.iter().zip(&rows).zip(&ip_lists) {
            let lines = wrap(ips, WIDTH.saturating_sub(ip_indent));
            let mut lines = lines.iter();
            let row_text = pad_row(row, &widths);
            if inline {
                let first = lines.next().map_or("", String::as_str);
                let _ = writeln!(out, "{}", format!("{row_text}{first}").trim_end());
            } else {
                let _ = writeln!(out, "{}", row_text.trim_end());
            }
            for line in lines {
                let _ = writeln!(out, "{:ip_indent$}{line}", "");
            }
            for line in wrap(&details(group), WIDTH - 4) {
                let _ = writeln!(out, "    {line}");
            }
            for line in health_lines(group) {
                let _ = writeln!(out, "{}", cut(&line, WIDTH));
            }
        }
        if hook_only > 0 {
            out.push_str("VHID '-': no CARP; the group is moved only by 'ipfail hook'\n");
        }

        let g = &self.global;
        match g.line {
            Some(line) => {
                let _ = writeln!(out, "settings from [ipfail] at line {line}:");
            }
            None => out.push_str("settings (no [ipfail] section, all defaults):\n"),
        }
        let group = g
            .control_group
            .as_ref()
            .map(|n| format!("control_group={n}"));
        let settings = [
            format!("control_socket={}", g.control_socket.display()),
            format!("state_dir={}", g.state_dir.display()),
            format!("probe_timeout={}s", fmt_seconds(g.probe_timeout)),
            format!("garp_count={}", g.garp_count),
            format!("garp_interval={}s", fmt_seconds(g.garp_interval)),
            format!("reprobe_interval={}s", fmt_seconds(g.reprobe_interval)),
        ];
        let metrics = g.metrics_listen.map(|a| format!("metrics_listen={a}"));
        let settings: Vec<String> = settings.into_iter().chain(group).chain(metrics).collect();
        for line in wrap(&settings, WIDTH - 2) {
            let _ = writeln!(out, "  {line}");
        }
        out
    }
}

/// The addresses as an operator writes them: host prefixes left out.
fn ip_texts(group: &Group) -> Vec<String> {
    let text = |n: &IpNet| match n.is_host() {
        true => n.addr.to_string(),
        false => n.to_string(),
    };
    group.ips.iter().map(text).collect()
}

fn columns(group: &Group) -> [String; 7] {
    let dash = || "-".to_string();
    let (vhid, advbase, advskew, preempt, pass) = match &group.carp {
        Some(c) => (
            c.vhid.to_string(),
            c.advbase.to_string(),
            c.advskew.to_string(),
            if c.preempt { "yes" } else { "no" }.to_string(),
            // Never the secret itself.
            if c.pass.is_empty() { "none" } else { "set" }.to_string(),
        ),
        None => (dash(), dash(), dash(), dash(), dash()),
    };
    [
        group.name.clone(),
        group.interface.clone(),
        vhid,
        advbase,
        advskew,
        preempt,
        pass,
    ]
}

/// CARP settings that differ from what the table implies.
fn details(group: &Group) -> Vec<String> {
    let Some(carp) = &group.carp else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if carp.carp_interface != group.interface {
        out.push(format!("carp_interface={}", carp.carp_interface));
    }
    if let Some(source) = carp.source {
        out.push(format!("source={source}"));
    }
    let ips: Vec<_> = group.ips.iter().map(|n| n.addr).collect();
    if carp.hmac_addrs != ips {
        out.push("hmac_addrs=".to_string());
        out.extend(carp.hmac_addrs.iter().map(ToString::to_string));
    }
    out
}

/// The group's checks with their timings, and its notify command.
fn health_lines(group: &Group) -> Vec<String> {
    let Some(carp) = &group.carp else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(h) = &carp.health {
        out.push(format!(
            "    checks every {}s, timeout {}s, fall {}, rise {} (unhealthy: advertises 255/255):",
            fmt_seconds(h.interval),
            fmt_seconds(h.timeout),
            h.fall,
            h.rise
        ));
        for check in &h.checks {
            out.push(format!(
                "      {} (line {})",
                check.kind.describe(),
                check.line
            ));
        }
    }
    if let Some(argv) = &carp.notify {
        out.push(format!("    notify: {}", argv.join(" ")));
    }
    out
}

/// `text` within `width` characters, ending in `...` if cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut short: String = text.chars().take(width.saturating_sub(3)).collect();
    short.push_str("...");
    short
}

fn pad_row(cells: &[String; 7], widths: &[usize; 7]) -> String {
    let mut row = String::new();
    for (cell, &width) in cells.iter().zip(widths) {
        let _ = write!(row, "{cell:<width$}{GAP}");
    }
    row
}

/// Greedy word wrap; a word wider than `width` gets a line of its own.
/// Words ending in `=` stay joined to the next word.
fn wrap(words: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in words {
        let glue = if current.is_empty() || current.ends_with('=') {
            ""
        } else {
            " "
        };
        if !current.is_empty()
            && !current.ends_with('=')
            && current.chars().count() + glue.len() + word.chars().count() > width
        {
            lines.push(std::mem::take(&mut current));
            current.push_str(word);
        } else {
            current.push_str(glue);
            current.push_str(word);
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        super::super::parse(text, Path::new("etc/x.cfg")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn legacy_table() {
        let cfg = config(
            "[carp1]\ninterface = igb1\nips : 208.43.48.2\n      208.43.48.3\n      208.43.48.4\n\
             [carp2]\ninterface = igb1\nips : 208.43.48.5\n      208.43.48.6\n",
        );
        let expected = "\
etc/x.cfg: 2 group(s): 0 with CARP (daemon), 2 hook only
GROUP  INTERFACE  VHID  ADVBASE  ADVSKEW  PREEMPT  PASS  IPS
carp1  igb1       -     -        -        -        -     208.43.48.2 208.43.48.3 208.43.48.4
carp2  igb1       -     -        -        -        -     208.43.48.5 208.43.48.6
VHID '-': no CARP; the group is moved only by 'ipfail hook'
settings (no [ipfail] section, all defaults):
  control_socket=/run/ipfail/ipfail.sock state_dir=/var/lib/ipfail probe_timeout=0.3s garp_count=3
  garp_interval=0.5s reprobe_interval=1s
";
        assert_eq!(cfg.describe(), expected);
    }

    #[test]
    fn carp_rows_details_and_wrapping() {
        let cfg = config(
            "[ipfail]\ngarp_count = 5\n\
             [web]\ninterface = igb1\nvhid = 10\nadvskew = 100\npreempt = no\npass = x\n\
             carp_interface = igb0\nsource = 192.0.2.1\nhmac_addrs = 192.0.2.200\n\
             ips = 203.0.113.1 203.0.113.2 203.0.113.3 203.0.113.4 203.0.113.5/24 203.0.113.6\n",
        );
        let text = cfg.describe();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "etc/x.cfg: 1 group(s): 1 with CARP (daemon), 0 hook only"
        );
        assert_eq!(
            lines[2],
            "web    igb1       10    1        100      no       set   \
             203.0.113.1 203.0.113.2 203.0.113.3"
        );
        assert_eq!(
            lines[3],
            format!("{:57}203.0.113.4 203.0.113.5/24 203.0.113.6", "")
        );
        assert_eq!(
            lines[4],
            "    carp_interface=igb0 source=192.0.2.1 hmac_addrs=192.0.2.200"
        );
        assert_eq!(lines[5], "settings from [ipfail] at line 1:");
        assert!(text.contains(" garp_count=5"), "{text}");
    }

    #[test]
    fn long_names_and_ipv6_stay_within_100_columns() {
        let name = "n".repeat(40);
        let ips: Vec<String> = (1..=40)
            .map(|i| format!("2001:db8:ffff:ffff:ffff:ffff:ffff:{i:x}"))
            .collect();
        let cfg = config(&format!(
            "[{name}]\ninterface = abcdefghijklmno\nvhid = 255\nips = {}\n\
             [short]\ninterface = e0\nips = 192.0.2.1\n",
            ips.join("\n  ")
        ));
        let text = cfg.describe();
        for line in text.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        // Every address is shown.
        let shown = text.matches("2001:db8:ffff:").count();
        assert_eq!(shown, 40, "{text}");
    }

    #[test]
    fn checks_and_notify_are_listed() {
        let long = format!("/usr/local/bin/{}", "x".repeat(120));
        let cfg = config(&format!(
            "[web]\ninterface = eth0\nvhid = 10\nips = 192.0.2.10\n\
             check : http http://127.0.0.1/health\n  tcp [::1]:443\n  exec {long} --quick\n\
             check_interval = 2\ncheck_rise = 3\nnotify = /usr/local/sbin/on-change now\n\
             [mail]\ninterface = eth0\nvhid = 11\nips = 192.0.2.20\n"
        ));
        let text = cfg.describe();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[3..8],
            [
                "    checks every 2s, timeout 0.5s, fall 3, rise 3 (unhealthy: advertises 255/255):",
                "      http http://127.0.0.1:80/health (line 5)",
                "      tcp [::1]:443 (line 6)",
                &format!("      exec {}...", &long[..86]),
                "    notify: /usr/local/sbin/on-change now",
            ],
            "{text}"
        );
        assert!(lines[8].starts_with("mail "), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
    }

    #[test]
    fn wrap_keeps_key_and_value_together() {
        let words: Vec<String> = ["a", "hmac_addrs=", "bbbb", "cc"]
            .map(String::from)
            .to_vec();
        assert_eq!(wrap(&words, 6), ["a", "hmac_addrs=bbbb", "cc"]);
        assert!(wrap(&[], 10).is_empty());
    }
}
