//! Links and addresses through rtnetlink (one netlink socket, requests
//! answered in tens of microseconds; 1000 `ip addr add` processes would
//! take seconds).

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use futures::stream::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
    AddressScope, CacheInfo,
};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, LinkAttribute, LinkFlags, LinkMessage,
};
use netlink_packet_route::AddressFamily;

use super::caps::CAP_NET_ADMIN;
use super::valid_ifname;
use crate::sys::SysError;

/// Handle to the kernel's routing netlink; cheap to clone (the clones share
/// one connection).
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

/// What `ip link show` would tell about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// None for links without an Ethernet address (loopback, tun, ...).
    pub mac: Option<[u8; 6]>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present: IFF_RUNNING and IFF_LOWER_UP.
    pub running: bool,
}

/// Whether a change was made or the kernel already was in that state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrChange {
    Done,
    AlreadyDone,
}

/// The IFA_PROTO value ipfail marks its own addresses with (`ip addr show
/// proto 112`; 112 is CARP's IP protocol number). Linux >= 5.18 keeps it;
/// an address without it was not added by ipfail and is never removed by
/// start-up reconcile (docs/safety.md, "Only our own addresses").
pub const ADDR_PROTO_IPFAIL: u8 = 112;

/// The kernel's "forever" lifetime (INFINITY_LIFE_TIME).
const FOREVER: u32 = u32::MAX;

/// One address as the kernel reports it (`ip addr show`), with the mark
/// and the lifetime ipfail's safety rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix: u8,
    pub secondary: bool,
    /// IFA_PROTO; 0 when unset.
    pub proto: u8,
    /// Seconds of validity left; `None` for a permanent address.
    pub valid_left: Option<u32>,
}

impl AddrInfo {
    /// Added by ipfail (carries [`ADDR_PROTO_IPFAIL`]).
    pub fn is_ours(&self) -> bool {
        self.proto == ADDR_PROTO_IPFAIL
    }
}

/// How long an address added by [`Netlink::add_addr`] lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until removed (the hook: nobody is left to refresh it).
    Forever,
    /// The kernel removes it after this many seconds unless refreshed: the
    /// daemon's dead-man switch (docs/safety.md, "Kernel leases").
    Lease(u32),
}

/// One address of an interface as the kernel reports it.
type AddrEntry = AddrInfo;

