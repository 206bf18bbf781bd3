//! Who still answers for a group's IPs, and what to tell the operator
//! (docs/design.md §6.13, "The pingable zombie"). Pure: the IP task and
//! the status snapshot feed it what they saw.
//!
//! - [`CarpPeers`]: the CARP speakers heard on an interface (any vhid,
//!   authentic or not) and when, kept by the election loop;
//! - [`Diagnosis`]: for one conflicting IP, the answering MAC, whether it
//!   belongs to a CARP peer (resolved by the IP task with an ARP probe of
//!   the peers' source addresses, or a CARP/VRRP virtual MAC) and the
//!   advice in words;
//! - [`ConflictLog`]: one log line per group while IPs stay in conflict,
//!   again only when the set changes (at most every [`CHANGE_GAP`]) or
//!   every [`REPEAT_EVERY`]: a zombie must not fill the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The most CARP speakers remembered per interface (forged sources must
/// not grow the table without end); the oldest goes first.
pub const MAX_PEERS: usize = 64;
/// A changed conflict set is logged at most this often.
pub const CHANGE_GAP: Duration = Duration::from_secs(10);
/// An unchanged conflict set is logged again this often.
pub const REPEAT_EVERY: Duration = Duration::from_secs(300);
/// How many IPs a conflict log line names.
const NAMED: usize = 3;

/// A CARP speaker heard on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSeen {
    pub vhids: BTreeSet<u8>,
    pub last: Instant,
    pub adverts: u64,
}

/// The CARP speakers heard on one interface, by advert source address.
#[derive(Clone, Debug, Default)]
pub struct CarpPeers {
    peers: BTreeMap<IpAddr, PeerSeen>,
}

impl CarpPeers {
    /// Records an advert (valid or not) for `vhid` from `src`. Returns
    /// true when `src` is new (the IP task's list of addresses changes).
    pub fn heard(&mut self, now: Instant, src: IpAddr, vhid: u8) -> bool {
        if let Some(p) = self.peers.get_mut(&src) {
            p.vhids.insert(vhid);
            p.last = now;
            p.adverts += 1;
            return false;
        }
        if self.peers.len() >= MAX_PEERS {
            let oldest = self
                .peers
                .iter()
                .min_by_key(|(_, p)| p.last)
                .map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                self.peers.remove(&ip);
            }
        }
        self.peers.insert(
            src,
            PeerSeen {
                vhids: BTreeSet::from([vhid]),
                last: now,
                adverts: 1,
            },
        );
        true
    }

    pub fn get(&self, src: &IpAddr) -> Option<&PeerSeen> {
        self.peers.get(src)
    }

    pub fn addresses(&self) -> Vec<IpAddr> {
        self.peers.keys().copied().collect()
    }

    /// The peers that advertise `vhid` (who may own its virtual MAC).
    pub fn with_vhid(&self, vhid: u8) -> Vec<(IpAddr, &PeerSeen)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.vhids.contains(&vhid))
            .map(|(ip, p)| (*ip, p))
            .collect()
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The vhid of a CARP / VRRP virtual MAC (`00:00:5e:00:01:<vhid>` for IPv4,
/// `00:00:5e:00:02:<vhid>` for IPv6 VRRP; RFC 5798 §7.3, FreeBSD CARP uses
/// the first for both families: docs/design.md §4.7): the answer comes
/// from a kernel CARP or VRRP master, not from a plain host.
pub fn virtual_vhid(mac: &[u8; 6]) -> Option<u8> {
    match mac {
        [0x00, 0x00, 0x5e, 0x00, 0x01 | 0x02, vhid] => Some(*vhid),
        _ => None,
    }
}

/// What is known about the host answering for one of our IPs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answerer {
    /// `None` when only ping answered (no link-layer address seen).
    pub mac: Option<[u8; 6]>,
    /// Its own address, when known (the CARP peer's advert source, an ARP
    /// table entry, or the source of the echo reply).
    pub ip: Option<IpAddr>,
    /// The CARP peer whose MAC this is (ARP probe of the peers' sources).
    pub peer: Option<IpAddr>,
}

