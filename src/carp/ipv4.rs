//! Receive path for IPv4 CARP: split the raw datagram a Linux raw socket
//! delivers (IP header included) and classify it as an accepted advert or
//! one of a small, closed set of rejection classes that `ipfail status`
//! counts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::packet::{
    candidate_lists, diagnose_auth, Advert, AuthDiagnosis, AuthKey, DecodeError, CARP_TTL,
    IPPROTO_CARP,
};

/// Minimum IPv4 header length (IHL 5).
const IPV4_MIN_HLEN: usize = 20;

/// The IPv4 header fields the receive path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Meta {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub proto: u8,
}

/// Why a buffer is not a usable IPv4 datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4Error {
    #[error("IPv4 datagram truncated: {len} bytes, header needs {need}")]
    Truncated { len: usize, need: usize },
    #[error("IP version {0}, expected 4")]
    NotIpv4(u8),
    #[error("IPv4 header length field {ihl} (x4 bytes) is below the minimum 5")]
    BadHeaderLength { ihl: u8 },
    #[error("IPv4 total length {total} does not fit header {header} and received {len} bytes")]
    BadTotalLength {
        total: usize,
        header: usize,
        len: usize,
    },
    #[error("IPv4 fragment (offset {offset} x8 bytes, more-fragments {more}); expected a whole datagram")]
    Fragment { offset: u16, more: bool },
}

/// Splits a received IPv4 datagram into its header fields and payload.
///
/// The payload ends where the header's total length says (link-layer
/// padding is dropped) and starts after the options (IHL-aware). The header
/// checksum is not checked: the kernel has verified it before delivery.
pub fn split_ipv4(buf: &[u8]) -> Result<(Ipv4Meta, &[u8]), Ipv4Error> {
    let Some(h) = buf.first_chunk::<IPV4_MIN_HLEN>() else {
        return Err(Ipv4Error::Truncated {
            len: buf.len(),
            need: IPV4_MIN_HLEN,
        });
    };
    let version = h[0] >> 4;
    if version != 4 {
        return Err(Ipv4Error::NotIpv4(version));
    }
    let ihl = h[0] & 0x0f;
    if ihl < 5 {
        return Err(Ipv4Error::BadHeaderLength { ihl });
    }
    let header = usize::from(ihl) * 4;
    if buf.len() < header {
        return Err(Ipv4Error::Truncated {
            len: buf.len(),
            need: header,
        });
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let payload = buf.get(header..total).ok_or(Ipv4Error::BadTotalLength {
        total,
        header,
        len: buf.len(),
    })?;
    // Linux reassembles before raw delivery, so a fragment here is a bug
    // or an attack; its payload would not start with a CARP header anyway.
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    if offset != 0 || more {
        return Err(Ipv4Error::Fragment { offset, more });
    }
    let meta = Ipv4Meta {
        ttl: h[8],
        proto: h[9],
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
    };
    Ok((meta, payload))
}

/// Why a received datagram was not accepted as an advert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Not a sane IPv4 datagram carrying protocol 112, or shorter than a
    /// CARP header.
    Malformed,
    /// TTL (IPv4) or hop limit (IPv6) other than 255: sent from off-link
    /// or through a router.
    BadTtl(u8),
    BadVersion(u8),
    BadType(u8),
    BadChecksum,
    /// A vhid we do not run (or a VRRPv2 router id on the same LAN).
    UnknownVhid(u8),
    /// The HMAC did not verify with the pass and address list of `vhid`
    /// (a configured vhid, so the failure can be counted on its group).
    AuthFailed {
        vhid: u8,
        diagnosis: AuthDiagnosis,
    },
    /// An advert whose IPv4 source is our own advert source address. Our
    /// CARP socket has `IP_MULTICAST_LOOP` off (`sys/linux/carp_socket.rs`),
    /// so the kernel never hands our own adverts back to us: this one came
    /// from another host configured with our address (or from a LAN that
    /// reflects frames back to their sender, which is as broken). Linux
    /// delivers a datagram with a local source address only where
    /// `accept_local` is on; otherwise it drops it as a martian before any
    /// socket sees it (`docs/interop.md`, "Our own source address").
    AddressClash {
        vhid: u8,
    },
    /// An authenticated advert with advbase 0, which no CARP implementation
    /// may send (FreeBSD `carp_ioctl_set` refuses advbase below
    /// `CARP_DFLTINTV`, our configuration refuses 0): it would make its
    /// sender outrank every peer while advertising as fast as it likes.
    BadAdvbase {
        vhid: u8,
    },
}

