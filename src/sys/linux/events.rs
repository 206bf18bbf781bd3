//! Link and address changes as the kernel announces them (rtnetlink
//! multicast groups RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR;
//! what `ip monitor link address` shows), so the daemon never polls.
//!
//! One netlink socket subscribes for the whole process; its messages are
//! turned into [`NetEvent`]s and broadcast to every listener (the election
//! loop for links, each group's IP task for addresses). A listener that
//! falls behind, or a kernel queue overrun (ENOBUFS), yields
//! [`NetEvent::Overrun`]: the listener reads the state afresh.

use futures::StreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::AsyncSocket;
use rtnetlink::MulticastGroup;
use tokio::sync::broadcast;

use super::caps::CAP_NET_ADMIN;
use super::netlink::{addr_entry, link_info};
use super::{AddrInfo, LinkInfo};
use crate::sys::SysError;

/// Socket receive buffer: a burst of 1000 address changes fits.
const RCVBUF: usize = 4 << 20;
/// Events kept for a slow listener before it is told to resync.
const BACKLOG: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A link appeared or changed (flags, carrier).
    Link(LinkInfo),
    /// A link was deleted.
    LinkGone { index: u32 },
    /// An address was added (or its lifetime changed) or deleted. `by`:
    /// netlink port of the process that asked for it (usually its PID),
    /// 0 when the kernel did it by itself (an expired lease).
    Addr {
        added: bool,
        info: AddrInfo,
        by: u32,
    },
    /// Events were lost: read the state again.
    Overrun,
    /// The subscription's socket closed: no more events will come.
    Closed,
}

/// The process's subscription; clone receivers with [`NetEvents::listen`].
#[derive(Clone)]
pub struct NetEvents {
    tx: broadcast::Sender<NetEvent>,
}

impl NetEvents {
    /// Opens the subscription; must run inside a tokio runtime.
    pub fn subscribe() -> Result<NetEvents, SysError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SysError::Netlink(
                "NetEvents::subscribe must be called inside a tokio runtime".into(),
            ));
        }
        let (mut conn, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .map_err(|e| SysError::os("subscribe to rtnetlink events", CAP_NET_ADMIN, e))?;
        // A larger queue makes overruns rare; they are handled anyway.
        if let Err(e) = conn.socket_mut().socket_mut().set_rx_buf_sz(RCVBUF) {
            tracing::debug!("netlink event socket: cannot set receive buffer: {e}");
        }
        tokio::spawn(conn);
        let (tx, _) = broadcast::channel(BACKLOG);
        let out = tx.clone();
        tokio::spawn(async move {
            while let Some((msg, _)) = messages.next().await {
                let by = msg.header.port_number;
                let event = match msg.payload {
                    NetlinkPayload::InnerMessage(inner) => match inner {
                        RouteNetlinkMessage::NewLink(l) => Some(NetEvent::Link(link_info(&l))),
                        RouteNetlinkMessage::DelLink(l) => Some(NetEvent::LinkGone {
                            index: l.header.index,
                        }),
                        RouteNetlinkMessage::NewAddress(a) => {
                            addr_entry(&a).map(|info| NetEvent::Addr {
                                added: true,
                                info,
                                by,
                            })
                        }
                        RouteNetlinkMessage::DelAddress(a) => {
                            addr_entry(&a).map(|info| NetEvent::Addr {
                                added: false,
                                info,
                                by,
                            })
                        }
                        _ => None,
                    },
                    NetlinkPayload::Overrun(_) => Some(NetEvent::Overrun),
                    _ => None,
                };
                // No listener is fine: nobody needs this event.
                if let Some(e) = event {
                    let _ = out.send(e);
                }
            }
            tracing::error!(
                "the rtnetlink event socket closed: link and address changes are no longer seen"
            );
            let _ = out.send(NetEvent::Closed);
        });
        Ok(NetEvents { tx })
    }

    pub fn listen(&self) -> NetListener {
        NetListener {
            rx: self.tx.subscribe(),
        }
    }
}

/// One listener's end.
pub struct NetListener {
    rx: broadcast::Receiver<NetEvent>,
}

impl NetListener {
    /// The next event; [`NetEvent::Overrun`] if this listener fell behind.
    /// `None` once the subscription is gone.
    pub async fn next(&mut self) -> Option<NetEvent> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(NetEvent::Overrun),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