/// The verdict on one conflicting IP, for `status` and the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    /// `"carp_peer"`, `"silent_carp_peer"`, `"virtual_mac"` or `"not_a_peer"`.
    pub kind: &'static str,
    /// The CARP peer: its address, vhids and seconds since its last advert.
    pub peer: Option<(IpAddr, Vec<u8>, f64)>,
    pub advice: String,
}

/// Judges one conflict: `answerer` of `ip` for group `group` (vhid
/// `vhid`), with the peers heard on the CARP interface; a peer silent
/// longer than `master_down` no longer speaks CARP for any group.
pub fn diagnose(
    group: &str,
    vhid: u8,
    ip: IpAddr,
    answerer: &Answerer,
    peers: &CarpPeers,
    now: Instant,
    master_down: Duration,
) -> Diagnosis {
    let force = format!(
        "if that host is confirmed dead to its service, take the IP anyway with \
         `ipfail takeover {group} --despite-answers`"
    );
    let age = |p: &PeerSeen| now.saturating_duration_since(p.last).as_secs_f64();
    let peer_of = |src: IpAddr| {
        peers
            .get(&src)
            .map(|p| (src, p.vhids.iter().copied().collect::<Vec<_>>(), age(p)))
    };
    let virtual_vhid = answerer.mac.as_ref().and_then(virtual_vhid);
    let peer = answerer.peer.and_then(peer_of).or_else(|| {
        virtual_vhid.and_then(|v| {
            peers
                .with_vhid(v)
                .into_iter()
                .min_by(|a, b| a.1.last.cmp(&b.1.last).reverse())
                .map(|(src, p)| (src, p.vhids.iter().copied().collect(), age(p)))
        })
    });
    match (&peer, virtual_vhid) {
        (Some((src, vhids, secs)), _) if Duration::from_secs_f64(*secs) <= master_down => {
            let same = vhids.contains(&vhid);
            Diagnosis {
                kind: "carp_peer",
                advice: if same {
                    format!(
                        "{src} is a live CARP peer of vhid {vhid} (last advert {secs:.1} s ago) \
                         yet still answers for {ip}: it should release it on hearing our \
                         adverts; check its logs and its pass/advskew; it is not a zombie"
                    )
                } else {
                    format!(
                        "{src} speaks CARP on this link for vhid {} (last advert {secs:.1} s ago), \
                         not for {vhid}, and answers for {ip}: {ip} is configured on two \
                         groups or two hosts; remove it there",
                        join(vhids)
                    )
                },
                peer,
            }
        }
        (Some((src, _, secs)), _) => Diagnosis {
            kind: "silent_carp_peer",
            advice: format!(
                "{src} was a CARP peer but has sent no advert for {secs:.1} s and still \
                 answers for {ip}: its CARP daemon died and left the address behind (a \
                 zombie); remove {ip} there (`ip addr del`) or stop that host; {force}"
            ),
            peer,
        },
        (None, Some(v)) => Diagnosis {
            kind: "virtual_mac",
            advice: format!(
                "answers with the CARP/VRRP virtual MAC of vhid {v}, but no CARP advert for \
                 it was heard here: a kernel CARP or VRRP host whose adverts do not reach \
                 this host (firewall on protocol 112, another VLAN?); fix that first; {force}"
            ),
            peer: None,
        },
        (None, None) => Diagnosis {
            kind: "not_a_peer",
            advice: format!(
                "the answering host is not a CARP peer heard on this link (an old \
                 ip_manager setup, or a static address?): remove {ip} there \
                 (`ip addr del {ip} dev ...`); {force}"
            ),
            peer: None,
        },
    }
}

fn join(v: &[u8]) -> String {
    v.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")
}

/// Rate limit of a group's conflict log lines.
#[derive(Debug, Default)]
pub struct ConflictLog {
    logged: BTreeMap<IpAddr, String>,
    at: Option<Instant>,
    /// Probes with conflicts since the last line (for the count it prints).
    rounds: u64,
}