/// [`Reject`] without its data: the key of a status counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectClass {
    Malformed,
    BadTtl,
    BadVersion,
    BadType,
    BadChecksum,
    UnknownVhid,
    AuthFailed,
    BadAdvbase,
    AddressClash,
}

impl RejectClass {
    /// Every class, in display order.
    pub const ALL: [RejectClass; 9] = [
        RejectClass::Malformed,
        RejectClass::BadTtl,
        RejectClass::BadVersion,
        RejectClass::BadType,
        RejectClass::BadChecksum,
        RejectClass::UnknownVhid,
        RejectClass::AuthFailed,
        RejectClass::BadAdvbase,
        RejectClass::AddressClash,
    ];

    /// Stable snake_case name, used as the counter name in `status` output.
    pub fn name(self) -> &'static str {
        match self {
            RejectClass::Malformed => "malformed",
            RejectClass::BadTtl => "bad_ttl",
            RejectClass::BadVersion => "bad_version",
            RejectClass::BadType => "bad_type",
            RejectClass::BadChecksum => "bad_checksum",
            RejectClass::UnknownVhid => "unknown_vhid",
            RejectClass::AuthFailed => "auth_failed",
            RejectClass::BadAdvbase => "bad_advbase",
            RejectClass::AddressClash => "address_clash",
        }
    }
}

impl fmt::Display for RejectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Reject {
    pub fn class(&self) -> RejectClass {
        match self {
            Reject::Malformed => RejectClass::Malformed,
            Reject::BadTtl(_) => RejectClass::BadTtl,
            Reject::BadVersion(_) => RejectClass::BadVersion,
            Reject::BadType(_) => RejectClass::BadType,
            Reject::BadChecksum => RejectClass::BadChecksum,
            Reject::UnknownVhid(_) => RejectClass::UnknownVhid,
            Reject::AuthFailed { .. } => RejectClass::AuthFailed,
            Reject::BadAdvbase { .. } => RejectClass::BadAdvbase,
            Reject::AddressClash { .. } => RejectClass::AddressClash,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Malformed => f.write_str(
                "malformed datagram (bad IPv4 header, not protocol 112, no IPv6 hop limit, or truncated CARP header)",
            ),
            Reject::BadTtl(ttl) => write!(
                f,
                "TTL/hop limit {ttl}, CARP requires 255 (sent from another subnet or through a router?)"
            ),
            Reject::BadVersion(v) => write!(
                f,
                "CARP version {v}, only version 2 is supported (VRRPv3 on the link?)"
            ),
            Reject::BadType(t) => write!(f, "CARP message type {t}, only 1 (advertisement) exists"),
            Reject::BadChecksum => f.write_str(
                "CARP checksum mismatch (corrupted, or a VRRPv2 packet: same protocol 112)",
            ),
            Reject::UnknownVhid(v) => write!(
                f,
                "vhid {v} is not configured here (another cluster, or a VRRP router id clash?)"
            ),
            Reject::AuthFailed { vhid, diagnosis } => {
                write!(f, "authentication failed for vhid {vhid}: {diagnosis}")
            }
            Reject::BadAdvbase { vhid } => write!(
                f,
                "advbase 0 for vhid {vhid}: no CARP peer may advertise that (1..=255)"
            ),
            Reject::AddressClash { vhid } => write!(
                f,
                "advert for vhid {vhid} from our own source address: another host uses \
                 this address (or the LAN reflects our frames back); our socket does not \
                 loop our adverts back"
            ),
        }
    }
}

impl From<DecodeError> for Reject {
    fn from(e: DecodeError) -> Reject {
        match e {
            DecodeError::Truncated { .. } => Reject::Malformed,
            DecodeError::BadVersion(v) => Reject::BadVersion(v),
            DecodeError::BadType(t) => Reject::BadType(t),
            DecodeError::BadChecksum => Reject::BadChecksum,
        }
    }
}

/// An authenticated advert and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub src: Ipv4Addr,
    pub advert: Advert,
    /// Which of the keys `key_for` gave verified it: 0 is the group's
    /// current key, more a previous address list (docs/safety.md §10).
    pub key: usize,
}