impl Netlink {
    /// Opens the netlink socket and spawns its connection task on the
    /// current tokio runtime.
    pub fn new() -> Result<Netlink, SysError> {
        // tokio::spawn (and the socket's AsyncFd) panic outside a runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SysError::Netlink(
                "Netlink::new must be called inside a tokio runtime".into(),
            ));
        }
        let (connection, handle, _unsolicited) = rtnetlink::new_connection()
            .map_err(|e| SysError::os("open the rtnetlink socket", CAP_NET_ADMIN, e))?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// Looks up an interface by name.
    pub async fn link(&self, ifname: &str) -> Result<LinkInfo, SysError> {
        if !valid_ifname(ifname) {
            return Err(SysError::NoSuchInterface(ifname.to_string()));
        }
        let request = self.handle.link().get().match_name(ifname).execute();
        self.one_link(request, ifname.to_string()).await
    }

    /// Looks up an interface by index.
    pub async fn link_by_index(&self, ifindex: u32) -> Result<LinkInfo, SysError> {
        let request = self.handle.link().get().match_index(ifindex).execute();
        self.one_link(request, format!("with index {ifindex}"))
            .await
    }

    async fn one_link(
        &self,
        request: impl futures::Stream<Item = Result<LinkMessage, rtnetlink::Error>>,
        what: String,
    ) -> Result<LinkInfo, SysError> {
        futures::pin_mut!(request);
        match request.try_next().await {
            Ok(Some(msg)) => Ok(link_info(&msg)),
            Ok(None) => Err(SysError::NoSuchInterface(what)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Err(SysError::NoSuchInterface(what)),
            Err(e) => Err(nl_error("look up interface", &what, e)),
        }
    }

    /// The addresses on interface `ifindex` with their prefix lengths.
    pub async fn addrs(&self, ifindex: u32) -> Result<Vec<(IpAddr, u8)>, SysError> {
        Ok(self
            .addr_entries(ifindex)
            .await?
            .into_iter()
            .map(|e| (e.addr, e.prefix))
            .collect())
    }

    /// The addresses on interface `ifindex` with mark and lifetime.
    pub async fn addr_infos(&self, ifindex: u32) -> Result<Vec<AddrInfo>, SysError> {
        self.addr_entries(ifindex).await
    }

    /// Every address of every interface with mark and lifetime; needs no
    /// privilege.
    pub async fn all_addr_infos(&self) -> Result<Vec<AddrInfo>, SysError> {
        let request = self.handle.address().get().execute();
        dump(request, ("list addresses", "all interfaces"), addr_entry).await
    }

    /// Every interface (`ip link show`).
    pub async fn links(&self) -> Result<Vec<LinkInfo>, SysError> {
        let request = self.handle.link().get().execute();
        dump(request, ("list interfaces", "all"), |m| Some(link_info(m))).await
    }

    /// Every address of every interface as (ifindex, address, prefix)
    /// (`ip addr show`); needs no privilege.
    pub async fn all_addrs(&self) -> Result<Vec<(u32, IpAddr, u8)>, SysError> {
        Ok(self
            .all_addr_infos()
            .await?
            .into_iter()
            .map(|e| (e.ifindex, e.addr, e.prefix))
            .collect())
    }

    async fn addr_entries(&self, ifindex: u32) -> Result<Vec<AddrEntry>, SysError> {
        let request = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute();
        let what = format!("ifindex {ifindex}");
        dump(request, ("list addresses", &what), addr_entry).await
    }

    /// Adds `addr/prefix` to interface `ifindex` like `ip addr add`
    /// (IFA_LOCAL and IFA_ADDRESS, scope global), marked as ipfail's
    /// ([`ADDR_PROTO_IPFAIL`]) and with `lifetime`; IPv6 addresses with
    /// IFA_F_NODAD so they are usable at once. An address already present
    /// is [`AddrChange::AlreadyDone`] and left as it is. Note that for IPv6
    /// the kernel reports EEXIST for the same address with any prefix length.
    pub async fn add_addr(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix: u8,
        lifetime: Lifetime,
    ) -> Result<AddrChange, SysError> {
        self.new_addr(ifindex, addr, prefix, lifetime, false).await
    }

    /// Sets the lease of an address ipfail holds (NLM_F_REPLACE). The
    /// kernel creates the address if it is gone (IPv4 and IPv6 newaddr do
    /// not insist on NLM_F_CREATE), so the caller refreshes only addresses
    /// it knows are still there: the IP planner's refresh rule
    /// (docs/safety.md, "Kernel leases").
    pub async fn refresh_addr(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix: u8,
        lifetime: Lifetime,
    ) -> Result<(), SysError> {
        self.new_addr(ifindex, addr, prefix, lifetime, true)
            .await
            .map(|_| ())
    }

    async fn new_addr(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix: u8,
        lifetime: Lifetime,
        replace: bool,
    ) -> Result<AddrChange, SysError> {
        check_prefix(addr, prefix)?;
        let mut request = self.handle.address().add(ifindex, addr, prefix);
        if replace {
            request = request.replace();
        }
        let msg = request.message_mut();
        msg.header.scope = AddressScope::Universe;
        if addr.is_ipv6() {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                ADDR_PROTO_IPFAIL,
            )));
        if let Lifetime::Lease(secs) = lifetime {
            let mut info = CacheInfo::default();
            info.ifa_preferred = secs;
            info.ifa_valid = secs;
            msg.attributes.push(AddressAttribute::CacheInfo(info));
        }
        let what = if replace {
            "refresh address"
        } else {
            "add address"
        };
        match request.execute().await {
            Ok(()) => Ok(AddrChange::Done),
            Err(e) => match errno(&e) {
                Some(libc::EEXIST) => Ok(AddrChange::AlreadyDone),
                Some(libc::ENODEV) => {
                    Err(SysError::NoSuchInterface(format!("with index {ifindex}")))
                }
                _ => Err(nl_error(
                    what,
                    &format!("{addr}/{prefix} on ifindex {ifindex}"),
                    e,
                )),
            },
        }
    }

    /// Deletes exactly `addr/prefix` from interface `ifindex`; an absent
    /// address is [`AddrChange::AlreadyDone`].
    ///
    /// Deleting the primary IPv4 address of a subnet makes the kernel
    /// delete that subnet's secondary addresses too, unless
    /// `net.ipv4.conf.IF.promote_secondaries` is 1 (net/ipv4/devinet.c
    /// `__inet_del_ifa`). In that one case this sets the sysctl first, so
    /// no other address is ever lost.
    pub async fn del_addr(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<AddrChange, SysError> {
        check_prefix(addr, prefix)?;
        if let IpAddr::V4(v4) = addr {
            // A /32 cannot have secondaries: only shorter prefixes need the check.
            if prefix < 32 && !self.guard_secondaries(ifindex, v4, prefix).await? {
                return Ok(AddrChange::AlreadyDone);
            }
        }
        let mut msg = AddressMessage::default();
        msg.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.prefix_len = prefix;
        msg.header.index = ifindex;
        // With both attributes the kernel matches local address and prefix
        // exactly (inet_rtm_deladdr / inet6_addr_del).
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(AddrChange::Done),
            Err(e) => match errno(&e) {
                Some(libc::EADDRNOTAVAIL) | Some(libc::ENOENT) => Ok(AddrChange::AlreadyDone),
                Some(libc::ENODEV) => {
                    Err(SysError::NoSuchInterface(format!("with index {ifindex}")))
                }
                _ => Err(nl_error(
                    "delete address",
                    &format!("{addr}/{prefix} on ifindex {ifindex}"),
                    e,
                )),
            },
        }
    }

    /// Returns false when `addr/prefix` is not on the interface. When it is
    /// the primary of its subnet and secondaries exist, turns on
    /// promote_secondaries for the interface (or fails, refusing the delete).
    async fn guard_secondaries(
        &self,
        ifindex: u32,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<bool, SysError> {
        let entries = self.addr_entries(ifindex).await?;
        let Some(target) = entries
            .iter()
            .find(|e| e.addr == IpAddr::V4(addr) && e.prefix == prefix)
        else {
            return Ok(false);
        };
        let has_secondaries = !target.secondary
            && entries.iter().any(|e| {
                e.secondary
                    && e.prefix == prefix
                    && matches!(e.addr, IpAddr::V4(o) if same_subnet(o, addr, prefix))
            });
        if has_secondaries {
            let link = self.link_by_index(ifindex).await?;
            self.enable_promote_secondaries(ifindex, &link.name).await?;
        }
        Ok(true)
    }

    /// Sets net.ipv4.conf.IFNAME.promote_secondaries=1 through rtnetlink
    /// (RTM_SETLINK with IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF, which
    /// sets only the entries it carries: net/ipv4/devinet.c
    /// `inet_set_link_af`), not through /proc/sys: CAP_NET_ADMIN is all it
    /// needs, so it works for a non-root daemon and under systemd's
    /// `ProtectKernelTunables=` (a read-only /proc/sys).
    async fn enable_promote_secondaries(&self, ifindex: u32, ifname: &str) -> Result<(), SysError> {
        let path = format!("/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries");
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
            return Ok(());
        }
        tracing::info!(
            "setting net.ipv4.conf.{ifname}.promote_secondaries=1 so that deleting a primary \
             address does not delete the secondary addresses of its subnet"
        );
        let mut conf = InetDevConf::default();
        conf.promote_secondaries = 1;
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])]));
        self.handle.link().set(msg).execute().await.map_err(|e| {
            nl_error(
                "enable promote_secondaries (refusing to delete a primary address \
                     that would take its secondary addresses with it)",
                ifname,
                e,
            )
        })
    }
}