/// A line to log: a warning while conflicts last, info when they end.
#[derive(Debug, PartialEq, Eq)]
pub enum ConflictLine {
    Warn(String),
    Cleared(String),
}

impl ConflictLog {
    /// The group's conflicts now (IP → who answered). Returns the line to
    /// log, if one is due.
    pub fn observe(
        &mut self,
        now: Instant,
        current: &BTreeMap<IpAddr, String>,
    ) -> Option<ConflictLine> {
        if current.is_empty() {
            if self.logged.is_empty() {
                return None;
            }
            let n = self.logged.len();
            self.logged.clear();
            self.at = None;
            self.rounds = 0;
            return Some(ConflictLine::Cleared(format!(
                "no IP in conflict any more (there were {n})"
            )));
        }
        self.rounds += 1;
        let since = self.at.map(|t| now.saturating_duration_since(t));
        let changed = *current != self.logged;
        let due = match since {
            None => true,
            Some(s) => (changed && s >= CHANGE_GAP) || s >= REPEAT_EVERY,
        };
        if !due {
            return None;
        }
        let named: Vec<String> = current
            .iter()
            .take(NAMED)
            .map(|(ip, who)| format!("{ip} ({who})"))
            .collect();
        let more = current.len().saturating_sub(NAMED);
        let mut line = format!(
            "{} IP(s) in conflict, not taken: {}",
            current.len(),
            named.join(", ")
        );
        if more > 0 {
            line.push_str(&format!(" and {more} more"));
        }
        if let Some(s) = since {
            line.push_str(&format!(
                "; {} probe round(s) with conflicts in the last {:.0} s",
                self.rounds - 1,
                s.as_secs_f64()
            ));
        }
        line.push_str(
            "; re-probing (logged again when the set changes or every 5 min; \
             `ipfail status` says who answers and what to do)",
        );
        self.logged = current.clone();
        self.at = Some(now);
        self.rounds = 1;
        Some(ConflictLine::Warn(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    fn peer_ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn conflicts(ips: &[u8]) -> BTreeMap<IpAddr, String> {
        ips.iter()
            .map(|l| (ip(*l), "answered ARP from 02:00:00:00:00:09".to_string()))
            .collect()
    }

    #[test]
    fn many_conflicting_ips_log_one_line_until_the_set_changes() {
        let t0 = Instant::now();
        let mut log = ConflictLog::default();
        let all: Vec<u8> = (1..=200).collect();
        let mut lines = Vec::new();
        // 8.6 s of re-probes every 300 ms: one line.
        for i in 0..30u32 {
            let now = t0 + Duration::from_millis(300) * i;
            lines.extend(log.observe(now, &conflicts(&all)));
        }
        assert_eq!(lines.len(), 1, "{lines:?}");
        let ConflictLine::Warn(first) = &lines[0] else {
            panic!("{lines:?}")
        };
        assert!(
            first.starts_with("200 IP(s) in conflict, not taken: 203.0.113.1 (answered ARP"),
            "{first}"
        );
        assert!(first.contains("and 197 more"), "{first}");
        // The set changes: logged, but not before CHANGE_GAP.
        let t1 = t0 + Duration::from_secs(9);
        assert_eq!(log.observe(t1, &conflicts(&all[1..])), None);
        let Some(ConflictLine::Warn(changed)) = log.observe(t0 + CHANGE_GAP, &conflicts(&all[1..]))
        else {
            panic!("a changed set is logged after the gap")
        };
        assert!(changed.starts_with("199 IP(s)"), "{changed}");
        // Unchanged: again only after REPEAT_EVERY.
        let t2 = t0 + CHANGE_GAP;
        assert_eq!(
            log.observe(t2 + REPEAT_EVERY / 2, &conflicts(&all[1..])),
            None
        );
        assert!(matches!(
            log.observe(t2 + REPEAT_EVERY, &conflicts(&all[1..])),
            Some(ConflictLine::Warn(_))
        ));
        // Cleared: one info line, then silence.
        let t3 = t2 + REPEAT_EVERY + Duration::from_secs(1);
        assert_eq!(
            log.observe(t3, &BTreeMap::new()),
            Some(ConflictLine::Cleared(
                "no IP in conflict any more (there were 199)".into()
            ))
        );
        assert_eq!(log.observe(t3, &BTreeMap::new()), None);
        // A new conflict after that is logged at once.
        assert!(log.observe(t3, &conflicts(&[5])).is_some());
    }

    #[test]
    fn the_peer_table_is_bounded_and_forgets_the_oldest() {
        let t0 = Instant::now();
        let mut peers = CarpPeers::default();
        assert!(peers.heard(t0, peer_ip(1), 7));
        assert!(!peers.heard(t0, peer_ip(1), 8));
        for i in 0..MAX_PEERS as u32 {
            let src = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
            peers.heard(t0 + Duration::from_millis(u64::from(i) + 1), src, 1);
        }
        assert_eq!(peers.addresses().len(), MAX_PEERS);
        assert!(peers.get(&peer_ip(1)).is_none(), "the oldest went");
    }

    #[test]
    fn a_conflict_is_told_apart_by_who_answers() {
        let t0 = Instant::now();
        let down = Duration::from_millis(3039);
        let mut peers = CarpPeers::default();
        peers.heard(t0, peer_ip(2), 10);
        peers.heard(t0, peer_ip(3), 20);
        let now = t0 + Duration::from_secs(1);
        let mac = Some([2, 0, 0, 0, 0, 9]);
        let plain = Answerer {
            mac,
            ip: None,
            peer: None,
        };
        let d = diagnose("web", 10, ip(10), &plain, &peers, now, down);
        assert_eq!(d.kind, "not_a_peer");
        assert!(
            d.advice.contains("not a CARP peer heard on this link"),
            "{}",
            d.advice
        );
        assert!(d.advice.contains("ipfail takeover web --despite-answers"));

        let live = Answerer {
            peer: Some(peer_ip(2)),
            ..plain.clone()
        };
        let d = diagnose("web", 10, ip(10), &live, &peers, now, down);
        assert_eq!(d.kind, "carp_peer");
        assert_eq!(d.peer, Some((peer_ip(2), vec![10], 1.0)));
        assert!(d.advice.contains("not a zombie"), "{}", d.advice);

        let other_group = Answerer {
            peer: Some(peer_ip(3)),
            ..plain.clone()
        };
        let d = diagnose("web", 10, ip(10), &other_group, &peers, now, down);
        assert!(d.advice.contains("for vhid 20"), "{}", d.advice);

        let later = t0 + Duration::from_secs(42);
        let d = diagnose("web", 10, ip(10), &live, &peers, later, down);
        assert_eq!(d.kind, "silent_carp_peer");
        assert!(d.advice.contains("no advert for 42.0 s"), "{}", d.advice);

        let vmac = Answerer {
            mac: Some([0, 0, 0x5e, 0, 1, 10]),
            ip: None,
            peer: None,
        };
        let d = diagnose("web", 10, ip(10), &vmac, &peers, now, down);
        assert_eq!(d.kind, "carp_peer", "the peer advertising vhid 10 owns it");
        let vmac_unknown = Answerer {
            mac: Some([0, 0, 0x5e, 0, 1, 99]),
            ..vmac
        };
        let d = diagnose("web", 10, ip(10), &vmac_unknown, &peers, now, down);
        assert_eq!(d.kind, "virtual_mac");
    }

    #[test]
    fn virtual_macs_and_mac_text() {
        assert_eq!(virtual_vhid(&[0, 0, 0x5e, 0, 1, 42]), Some(42));
        assert_eq!(virtual_vhid(&[0, 0, 0x5e, 0, 2, 7]), Some(7));
        assert_eq!(virtual_vhid(&[2, 0, 0x5e, 0, 1, 42]), None);
        assert_eq!(
            mac_text(&[0, 0x1b, 0x21, 0xa, 0xff, 1]),
            "00:1b:21:0a:ff:01"
        );
    }
}