/// Classifies one datagram from the raw proto-112 socket.
///
/// `own` are our own advert source addresses: since our socket does not
/// loop multicast back, a datagram from one of them is an address clash
/// ([`Reject::AddressClash`], `docs/interop.md`, "Address clash");
/// `key_for` returns the keys of a vhid we run (its current [`AuthKey`]
/// first, then the previous address lists it still accepts), `None`
/// otherwise.
/// Checks, in order: IPv4 header and protocol 112, TTL 255 (RFC 3768 §7.1;
/// FreeBSD `carp_input_c` drops "ttl != 255"), CARP version/type/checksum,
/// own source, known vhid, HMAC, advbase not 0. An HMAC failure is
/// diagnosed (wrong pass vs. different address list) because operators
/// need to know which one to fix. To log the sender of a rejected
/// datagram, call [`split_ipv4`] on it.
pub fn classify_v4<'k>(
    buf: &[u8],
    own: &[Ipv4Addr],
    key_for: impl Fn(u8) -> Option<&'k [AuthKey]>,
) -> Result<Received, Reject> {
    let (meta, payload) = split_ipv4(buf).map_err(|_| Reject::Malformed)?;
    if meta.proto != IPPROTO_CARP {
        return Err(Reject::Malformed);
    }
    if meta.ttl != CARP_TTL {
        return Err(Reject::BadTtl(meta.ttl));
    }
    let advert = Advert::decode(payload)?;
    if own.contains(&meta.src) {
        return Err(Reject::AddressClash { vhid: advert.vhid });
    }
    let keys = key_for(advert.vhid).unwrap_or_default();
    let Some(current) = keys.first() else {
        return Err(Reject::UnknownVhid(advert.vhid));
    };
    let Some(key) = AuthKey::verify_any(keys, &advert) else {
        let candidates = candidate_lists(&current.addrs(), IpAddr::V4(meta.src));
        return Err(Reject::AuthFailed {
            vhid: advert.vhid,
            diagnosis: diagnose_auth(current.pass(), &advert, &candidates),
        });
    };
    if advert.advbase == 0 {
        return Err(Reject::BadAdvbase { vhid: advert.vhid });
    }
    Ok(Received {
        src: meta.src,
        advert,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::super::packet::{CARP_GROUP_V4, CARP_LEN};
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    const OWN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

    fn ip_header(src: Ipv4Addr, ttl: u8, proto: u8, payload_len: usize) -> Vec<u8> {
        let total = u16::try_from(20 + payload_len).unwrap();
        let mut h = vec![0x45, 0x10];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0, ttl, proto, 0, 0]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&CARP_GROUP_V4.octets());
        let sum = super::super::packet::internet_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h
    }

    fn datagram(src: Ipv4Addr, ttl: u8, carp: &[u8]) -> Vec<u8> {
        let mut d = ip_header(src, ttl, IPPROTO_CARP, carp.len());
        d.extend_from_slice(carp);
        d
    }

    fn key() -> AuthKey {
        AuthKey::new(b"secret", &[IpAddr::V4(VIP)])
    }

    fn good_carp(k: &AuthKey) -> [u8; CARP_LEN] {
        Advert::signed(k, 7, 1, 0, 42).encode()
    }

    fn classify(buf: &[u8], k: &AuthKey) -> Result<Received, Reject> {
        classify_v4(buf, &[OWN], |vhid| {
            (vhid == 7).then_some(std::slice::from_ref(k))
        })
    }

    fn parse_hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.bytes())
            .filter(u8::is_ascii_hexdigit)
            .collect();
        assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn split_honours_ihl_and_total_length() {
        let k = key();
        let carp = good_carp(&k);
        // IHL 6 (one 4-byte option word: NOPs) plus 4 bytes of link padding.
        let mut d = ip_header(SRC, 255, IPPROTO_CARP, carp.len() + 4);
        d[0] = 0x46;
        d.extend_from_slice(&[1, 1, 1, 1]);
        d.extend_from_slice(&carp);
        d.extend_from_slice(&[0xee; 4]);
        let (meta, payload) = split_ipv4(&d).unwrap();
        assert_eq!(payload, carp.as_slice());
        assert_eq!(
            meta,
            Ipv4Meta {
                src: SRC,
                dst: CARP_GROUP_V4,
                ttl: 255,
                proto: IPPROTO_CARP
            }
        );
        assert_eq!(classify(&d, &k).map(|r| r.src), Ok(SRC));
    }

    #[test]
    fn split_rejects_broken_headers() {
        let d = datagram(SRC, 255, &good_carp(&key()));
        assert_eq!(
            split_ipv4(&d[..19]),
            Err(Ipv4Error::Truncated { len: 19, need: 20 })
        );
        let mut b = d.clone();
        b[0] = 0x65;
        assert_eq!(split_ipv4(&b), Err(Ipv4Error::NotIpv4(6)));
        let mut b = d.clone();
        b[0] = 0x44;
        assert_eq!(split_ipv4(&b), Err(Ipv4Error::BadHeaderLength { ihl: 4 }));
        let mut b = d.clone();
        b[0] = 0x4f; // 60-byte header, only 56 bytes present
        assert_eq!(
            split_ipv4(&b),
            Err(Ipv4Error::Truncated { len: 56, need: 60 })
        );
        // Total length beyond the buffer, and below the header length.
        let mut b = d.clone();
        b[2..4].copy_from_slice(&57u16.to_be_bytes());
        assert!(matches!(
            split_ipv4(&b),
            Err(Ipv4Error::BadTotalLength { .. })
        ));
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(matches!(
            split_ipv4(&b),
            Err(Ipv4Error::BadTotalLength { .. })
        ));
        let mut b = d.clone();
        b[6] = 0x20; // more fragments
        assert_eq!(
            split_ipv4(&b),
            Err(Ipv4Error::Fragment {
                offset: 0,
                more: true
            })
        );
        // DF alone is fine.
        let mut b = d;
        b[6] = 0x40;
        assert!(split_ipv4(&b).is_ok());
    }

    #[test]
    fn accepts_good_advert() {
        let k = key();
        let d = datagram(SRC, 255, &good_carp(&k));
        let r = classify(&d, &k).unwrap();
        assert_eq!(r.src, SRC);
        assert_eq!(r.advert, Advert::signed(&k, 7, 1, 0, 42));
    }

    /// After a reload that changed the address list, the group passes its
    /// current key and the previous one (docs/safety.md §10): an advert of
    /// either verifies and says which; a failure is diagnosed against the
    /// current key.
    #[test]
    fn a_previous_address_list_verifies_and_is_named() {
        let old = key();
        let new = AuthKey::new(b"secret", &[IpAddr::V4(VIP), IpAddr::V4(SRC)]);
        let keys = [new, old];
        let classify2 = |carp: &[u8]| {
            classify_v4(&datagram(SRC, 255, carp), &[OWN], |v| {
                (v == 7).then_some(&keys[..])
            })
        };
        assert_eq!(classify2(&good_carp(&keys[0])).map(|r| r.key), Ok(0));
        assert_eq!(classify2(&good_carp(&keys[1])).map(|r| r.key), Ok(1));
        let stranger = AuthKey::new(b"secret", &[IpAddr::V4(OWN)]);
        match classify2(&good_carp(&stranger)) {
            Err(Reject::AuthFailed { vhid: 7, .. }) => {}
            other => panic!("{other:?}"),
        }
        // Only the current key (one key): the previous list fails.
        assert!(matches!(
            classify(&datagram(SRC, 255, &good_carp(&keys[1])), &keys[0]),
            Err(Reject::AuthFailed { .. })
        ));
    }

    #[test]
    fn each_reject_class() {
        let k = key();
        let carp = good_carp(&k);
        let cases: Vec<(Vec<u8>, Reject)> = vec![
            (datagram(SRC, 255, &carp)[..30].to_vec(), Reject::Malformed),
            (datagram(SRC, 255, &carp[..35]), Reject::Malformed),
            (
                {
                    let mut d = ip_header(SRC, 255, 17, carp.len());
                    d.extend_from_slice(&carp);
                    d
                },
                Reject::Malformed,
            ),
            (datagram(SRC, 64, &carp), Reject::BadTtl(64)),
            (
                {
                    let mut c = carp;
                    c[0] = 0x31;
                    datagram(SRC, 255, &c)
                },
                Reject::BadVersion(3),
            ),
            (
                {
                    let mut c = carp;
                    c[0] = 0x22;
                    datagram(SRC, 255, &c)
                },
                Reject::BadType(2),
            ),
            (
                {
                    let mut c = carp;
                    c[20] ^= 0x40;
                    datagram(SRC, 255, &c)
                },
                Reject::BadChecksum,
            ),
            (datagram(OWN, 255, &carp), Reject::AddressClash { vhid: 7 }),
            (
                datagram(SRC, 255, &Advert::signed(&k, 7, 0, 0, 42).encode()),
                Reject::BadAdvbase { vhid: 7 },
            ),
            (
                datagram(SRC, 255, &Advert::signed(&k, 8, 1, 0, 1).encode()),
                Reject::UnknownVhid(8),
            ),
            (
                datagram(
                    SRC,
                    255,
                    &Advert::signed(&AuthKey::new(b"wrong", &[IpAddr::V4(VIP)]), 7, 1, 0, 1)
                        .encode(),
                ),
                Reject::AuthFailed {
                    vhid: 7,
                    diagnosis: AuthDiagnosis::PassDiffers,
                },
            ),
        ];
        let mut seen = Vec::new();
        for (d, want) in cases {
            let got = classify(&d, &k);
            assert_eq!(got, Err(want.clone()), "datagram {d:02x?}");
            seen.push(want.class());
        }
        // Every class is exercised (keeps this test in step with the enum).
        for c in RejectClass::ALL {
            assert!(seen.contains(&c), "class {c} not covered");
        }
    }

    #[test]
    fn advbase_zero_is_rejected_only_once_authentic() {
        let k = key();
        // Any advbase from 1 up is fine, 255 included (the bow-out).
        for advbase in [1, 2, 255] {
            let d = datagram(SRC, 255, &Advert::signed(&k, 7, advbase, 0, 9).encode());
            assert!(classify(&d, &k).is_ok(), "advbase {advbase}");
        }
        // With a wrong pass the authentication failure is what counts.
        let wrong = AuthKey::new(b"wrong", &[IpAddr::V4(VIP)]);
        let d = datagram(SRC, 255, &Advert::signed(&wrong, 7, 0, 0, 9).encode());
        assert_eq!(
            classify(&d, &k).map_err(|e| e.class()),
            Err(RejectClass::AuthFailed)
        );
    }

    #[test]
    fn our_source_address_from_the_wire_is_a_clash_even_for_other_vhids() {
        let k = key();
        let d = datagram(OWN, 255, &Advert::signed(&k, 8, 1, 0, 1).encode());
        let e = classify(&d, &k).unwrap_err();
        assert_eq!(e, Reject::AddressClash { vhid: 8 });
        assert!(
            e.to_string().contains("another host uses this address"),
            "{e}"
        );
    }

    #[test]
    fn ttl_is_checked_before_carp_contents() {
        // A VRRP-style packet from a router: TTL wins, so the operator sees
        // "bad_ttl" rather than a misleading decode error.
        let mut c = good_carp(&key());
        c[0] = 0x31;
        assert_eq!(
            classify(&datagram(SRC, 1, &c), &key()),
            Err(Reject::BadTtl(1))
        );
    }

    #[test]
    fn auth_failure_diagnoses_address_list() {
        // Our list has two addresses; the peer (ucarp) hashes only one.
        let other = Ipv4Addr::new(192, 0, 2, 51);
        let ours = AuthKey::new(b"secret", &[IpAddr::V4(VIP), IpAddr::V4(other)]);
        let peer = AuthKey::new(b"secret", &[IpAddr::V4(other)]);
        let d = datagram(SRC, 255, &Advert::signed(&peer, 7, 1, 0, 5).encode());
        assert_eq!(
            classify(&d, &ours),
            Err(Reject::AuthFailed {
                vhid: 7,
                diagnosis: AuthDiagnosis::PassMatchesAddressesDiffer {
                    peer_addrs: vec![IpAddr::V4(other)]
                }
            })
        );
    }

    #[test]
    fn reject_class_names_are_stable_and_unique() {
        let names: Vec<&str> = RejectClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "malformed",
                "bad_ttl",
                "bad_version",
                "bad_type",
                "bad_checksum",
                "unknown_vhid",
                "auth_failed",
                "bad_advbase",
                "address_clash"
            ]
        );
    }

    use crate::carp::test_rng::Rng;

    #[test]
    fn fuzz_never_panics_and_accepts_only_authentic() {
        let k = key();
        let valid = datagram(SRC, 255, &good_carp(&k));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seen = std::collections::BTreeMap::new();
        let mut accepted = 0;
        for i in 0..100_000 {
            let buf: Vec<u8> = match i % 3 {
                0 => {
                    // Random bytes, often starting like an IPv4 header.
                    let len = rng.below(96);
                    let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    if let Some(first) = b.first_mut() {
                        if rng.below(2) == 0 {
                            *first = 0x40 | (*first & 0x0f);
                        }
                    }
                    b
                }
                1 => {
                    // Mutated valid datagram: a few byte changes, maybe resized.
                    let mut b = valid.clone();
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(b.len());
                        b[at] = rng.next() as u8;
                    }
                    match rng.below(4) {
                        0 => b.truncate(rng.below(b.len() + 1)),
                        1 => b.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
                        _ => {}
                    }
                    b
                }
                _ => {
                    // Well-formed CARP with random fields and a valid
                    // checksum, to reach the vhid/own/HMAC checks.
                    let mut adv = Advert::signed(&k, 7, 1, 0, rng.next());
                    adv.vhid = [7, 7, 7, rng.next() as u8][rng.below(4)];
                    adv.advskew = rng.next() as u8;
                    adv.advbase = [1, 1, 0, rng.next() as u8][rng.below(4)];
                    if rng.below(2) == 0 {
                        adv.hmac[rng.below(20)] ^= 1 << rng.below(8);
                    }
                    let src = [SRC, OWN][rng.below(2)];
                    let ttl = [255, 255, 255, rng.next() as u8][rng.below(4)];
                    datagram(src, ttl, &adv.encode())
                }
            };
            let _ = split_ipv4(&buf);
            let _ = Advert::decode(&buf);
            if let Some(tail) = buf.get(20..) {
                let _ = Advert::decode(tail);
            }
            match classify(&buf, &k) {
                Ok(r) => {
                    // Anything accepted must be authentic for the key.
                    assert!(k.verify(&r.advert));
                    accepted += 1;
                }
                Err(e) => *seen.entry(e.class()).or_insert(0) += 1,
            }
        }
        // The inputs reached every check, not only the first ones.
        assert!(accepted > 0);
        for c in RejectClass::ALL {
            assert!(seen.contains_key(&c), "fuzz never produced {c}: {seen:?}");
        }
    }

    #[test]
    fn display_is_operator_readable() {
        assert!(Reject::BadTtl(64).to_string().contains("255"));
        let d = AuthDiagnosis::PassMatchesAddressesDiffer {
            peer_addrs: vec![IpAddr::V4(VIP)],
        };
        let msg = Reject::AuthFailed {
            vhid: 7,
            diagnosis: d,
        }
        .to_string();
        assert!(
            msg.contains("vhid 7") && msg.contains("192.0.2.50"),
            "{msg}"
        );
    }

    /// A real ucarp 1.5.2 advert (see the fixture's comment for how it was
    /// captured): proves the wire format and HMAC interoperate.
    #[test]
    fn ucarp_capture_verifies() {
        let d = parse_hex(include_str!("../../tests/fixtures/ucarp_advert_v4.hex"));
        let ucarp_key = AuthKey::new(b"secret", &[IpAddr::V4(VIP)]);
        let (meta, payload) = split_ipv4(&d).unwrap();
        assert_eq!(meta.src, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(meta.dst, CARP_GROUP_V4);
        let adv = Advert::decode(payload).unwrap();
        assert_eq!((adv.vhid, adv.advbase, adv.advskew), (7, 1, 0));
        assert!(ucarp_key.verify(&adv));
        // Re-encoding reproduces ucarp's bytes exactly (checksum included).
        assert_eq!(adv.encode().as_slice(), payload);
        let r = classify_v4(&d, &[], |v| {
            (v == 7).then_some(std::slice::from_ref(&ucarp_key))
        })
        .unwrap();
        assert_eq!(r.src, Ipv4Addr::new(192, 0, 2, 1));
        // With the wrong pass it is an auth failure, not a silent drop.
        let wrong = AuthKey::new(b"Secret", &[IpAddr::V4(VIP)]);
        assert_eq!(
            classify_v4(&d, &[], |v| (v == 7)
                .then_some(std::slice::from_ref(&wrong))),
            Err(Reject::AuthFailed {
                vhid: 7,
                diagnosis: AuthDiagnosis::PassDiffers,
            })
        );
    }
}
