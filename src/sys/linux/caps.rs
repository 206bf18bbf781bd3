//! Which of the capabilities ipfail needs the process lacks, so the daemon
//! can say so at start instead of failing on the first takeover.

/// Adding/removing addresses (rtnetlink), SO_RCVBUFFORCE.
pub const CAP_NET_ADMIN: &str = "CAP_NET_ADMIN";
/// Raw IP sockets (CARP, ICMP) and AF_PACKET sockets (ARP).
pub const CAP_NET_RAW: &str = "CAP_NET_RAW";

/// Capability numbers from linux/capability.h.
const NEEDED: [(u32, &str); 2] = [(12, CAP_NET_ADMIN), (13, CAP_NET_RAW)];

/// The capabilities ipfail needs that the effective set of this process
/// lacks, e.g. `["CAP_NET_ADMIN", "CAP_NET_RAW"]`; empty when running as
/// root. When /proc cannot be read the answer is unknown and empty: the
/// operations themselves then fail with a permission error naming the
/// capability.
pub fn missing_capabilities() -> Vec<&'static str> {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => match cap_eff(&status) {
            Some(mask) => missing_from(mask),
            None => Vec::new(),
        },
        Err(e) => {
            tracing::debug!("cannot read /proc/self/status: {e}");
            Vec::new()
        }
    }
}

/// The `CapEff:` mask of a /proc/PID/status text (proc(5)).
fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

fn missing_from(mask: u64) -> Vec<&'static str> {
    NEEDED
        .iter()
        .filter(|(bit, _)| mask & (1u64 << bit) == 0)
        .map(|&(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        let status = "Name:\tipfail\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";
        assert_eq!(cap_eff(status).map(missing_from), Some(vec![]));
    }

    #[test]
    fn unprivileged_lacks_both() {
        let status = "CapInh:\t0000000000000000\nCapEff:\t0000000000000000\n";
        assert_eq!(
            cap_eff(status).map(missing_from),
            Some(vec![CAP_NET_ADMIN, CAP_NET_RAW])
        );
    }

    #[test]
    fn only_net_raw_granted() {
        // setcap cap_net_raw+ep: bit 13 only.
        assert_eq!(missing_from(1 << 13), vec![CAP_NET_ADMIN]);
        assert_eq!(missing_from(1 << 12), vec![CAP_NET_RAW]);
    }

    #[test]
    fn garbage_is_unknown() {
        assert_eq!(cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(cap_eff(""), None);
    }
}
