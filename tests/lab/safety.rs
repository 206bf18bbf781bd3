//! Address and name checks that keep lab traffic on documentation ranges.
//!
//! Every address the lab configures, routes or sends to must lie in
//! 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737) or 2001:db8::/32
//! (RFC 3849). A test that asks for anything else is a bug: we panic.

use std::net::{IpAddr, Ipv4Addr};

/// The IPv4 documentation networks (RFC 5737), all /24.
const V4_NETS: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];

/// True if `ip` is inside one of the documentation ranges.
pub fn is_lab_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            V4_NETS.iter().any(|net| o[..3] == net[..])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

/// Parses a bare address and panics unless it is a lab address.
pub fn lab_addr(text: &str) -> IpAddr {
    let ip: IpAddr = text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("lab: {text:?} is not an IP address: {e}"));
    assert!(
        is_lab_addr(ip),
        "lab: {ip} is outside 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32"
    );
    ip
}

/// Parses `ADDR/LEN` (LEN optional: host route) and panics unless the whole
/// network lies inside one documentation range.
pub fn lab_cidr(text: &str) -> (IpAddr, u8) {
    let (addr, len) = match text.trim().split_once('/') {
        Some((a, l)) => (
            a,
            Some(
                l.parse::<u8>()
                    .unwrap_or_else(|e| panic!("lab: bad prefix length in {text:?}: {e}")),
            ),
        ),
        None => (text.trim(), None),
    };
    let ip = lab_addr(addr);
    let (min, max) = match ip {
        IpAddr::V4(_) => (24, 32),
        IpAddr::V6(_) => (32, 128),
    };
    let len = len.unwrap_or(max);
    assert!(
        (min..=max).contains(&len),
        "lab: {text:?} must have a prefix length in {min}..={max} to stay inside the documentation range"
    );
    (ip, len)
}

/// Like [`lab_cidr`] but IPv4 only.
pub fn lab_cidr_v4(text: &str) -> (Ipv4Addr, u8) {
    match lab_cidr(text) {
        (IpAddr::V4(v4), len) => (v4, len),
        (IpAddr::V6(_), _) => panic!("lab: {text:?} must be an IPv4 address"),
    }
}

/// Keeps `[A-Za-z0-9_-]` of `text`, at most `max` bytes.
pub fn sanitize(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(max)
        .collect()
}

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