/// Collects a dump request's answers (`ip link show`, `ip addr show`);
/// `what`: the operation and its object, for the error.
async fn dump<M, T>(
    request: impl futures::Stream<Item = Result<M, rtnetlink::Error>>,
    what: (&'static str, &str),
    keep: impl Fn(&M) -> Option<T>,
) -> Result<Vec<T>, SysError> {
    futures::pin_mut!(request);
    let mut out = Vec::new();
    loop {
        match request.try_next().await {
            Ok(Some(msg)) => out.extend(keep(&msg)),
            Ok(None) => return Ok(out),
            Err(e) => return Err(nl_error(what.0, what.1, e)),
        }
    }
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn check_prefix(addr: IpAddr, prefix: u8) -> Result<(), SysError> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(SysError::Netlink(format!(
            "invalid prefix length /{prefix} for {addr} (at most /{max})"
        )));
    }
    Ok(())
}

pub(super) fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mut name = String::new();
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(bytes) => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => {}
        }
    }
    let flags = msg.header.flags;
    LinkInfo {
        index: msg.header.index,
        name,
        mac,
        up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running) && flags.contains(LinkFlags::LowerUp),
    }
}

pub(super) fn addr_entry(msg: &AddressMessage) -> Option<AddrEntry> {
    let mut local = None;
    let mut address = None;
    let mut secondary = msg.header.flags.contains(AddressHeaderFlags::Secondary);
    let mut permanent = msg.header.flags.contains(AddressHeaderFlags::Permanent);
    let mut proto = 0;
    let mut valid = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Flags(f) => {
                secondary |= f.contains(AddressFlags::Secondary);
                permanent |= f.contains(AddressFlags::Permanent);
            }
            AddressAttribute::Protocol(p) => proto = u8::from(*p),
            AddressAttribute::CacheInfo(c) => valid = Some(c.ifa_valid),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
    // point-to-point links (and the only one given for plain IPv6).
    Some(AddrEntry {
        ifindex: msg.header.index,
        addr: local.or(address)?,
        prefix: msg.header.prefix_len,
        secondary,
        proto,
        valid_left: match valid {
            _ if permanent => None,
            Some(FOREVER) | None => None,
            Some(v) => Some(v),
        },
    })
}

