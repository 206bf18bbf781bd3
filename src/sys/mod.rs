//! Operating-system back ends: addresses, links and the raw sockets that
//! carry CARP adverts, ARP and ICMP.
//!
//! Everything above this module speaks in terms of the names re-exported
//! here, so a second back end (FreeBSD) only has to provide the same names.

use std::io;

#[cfg(target_os = "linux")]
pub mod linux;

#[cfg(target_os = "linux")]
pub use linux::{
    announce_v6, missing_capabilities, ns_probe, ping6_many, ping_many, AddrChange, AddrInfo,
    ArpSocket, CarpSocket, Lifetime, LinkInfo, Netlink, ADDR_PROTO_IPFAIL, CAP_NET_ADMIN,
    CAP_NET_RAW, CARP_GROUP_V4, IPPROTO_CARP,
};

/// Errors of the OS layer, worded for the operator reading the log.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("no network interface {0}")]
    NoSuchInterface(String),

    #[error(
        "{op}: permission denied ({source}); ipfail needs {capability} \
         (run it as root or grant the capability)"
    )]
    Permission {
        op: &'static str,
        capability: &'static str,
        source: io::Error,
    },

    #[error("{op}: {source}")]
    Io { op: &'static str, source: io::Error },

    #[error("netlink: {0}")]
    Netlink(String),
}

impl SysError {
    /// Wraps an OS error, turning EPERM/EACCES into [`SysError::Permission`]
    /// naming the capability the operation needs.
    pub(crate) fn os(op: &'static str, capability: &'static str, source: io::Error) -> SysError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => SysError::Permission {
                op,
                capability,
                source,
            },
            _ => SysError::Io { op, source },
        }
    }

    /// True when the error says the process lacks a privilege.
    pub fn is_permission(&self) -> bool {
        matches!(self, SysError::Permission { .. })
    }
}
