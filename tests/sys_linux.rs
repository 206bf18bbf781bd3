//! The Linux back end against the real kernel: rtnetlink addresses and
//! links, address and link events, ARP, ICMP echo and neighbor
//! solicitation probes, CARP sockets, and `probe_all` on top of them
//! (docs/design.md §8). Each test builds a [`lab::VethLab`] (two namespaces
//! joined by veth pairs, docs/design.md §8.4) and drives the library's public
//! API from inside it. Needs root; see `lab::require_root`.
#![cfg(target_os = "linux")]

mod lab;

/// rtnetlink: addresses (mark, lease, exact delete) and links.
mod netlink {
    use crate::lab::veth::run;
    use crate::lab::VethLab;
    use ipfail::sys::linux::{AddrChange, AddrInfo, Lifetime, LinkInfo, Netlink, SysError};
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn add_and_delete_are_idempotent() {
        let Some(lab) = VethLab::new("add_and_delete_are_idemp") else {
            return;
        };
        let a = lab.a.clone();
        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let float = ip("203.0.113.7");

            assert_eq!(
                nl.add_addr(va.index, float, 32, Lifetime::Forever)
                    .await
                    .unwrap(),
                AddrChange::Done
            );
            assert_eq!(
                nl.add_addr(va.index, float, 32, Lifetime::Forever)
                    .await
                    .unwrap(),
                AddrChange::AlreadyDone
            );
            let shown = run(&["-n", &a, "addr", "show", "dev", "va"]);
            assert!(
                shown.contains("inet 203.0.113.7/32 scope global va"),
                "{shown}"
            );
            assert!(nl.addrs(va.index).await.unwrap().contains(&(float, 32)));

            assert_eq!(
                nl.del_addr(va.index, float, 32).await.unwrap(),
                AddrChange::Done
            );
            assert_eq!(
                nl.del_addr(va.index, float, 32).await.unwrap(),
                AddrChange::AlreadyDone
            );
            let shown = run(&["-n", &a, "addr", "show", "dev", "va"]);
            assert!(!shown.contains("203.0.113.7"), "{shown}");
            assert!(shown.contains("inet 192.0.2.1/24"), "{shown}");

            // IPv6: usable at once (no "tentative"), idempotent too.
            let float6 = ip("2001:db8::77");
            assert_eq!(
                nl.add_addr(va.index, float6, 128, Lifetime::Forever)
                    .await
                    .unwrap(),
                AddrChange::Done
            );
            assert_eq!(
                nl.add_addr(va.index, float6, 128, Lifetime::Forever)
                    .await
                    .unwrap(),
                AddrChange::AlreadyDone
            );
            let shown = run(&["-n", &a, "-6", "addr", "show", "dev", "va"]);
            let line = shown
                .lines()
                .find(|l| l.contains("inet6 2001:db8::77/128 scope global"))
                .unwrap_or_else(|| panic!("{shown}"));
            assert!(!line.contains("tentative"), "{line}");
            assert!(nl.addrs(va.index).await.unwrap().contains(&(float6, 128)));
            assert_eq!(
                nl.del_addr(va.index, float6, 128).await.unwrap(),
                AddrChange::Done
            );
            assert_eq!(
                nl.del_addr(va.index, float6, 128).await.unwrap(),
                AddrChange::AlreadyDone
            );

            // Unknown interface index.
            assert!(matches!(
                nl.add_addr(999_999, float, 32, Lifetime::Forever).await,
                Err(SysError::NoSuchInterface(_))
            ));
        });
    }

    #[test]
    fn added_addresses_carry_our_mark_and_lease_and_refresh_extends_it() {
        let Some(lab) = VethLab::new("added_addresses_carry_ou") else {
            return;
        };
        let a = lab.a.clone();
        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let find = |infos: Vec<AddrInfo>, ip: IpAddr| {
                infos
                    .into_iter()
                    .find(|i| i.addr == ip)
                    .expect("address listed")
            };
            let leased = ip("203.0.113.21");
            nl.add_addr(va.index, leased, 32, Lifetime::Lease(5))
                .await
                .unwrap();
            let info = find(nl.addr_infos(va.index).await.unwrap(), leased);
            assert!(info.is_ours(), "{info:?}");
            assert!(matches!(info.valid_left, Some(1..=5)), "{info:?}");
            // `ip` sees the same finite lifetime.
            let shown = run(&["-n", &a, "-o", "addr", "show", "dev", "va"]);
            let line = shown
                .lines()
                .find(|l| l.contains("203.0.113.21/32"))
                .unwrap_or_else(|| panic!("{shown}"));
            assert!(
                line.contains("valid_lft 5sec") || line.contains("valid_lft 4sec"),
                "{line}"
            );

            nl.refresh_addr(va.index, leased, 32, Lifetime::Lease(60))
                .await
                .unwrap();
            let info = find(nl.addr_infos(va.index).await.unwrap(), leased);
            assert!(matches!(info.valid_left, Some(50..=60)), "{info:?}");

            // The host's own address is neither marked nor leased.
            let own = find(nl.addr_infos(va.index).await.unwrap(), ip("192.0.2.1"));
            assert!(!own.is_ours() && own.valid_left.is_none(), "{own:?}");

            // The kernel removes an expired lease by itself.
            let short = ip("203.0.113.22");
            nl.add_addr(va.index, short, 32, Lifetime::Lease(1))
                .await
                .unwrap();
            let end = Instant::now() + Duration::from_secs(5);
            while nl
                .addrs(va.index)
                .await
                .unwrap()
                .iter()
                .any(|(a, _)| *a == short)
            {
                assert!(Instant::now() < end, "a 1 s lease outlived 5 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    #[test]
    fn delete_touches_only_the_exact_address() {
        let Some(lab) = VethLab::new("delete_touches_only_the_") else {
            return;
        };
        let a = lab.a.clone();
        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();

            // Same address with another prefix is a different address.
            assert_eq!(
                nl.del_addr(va.index, ip("192.0.2.1"), 32).await.unwrap(),
                AddrChange::AlreadyDone
            );
            assert!(nl
                .addrs(va.index)
                .await
                .unwrap()
                .contains(&(ip("192.0.2.1"), 24)));

            // Deleting a secondary leaves the primary alone.
            let s1 = ip("192.0.2.50");
            assert_eq!(
                nl.add_addr(va.index, s1, 24, Lifetime::Forever)
                    .await
                    .unwrap(),
                AddrChange::Done
            );
            assert_eq!(
                nl.del_addr(va.index, s1, 24).await.unwrap(),
                AddrChange::Done
            );
            assert!(nl
                .addrs(va.index)
                .await
                .unwrap()
                .contains(&(ip("192.0.2.1"), 24)));

            // Deleting a primary /24 keeps its secondaries (promote_secondaries).
            let primary = ip("203.0.113.10");
            let secondary = ip("203.0.113.11");
            for addr in [primary, secondary] {
                assert_eq!(
                    nl.add_addr(va.index, addr, 24, Lifetime::Forever)
                        .await
                        .unwrap(),
                    AddrChange::Done
                );
            }
            assert_eq!(
                nl.del_addr(va.index, primary, 24).await.unwrap(),
                AddrChange::Done
            );
            let left = nl.addrs(va.index).await.unwrap();
            assert!(left.contains(&(secondary, 24)), "secondary lost: {left:?}");
            assert!(!left.contains(&(primary, 24)), "{left:?}");
            let shown = run(&["-n", &a, "addr", "show", "dev", "va"]);
            assert!(shown.contains("inet 203.0.113.11/24"), "{shown}");
        });
    }

    #[test]
    fn link_reports_mac_and_carrier() {
        let Some(lab) = VethLab::new("link_reports_mac_and_car") else {
            return;
        };
        let mac = lab.mac(&lab.a, "va");
        let b = lab.b.clone();
        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            assert_eq!(va.name, "va");
            assert_eq!(va.mac, Some(mac));
            assert!(va.up);
            assert_eq!(nl.link_by_index(va.index).await.unwrap().name, "va");
            assert!(
                wait_link(&nl, Duration::from_secs(5), |l| l.running).await,
                "carrier never came up"
            );

            match nl.link("nosuch0").await {
                Err(SysError::NoSuchInterface(n)) => assert_eq!(n, "nosuch0"),
                other => panic!("expected NoSuchInterface, got {other:?}"),
            }
            assert!(matches!(
                nl.link("bad/name").await,
                Err(SysError::NoSuchInterface(_))
            ));

            // Peer down: our side stays up but loses carrier.
            run(&["-n", &b, "link", "set", "vb", "down"]);
            assert!(
                wait_link(&nl, Duration::from_secs(5), |l| l.up && !l.running).await,
                "running stayed true after the peer went down"
            );
        });
    }

    async fn wait_link(nl: &Netlink, limit: Duration, cond: impl Fn(&LinkInfo) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if cond(&nl.link("va").await.unwrap()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Prints how long 1000 adds/deletes take (field notes: 20-30 ms).
    #[test]
    fn thousand_addresses_timing() {
        let Some(lab) = VethLab::new("thousand_addresses_timin") else {
            return;
        };
        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            // Only documentation ranges: 692 IPv4 /32s and 308 IPv6 /128s.
            let mut ips: Vec<(IpAddr, u8)> = Vec::new();
            // (203.0.113.192/27 belongs to the lab's second link.)
            for (net, last) in [
                ([203, 0, 113], 190),
                ([198, 51, 100], 254),
                ([192, 0, 2], 254),
            ] {
                for host in 3..=last {
                    ips.push((IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], host)), 32));
                }
            }
            let v4 = ips.len();
            for i in 1..=(1000 - v4) as u16 {
                ips.push((
                    IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i)),
                    128,
                ));
            }
            assert_eq!(ips.len(), 1000);

            let t = Instant::now();
            for &(addr, prefix) in &ips {
                assert_eq!(
                    nl.add_addr(va.index, addr, prefix, Lifetime::Forever)
                        .await
                        .unwrap(),
                    AddrChange::Done
                );
            }
            let add = t.elapsed();
            let t = Instant::now();
            let listed = nl.addrs(va.index).await.unwrap();
            let list = t.elapsed();
            assert!(ips.iter().all(|x| listed.contains(x)));
            let t = Instant::now();
            for &(addr, prefix) in &ips {
                assert_eq!(
                    nl.del_addr(va.index, addr, prefix).await.unwrap(),
                    AddrChange::Done
                );
            }
            let del = t.elapsed();
            println!(
                "timing: add 1000 addrs {} ms, list {} addrs {} ms, delete 1000 addrs {} ms",
                add.as_millis(),
                listed.len(),
                list.as_millis(),
                del.as_millis()
            );
        });
    }
}