/// The errno of a netlink NACK, if the error is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io().raw_os_error(),
        _ => None,
    }
}

fn nl_error(op: &'static str, what: &str, e: rtnetlink::Error) -> SysError {
    match errno(&e) {
        Some(code) if code == libc::EPERM || code == libc::EACCES => SysError::Permission {
            op,
            capability: CAP_NET_ADMIN,
            source: io::Error::from_raw_os_error(code),
        },
        Some(code) => SysError::Netlink(format!(
            "{op} {what}: {}",
            io::Error::from_raw_os_error(code)
        )),
        None => SysError::Netlink(format!("{op} {what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_math() {
        let a = Ipv4Addr::new(198, 51, 100, 10);
        assert!(same_subnet(a, Ipv4Addr::new(198, 51, 100, 200), 24));
        assert!(!same_subnet(a, Ipv4Addr::new(198, 51, 101, 10), 24));
        assert!(same_subnet(a, Ipv4Addr::new(1, 2, 3, 4), 0));
        assert!(!same_subnet(a, Ipv4Addr::new(198, 51, 100, 11), 32));
    }

    #[test]
    fn prefix_is_checked() {
        assert!(check_prefix(ip("192.0.2.1"), 33).is_err());
        assert!(check_prefix(ip("192.0.2.1"), 32).is_ok());
        assert!(check_prefix(ip("2001:db8::1"), 129).is_err());
        assert!(check_prefix(ip("2001:db8::1"), 128).is_ok());
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        assert!(Netlink::new().is_err());
    }
}
