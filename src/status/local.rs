//! What `ipfail status` can tell without a daemon: for each configured
//! group, which of its IPs are on which interface of this host right now
//! (read through netlink, which needs no privilege).

use crate::config::{Config, IpNet};
use crate::sys::linux::{LinkInfo, Netlink};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::render::{fit, push_wrapped};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalGroup {
    pub name: String,
    pub vhid: Option<u8>,
    pub interface: String,
    pub ips: Vec<LocalIp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalIp {
    /// `addr/prefix` as configured.
    pub ip: String,
    /// Interfaces holding the address now (any prefix); empty if none.
    pub on: Vec<String>,
}

/// Reads the host's addresses and places every configured IP.
pub fn gather(cfg: &Config) -> Result<Vec<LocalGroup>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let netlink = Netlink::new().map_err(|e| e.to_string())?;
        let links = netlink.links().await.map_err(|e| e.to_string())?;
        let addrs = netlink.all_addrs().await.map_err(|e| e.to_string())?;
        Ok(locate(cfg, &links, &addrs))
    })
}

/// Places every configured IP among `addrs` (ifindex, address, prefix).
pub fn locate(cfg: &Config, links: &[LinkInfo], addrs: &[(u32, IpAddr, u8)]) -> Vec<LocalGroup> {
    let names: BTreeMap<u32, &str> = links.iter().map(|l| (l.index, l.name.as_str())).collect();
    let on = |net: &IpNet| -> Vec<String> {
        addrs
            .iter()
            .filter(|(_, a, _)| *a == net.addr)
            .map(|(i, _, prefix)| {
                let name = names
                    .get(i)
                    .map_or_else(|| format!("ifindex {i}"), |n| n.to_string());
                if *prefix == net.prefix {
                    name
                } else {
                    format!("{name} (as /{prefix})")
                }
            })
            .collect()
    };
    cfg.groups
        .iter()
        .map(|g| LocalGroup {
            name: g.name.clone(),
            vhid: g.vhid(),
            interface: g.interface.clone(),
            ips: g
                .ips
                .iter()
                .map(|net| LocalIp {
                    ip: net.to_string(),
                    on: on(net),
                })
                .collect(),
        })
        .collect()
}

/// One line per group, then where its IPs are; within [`WIDTH`] columns.
pub fn render(groups: &[LocalGroup]) -> String {
    let mut out = String::from("What this host holds right now:\n");
    for g in groups {
        let held = g.ips.iter().filter(|i| !i.on.is_empty()).count();
        let vhid = g
            .vhid
            .map_or_else(|| "no vhid".to_string(), |v| format!("vhid {v}"));
        let _ = writeln!(
            out,
            "{}",
            fit(&format!(
                "{} ({vhid}, interface {}): {held}/{} IPs here",
                g.name,
                g.interface,
                g.ips.len()
            ))
        );
        // Group the IPs by where they are: "on eth0", "not on this host".
        let mut by_place: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ip in &g.ips {
            let place = if ip.on.is_empty() {
                "not on this host".to_string()
            } else {
                format!("on {}", ip.on.join(" and "))
            };
            let text = ip
                .ip
                .strip_suffix("/32")
                .or_else(|| ip.ip.strip_suffix("/128"))
                .unwrap_or(&ip.ip)
                .to_string();
            by_place.entry(place).or_default().push(text);
        }
        for (place, ips) in by_place {
            push_wrapped(&mut out, &format!("  {place}: "), &ips);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn link(index: u32, name: &str) -> LinkInfo {
        LinkInfo {
            index,
            name: name.into(),
            mac: None,
            up: true,
            running: true,
        }
    }

    #[test]
    fn places_each_ip_on_the_interfaces_that_hold_it() {
        let cfg = crate::config::parse(
            "[web]\ninterface = eth0\nvhid = 10\nips = 203.0.113.10 203.0.113.11 203.0.113.12/24\n\
             [old]\ninterface = eth1\nips = 2001:db8::5\n",
            Path::new("t.cfg"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        let addrs = [
            (2, ip("192.0.2.1"), 24),
            (2, ip("203.0.113.10"), 32),
            (3, ip("203.0.113.12"), 32),
            (9, ip("2001:db8::5"), 128),
        ];
        let groups = locate(&cfg, &[link(2, "eth0"), link(3, "eth1")], &addrs);
        let on: Vec<Vec<Vec<String>>> = groups
            .iter()
            .map(|g| g.ips.iter().map(|i| i.on.clone()).collect())
            .collect();
        assert_eq!(
            on,
            vec![
                vec![
                    vec!["eth0".to_string()],
                    vec![],
                    vec!["eth1 (as /32)".to_string()]
                ],
                vec![vec!["ifindex 9".to_string()]],
            ]
        );
        let text = render(&groups);
        assert_eq!(
            text,
            "What this host holds right now:\n\
             web (vhid 10, interface eth0): 2/3 IPs here\n\
             \x20 not on this host: 203.0.113.11\n\
             \x20 on eth0: 203.0.113.10\n\
             \x20 on eth1 (as /32): 203.0.113.12/24\n\
             old (no vhid, interface eth1): 1/1 IPs here\n\
             \x20 on ifindex 9: 2001:db8::5\n"
        );
    }
}