/// Address and link events with their cause.
mod events {
    use crate::lab::veth::run;
    use crate::lab::VethLab;
    use ipfail::sys::linux::{Lifetime, NetEvent, NetEvents, NetListener, Netlink};
    use std::net::IpAddr;
    use std::time::Duration;

    async fn until(l: &mut NetListener, what: &str, f: impl Fn(&NetEvent) -> bool) -> NetEvent {
        let wait = async {
            loop {
                match l.next().await {
                    Some(e) if f(&e) => return e,
                    Some(_) => {}
                    None => panic!("subscription closed"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| panic!("no event: {what}"))
    }

    #[test]
    fn address_and_link_changes_arrive_as_events_with_their_cause() {
        let Some(lab) = VethLab::new("address_and_link_changes") else {
            return;
        };
        let a = lab.a.clone();
        let b = lab.b.clone();
        lab.run(move || async move {
            let events = NetEvents::subscribe().unwrap();
            let mut l = events.listen();
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let float: IpAddr = "203.0.113.30".parse().unwrap();

            nl.add_addr(va.index, float, 32, Lifetime::Lease(30))
                .await
                .unwrap();
            let e = until(
                &mut l,
                "our add",
                |e| matches!(e, NetEvent::Addr { added: true, info, .. } if info.addr == float),
            )
            .await;
            let NetEvent::Addr { info, by, .. } = e else {
                unreachable!()
            };
            assert!(info.is_ours() && info.valid_left.is_some(), "{info:?}");
            assert_ne!(by, 0, "we asked for it");

            // Someone else removes it: we hear it, and who did it.
            run(&["-n", &a, "addr", "del", "203.0.113.30/32", "dev", "va"]);
            let e = until(
                &mut l,
                "their delete",
                |e| matches!(e, NetEvent::Addr { added: false, info, .. } if info.addr == float),
            )
            .await;
            assert!(matches!(e, NetEvent::Addr { by, .. } if by != 0), "{e:?}");

            // An expired lease is the kernel's own doing (by = 0).
            nl.add_addr(va.index, float, 32, Lifetime::Lease(1))
                .await
                .unwrap();
            let e = until(
                &mut l,
                "expiry",
                |e| matches!(e, NetEvent::Addr { added: false, info, .. } if info.addr == float),
            )
            .await;
            assert!(matches!(e, NetEvent::Addr { by: 0, .. }), "{e:?}");

            // Carrier loss on our link.
            run(&["-n", &b, "link", "set", "vb", "down"]);
            until(
                &mut l,
                "carrier loss",
                |e| matches!(e, NetEvent::Link(li) if li.index == va.index && !li.running),
            )
            .await;
            run(&["-n", &b, "link", "set", "vb", "up"]);
            until(
                &mut l,
                "carrier back",
                |e| matches!(e, NetEvent::Link(li) if li.index == va.index && li.running),
            )
            .await;
        });
    }
}

/// ARP probe and announcement.
mod arp {
    use crate::lab::veth::{assert_waited_timeout, lladdr, run, wait_for};
    use crate::lab::VethLab;
    use ipfail::sys::linux::ArpSocket;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    const IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

    #[test]
    fn probe_finds_the_holder_and_only_it() {
        let Some(lab) = VethLab::new("probe_finds_the_holder_a") else {
            return;
        };
        let mac_a = lab.mac(&lab.a, "va");
        let mac_b = lab.mac(&lab.b, "vb");
        lab.ip(&lab.b, &["addr", "add", "203.0.113.7/32", "dev", "vb"]);
        lab.run(move || async move {
            let nl = ipfail::sys::Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let arp = ArpSocket::open(va.index, mac_a).unwrap();
            let held = Ipv4Addr::new(203, 0, 113, 7);
            let free = Ipv4Addr::new(203, 0, 113, 8);
            let timeout = Duration::from_millis(600);

            let t = Instant::now();
            let got = arp.probe(&[held, free], timeout).await.unwrap();
            let took = t.elapsed();
            assert_eq!(got.get(&held), Some(&mac_b));
            assert_eq!(got.len(), 1, "{got:?}");
            assert_waited_timeout(took, timeout);

            let t = Instant::now();
            assert!(arp.probe(&[free], timeout).await.unwrap().is_empty());
            let took = t.elapsed();
            assert_waited_timeout(took, timeout);

            // All targets answered: no need to wait for the deadline.
            let t = Instant::now();
            let got = arp.probe(&[held], Duration::from_secs(3)).await.unwrap();
            assert_eq!(got.get(&held), Some(&mac_b));
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            println!(
                "timing: ARP probe of 2 addrs (timeout {} ms) took {} ms",
                timeout.as_millis(),
                took.as_millis()
            );
        });
    }

    #[test]
    fn announce_moves_the_peer_cache_to_our_mac() {
        let Some(lab) = VethLab::new("announce_moves_the_peer_") else {
            return;
        };
        let mac_a = lab.mac(&lab.a, "va");
        let b = lab.b.clone();
        // A realistic LAN: the floating subnet is on-link for B.
        lab.ip(&b, &["route", "add", "203.0.113.0/24", "dev", "vb"]);
        lab.seed_stale_neigh(&b, "203.0.113.7");
        let want = lladdr(mac_a);
        lab.run(move || async move {
            let nl = ipfail::sys::Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let arp = ArpSocket::open(va.index, mac_a).unwrap();
            let neigh = || run(&["-n", &b, "neigh", "show", "203.0.113.7", "dev", "vb"]);
            assert!(neigh().contains("02:00:00:00:00:99"), "{}", neigh());
            let mut switched = false;
            for _ in 0..5 {
                arp.announce(IP).await.unwrap();
                if wait_for(Duration::from_millis(500), || neigh().contains(&want)).await {
                    switched = true;
                    break;
                }
            }
            assert!(switched, "B still has: {}", neigh());
        });
    }
}

/// ICMP echo probes and unsolicited neighbor advertisements.
mod icmp {
    use crate::lab::veth::{assert_waited_timeout, lladdr, run, wait_for};
    use crate::lab::VethLab;
    use ipfail::sys::linux::{announce_v6, ping6_many, ping_many, SysError};
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::{Duration, Instant};

    #[test]
    fn ping_answers_only_from_live_hosts() {
        let Some(lab) = VethLab::new("ping_answers_only_from_l") else {
            return;
        };
        lab.run(move || async move {
            let live = Ipv4Addr::new(192, 0, 2, 2);
            let unheld = Ipv4Addr::new(192, 0, 2, 99);
            let unroutable = Ipv4Addr::new(198, 51, 100, 1); // no route in the lab
            let nowhere = Ipv4Addr::new(203, 0, 113, 200);
            let timeout = Duration::from_millis(800);
            let t = Instant::now();
            let got = ping_many("va", &[live, unheld, unroutable, nowhere], timeout)
                .await
                .unwrap();
            let took = t.elapsed();
            assert_eq!(got.get(&live), Some(&live));
            assert_eq!(got.len(), 1, "{got:?}");
            assert_waited_timeout(took, timeout);

            // Everyone answered: returns before the deadline.
            let t = Instant::now();
            let got = ping_many("va", &[live], Duration::from_secs(3))
                .await
                .unwrap();
            assert_eq!(got.len(), 1);
            assert!(t.elapsed() < Duration::from_secs(2));

            let live6: Ipv6Addr = "2001:db8::2".parse().unwrap();
            let unheld6: Ipv6Addr = "2001:db8::99".parse().unwrap();
            let unroutable6: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
            let got = ping6_many("va", &[live6, unheld6, unroutable6], timeout)
                .await
                .unwrap();
            assert_eq!(got.get(&live6), Some(&live6));
            assert_eq!(got.len(), 1, "{got:?}");

            assert!(matches!(
                ping_many("nosuch0", &[live], timeout).await,
                Err(SysError::NoSuchInterface(_))
            ));
        });
    }

    #[test]
    fn unsolicited_na_moves_the_peer_cache_to_our_mac() {
        let Some(lab) = VethLab::new("unsolicited_na_moves_the") else {
            return;
        };
        let mac_a = lab.mac(&lab.a, "va");
        let b = lab.b.clone();
        lab.ip(
            &lab.a,
            &["addr", "add", "2001:db8::7/128", "dev", "va", "nodad"],
        );
        lab.seed_stale_neigh(&b, "2001:db8::7");
        let want = lladdr(mac_a);
        lab.run(move || async move {
            let neigh = || run(&["-n", &b, "-6", "neigh", "show", "2001:db8::7", "dev", "vb"]);
            assert!(neigh().contains("02:00:00:00:00:99"), "{}", neigh());
            let ip: Ipv6Addr = "2001:db8::7".parse().unwrap();
            let mut switched = false;
            for _ in 0..5 {
                announce_v6("va", ip, mac_a).await.unwrap();
                if wait_for(Duration::from_millis(500), || neigh().contains(&want)).await {
                    switched = true;
                    break;
                }
            }
            assert!(switched, "B still has: {}", neigh());
        });
    }
}

/// Neighbor solicitation probe.
mod ndp {
    use crate::lab::veth::assert_waited_timeout;
    use crate::lab::VethLab;
    use ipfail::sys::linux::{ns_probe, SysError};
    use std::net::Ipv6Addr;
    use std::time::{Duration, Instant};

    /// B holds 2001:db8::77 and ignores echo requests: the solicitation
    /// still finds it, with B's MAC; an unheld address stays silent.
    #[test]
    fn ns_probe_finds_a_holder_that_ignores_ping() {
        let Some(lab) = VethLab::new("ns_probe_finds_a_holder_") else {
            return;
        };
        let mac_b = lab.mac(&lab.b, "vb");
        lab.ip(
            &lab.b,
            &["addr", "add", "2001:db8::77/128", "dev", "vb", "nodad"],
        );
        lab.set_echo_ignore_all(&lab.b);
        lab.run(move || async move {
            let nl = ipfail::sys::Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let held: Ipv6Addr = "2001:db8::77".parse().unwrap();
            let free: Ipv6Addr = "2001:db8::78".parse().unwrap();
            let timeout = Duration::from_millis(600);

            // Ping really is ignored, so only the solicitation can see B.
            let pinged = ipfail::sys::ping6_many("va", &[held], timeout)
                .await
                .unwrap();
            assert!(pinged.is_empty(), "{pinged:?}");

            let t = Instant::now();
            let got = ns_probe("va", va.index, &[held, free], timeout)
                .await
                .unwrap();
            let took = t.elapsed();
            assert_eq!(got.get(&held), Some(&mac_b));
            assert_eq!(got.len(), 1, "{got:?}");
            assert_waited_timeout(took, timeout);

            // All targets answered: no need to wait for the deadline.
            let t = Instant::now();
            let got = ns_probe("va", va.index, &[held], Duration::from_secs(3))
                .await
                .unwrap();
            assert_eq!(got.get(&held), Some(&mac_b));
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

            assert!(matches!(
                ns_probe("nosuch0", va.index, &[held], timeout).await,
                Err(SysError::NoSuchInterface(_))
            ));
            println!(
                "timing: NS probe of 2 addrs (timeout {} ms) took {} ms",
                timeout.as_millis(),
                took.as_millis()
            );
        });
    }
}

/// CARP advert sockets.
mod carp_socket {
    use crate::lab::veth::enter;
    use crate::lab::VethLab;
    use ipfail::sys::linux::{CarpSocket, CarpSocket6, SysError};
    use std::net::Ipv4Addr;
    use std::time::Duration;
    use tokio::time::timeout;

    /// A CARP-like payload (content does not matter to this layer).
    const PAYLOAD: [u8; 36] = [
        0x21, 0x01, 0x00, 0x07, 0x00, 0x01, 0x9c, 0x90, 1, 2, 3, 4, 5, 6, 7, 8, 0x26, 0x07, 0xd3,
        0x55, 0x74, 0xe9, 0xab, 0xf3, 0x6e, 0x30, 0x26, 0x7e, 0xf6, 0xef, 0x7e, 0xdc, 0x0e, 0x58,
        0xff, 0x44,
    ];

    /// Sends adverts until `rx` receives one (the link may still be coming
    /// up); gives up after 5 s.
    async fn send_until_heard(tx: &CarpSocket, rx: &CarpSocket, buf: &mut [u8]) -> usize {
        for _ in 0..25 {
            tx.send(&PAYLOAD).await.unwrap();
            if let Ok(got) = timeout(Duration::from_millis(200), rx.recv(buf)).await {
                return got.unwrap();
            }
        }
        panic!("no advert received within 5 s");
    }

    #[test]
    fn advert_crosses_the_link_with_ttl_255() {
        let Some(lab) = VethLab::new("advert_crosses_the_link_") else {
            return;
        };
        let (a, b) = (lab.a.clone(), lab.b.clone());
        lab.run(move || async move {
            enter(&b);
            let nl_b = ipfail::sys::Netlink::new().unwrap();
            let vb = nl_b.link("vb").await.unwrap();
            let rx = CarpSocket::open_v4("vb", vb.index, Ipv4Addr::new(192, 0, 2, 2)).unwrap();
            enter(&a);
            let nl_a = ipfail::sys::Netlink::new().unwrap();
            let va = nl_a.link("va").await.unwrap();
            let tx = CarpSocket::open_v4("va", va.index, Ipv4Addr::new(192, 0, 2, 1)).unwrap();

            // The sender does not hear itself (IP_MULTICAST_LOOP 0); the peer does.
            let mut buf = [0u8; 1500];
            let got = send_until_heard(&tx, &rx, &mut buf).await;
            let pkt = &buf[..got];
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            assert_eq!(pkt[0] >> 4, 4);
            assert_eq!(pkt[8], 255, "TTL");
            assert_eq!(pkt[9], 112, "protocol");
            assert_eq!(&pkt[12..16], &[192, 0, 2, 1], "source");
            assert_eq!(&pkt[16..20], &[224, 0, 0, 18], "destination");
            assert_eq!(&pkt[ihl..], &PAYLOAD);
            assert!(
                timeout(Duration::from_millis(300), tx.recv(&mut buf))
                    .await
                    .is_err(),
                "sender received its own advert"
            );
        });
    }

    /// The IPv6 socket: ff02::12 from the link-local address, hop limit
    /// 255 reported to the receiver, no loopback to the sender.
    #[test]
    fn ipv6_advert_crosses_the_link_from_link_local_with_hop_limit_255() {
        let Some(lab) = VethLab::new("ipv6_advert_crosses_the") else {
            return;
        };
        let (a, b) = (lab.a.clone(), lab.b.clone());
        lab.run(move || async move {
            enter(&b);
            let nl_b = ipfail::sys::Netlink::new().unwrap();
            let vb = nl_b.link("vb").await.unwrap();
            let rx = CarpSocket6::open_v6("vb", vb.index).unwrap();
            enter(&a);
            let nl_a = ipfail::sys::Netlink::new().unwrap();
            let va = nl_a.link("va").await.unwrap();
            let tx = CarpSocket6::open_v6("va", va.index).unwrap();
            let mut buf = [0u8; 1500];
            // The link-local address may still be tentative (DAD) at first.
            let mut heard = None;
            for _ in 0..50 {
                tx.send(&PAYLOAD).await.unwrap();
                if let Ok(got) = timeout(Duration::from_millis(200), rx.recv(&mut buf)).await {
                    let got = got.unwrap();
                    if got.src.segments()[0] == 0xfe80 {
                        heard = Some(got);
                        break;
                    }
                    // Until DAD ends the kernel picks the global address.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            let got = heard.expect("no advert from a link-local source within 10 s");
            assert_eq!(got.hop_limit, Some(255));
            assert_eq!(&buf[..got.len], &PAYLOAD);
            assert!(
                timeout(Duration::from_millis(300), tx.recv(&mut buf))
                    .await
                    .is_err(),
                "sender received its own IPv6 advert"
            );
        });
    }

    /// IP_MULTICAST_ALL=0 and SO_BINDTODEVICE: a socket on vb must not see
    /// adverts that arrive on vb2, although another socket joined the group
    /// there.
    #[test]
    fn no_adverts_from_other_interfaces() {
        let Some(lab) = VethLab::new("no_adverts_from_other_in") else {
            return;
        };
        let (a, b) = (lab.a.clone(), lab.b.clone());
        lab.run(move || async move {
            enter(&b);
            let nl_b = ipfail::sys::Netlink::new().unwrap();
            let vb = nl_b.link("vb").await.unwrap();
            let vb2 = nl_b.link("vb2").await.unwrap();
            let on_vb = CarpSocket::open_v4("vb", vb.index, Ipv4Addr::new(192, 0, 2, 2)).unwrap();
            let on_vb2 =
                CarpSocket::open_v4("vb2", vb2.index, Ipv4Addr::new(203, 0, 113, 194)).unwrap();
            enter(&a);
            let nl_a = ipfail::sys::Netlink::new().unwrap();
            let va2 = nl_a.link("va2").await.unwrap();
            let tx =
                CarpSocket::open_v4("va2", va2.index, Ipv4Addr::new(203, 0, 113, 193)).unwrap();

            let mut buf = [0u8; 1500];
            let got = send_until_heard(&tx, &on_vb2, &mut buf).await;
            assert_eq!(&buf[12..16], &[203, 0, 113, 193]);
            assert!(got > 20);
            tx.send(&PAYLOAD).await.unwrap();
            assert!(
                timeout(Duration::from_millis(500), on_vb.recv(&mut buf))
                    .await
                    .is_err(),
                "socket on vb received an advert that arrived on vb2"
            );
        });
    }

    #[test]
    fn unknown_interface_is_reported() {
        let Some(lab) = VethLab::new("unknown_interface_is_rep") else {
            return;
        };
        lab.run(move || async move {
            match CarpSocket::open_v4("nosuch0", 999, Ipv4Addr::new(192, 0, 2, 1)) {
                Err(SysError::NoSuchInterface(n)) => assert_eq!(n, "nosuch0"),
                Err(e) => panic!("expected NoSuchInterface, got {e}"),
                Ok(_) => panic!("opened a socket on a missing interface"),
            }
        });
    }
}

/// `ipfail::probe::probe_all` over ARP, neighbor solicitation and echo.
mod probe {
    use crate::lab::VethLab;
    use ipfail::probe::{probe_all, ProbeOutcome, Responder};
    use ipfail::sys::{ArpSocket, Netlink};
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    /// 50 addresses, B holds every other one: exactly those are reported,
    /// each by B's MAC.
    #[test]
    fn probe_all_finds_exactly_the_held_half() {
        let Some(lab) = VethLab::new("probe_all_finds_exactly_") else {
            return;
        };
        let mac_a = lab.mac(&lab.a, "va");
        let mac_b = lab.mac(&lab.b, "vb");
        let ips: Vec<IpAddr> = (100..150u8)
            .map(|h| IpAddr::V4(Ipv4Addr::new(203, 0, 113, h)))
            .collect();
        let held: Vec<IpAddr> = ips.iter().copied().step_by(2).collect();
        for ip in &held {
            lab.ip(&lab.b, &["addr", "add", &format!("{ip}/32"), "dev", "vb"]);
        }
        // IPv6: one held by B, one free.
        lab.ip(
            &lab.b,
            &["addr", "add", "2001:db8::100/128", "dev", "vb", "nodad"],
        );
        let mut all = ips.clone();
        all.push("2001:db8::100".parse().unwrap());
        all.push("2001:db8::101".parse().unwrap());

        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let arp = ArpSocket::open(va.index, mac_a).unwrap();
            let timeout = Duration::from_millis(1000);
            let t = Instant::now();
            let out = probe_all(&arp, "va", va.index, &all, timeout)
                .await
                .unwrap();
            let took = t.elapsed();

            assert_eq!(out.len(), all.len());
            for (o, ip) in out.iter().zip(&all) {
                assert_eq!(o.ip, *ip, "order kept");
            }
            for o in &out[..50] {
                if held.contains(&o.ip) {
                    assert_eq!(o.responder, Some(Responder::Arp { mac: mac_b }), "{}", o.ip);
                } else {
                    assert_eq!(o.responder, None, "{}", o.ip);
                }
            }
            assert_eq!(out[50].responder, Some(Responder::Nd { mac: mac_b }));
            assert_eq!(out[51].responder, None);
            assert!(took < timeout + Duration::from_secs(1), "{took:?}");
            println!(
                "timing: probe_all of 52 addrs (timeout {} ms) took {} ms",
                timeout.as_millis(),
                took.as_millis()
            );
        });
    }

    /// An IPv6 holder that ignores echo requests is still found (by the
    /// neighbor solicitation), and an unheld address is still free.
    #[test]
    fn probe_all_finds_an_ipv6_holder_that_ignores_ping() {
        let Some(lab) = VethLab::new("probe_all_finds_an_ipv6_") else {
            return;
        };
        let mac_a = lab.mac(&lab.a, "va");
        let mac_b = lab.mac(&lab.b, "vb");
        lab.ip(
            &lab.b,
            &["addr", "add", "2001:db8::77/128", "dev", "vb", "nodad"],
        );
        lab.set_echo_ignore_all(&lab.b);
        let held: IpAddr = "2001:db8::77".parse().unwrap();
        let free: IpAddr = "2001:db8::78".parse().unwrap();
        lab.run(move || async move {
            let nl = Netlink::new().unwrap();
            let va = nl.link("va").await.unwrap();
            let arp = ArpSocket::open(va.index, mac_a).unwrap();
            let out = probe_all(
                &arp,
                "va",
                va.index,
                &[held, free],
                Duration::from_millis(600),
            )
            .await
            .unwrap();
            assert_eq!(
                out,
                vec![
                    ProbeOutcome {
                        ip: held,
                        responder: Some(Responder::Nd { mac: mac_b }),
                    },
                    ProbeOutcome {
                        ip: free,
                        responder: None,
                    },
                ]
            );
        });
    }
}
