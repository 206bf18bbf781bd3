//! Receive path for IPv6 CARP: classify what the IPv6 CARP socket delivers
//! (the payload after the IPv6 header, its source and hop limit) as an
//! accepted advert or one of the [`Reject`] classes of the IPv4 path, so
//! `ipfail status` counts both families alike (`docs/design.md` §4.8).
//!
//! FreeBSD `carp6_input` checks the hop limit (255) and the checksum, then
//! hands the header to `carp_input_c`, the same function as for IPv4: the
//! HMAC input is the same for the v4 and the v6 adverts of a vhid (all of
//! its IPv4, then all of its IPv6 addresses), so one [`AuthKey`] verifies
//! both.

use std::net::{IpAddr, Ipv6Addr};

use super::ipv4::Reject;
use super::packet::{candidate_lists, diagnose_auth, Advert, AuthKey, CARP_TTL};

/// An authenticated IPv6 advert and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received6 {
    pub src: Ipv6Addr,
    pub advert: Advert,
    /// Which of the keys `key_for` gave verified it (as
    /// [`super::ipv4::Received::key`]).
    pub key: usize,
}

/// Classifies one datagram from the IPv6 CARP socket.
///
/// `payload` starts at the CARP header (Linux raw IPv6 sockets strip the
/// IPv6 header); `hop_limit` is the one the kernel reported
/// (`IPV6_RECVHOPLIMIT`), `None` when it did not, which is rejected as
/// [`Reject::Malformed`] since the on-link check cannot be made. `own` are
/// our own IPv6 advert sources (the interface's link-local address): our
/// socket does not loop multicast back, so a datagram from one of them is
/// an address clash. Checks, in the order of `classify_v4`: hop limit 255
/// (RFC 3768 §7.1; FreeBSD `carp6_input`, "received ttl %d != 255", counted
/// as `bad_ttl` like the IPv4 TTL), CARP length/version/type/checksum, own
/// source, known vhid, HMAC (diagnosed on failure), advbase not 0.
pub fn classify_v6<'k>(
    src: Ipv6Addr,
    hop_limit: Option<u8>,
    payload: &[u8],
    own: &[Ipv6Addr],
    key_for: impl Fn(u8) -> Option<&'k [AuthKey]>,
) -> Result<Received6, Reject> {
    let hop_limit = hop_limit.ok_or(Reject::Malformed)?;
    if hop_limit != CARP_TTL {
        return Err(Reject::BadTtl(hop_limit));
    }
    let advert = Advert::decode(payload)?;
    if own.contains(&src) {
        return Err(Reject::AddressClash { vhid: advert.vhid });
    }
    let keys = key_for(advert.vhid).unwrap_or_default();
    let Some(current) = keys.first() else {
        return Err(Reject::UnknownVhid(advert.vhid));
    };
    let Some(key) = AuthKey::verify_any(keys, &advert) else {
        let candidates = candidate_lists(&current.addrs(), IpAddr::V6(src));
        return Err(Reject::AuthFailed {
            vhid: advert.vhid,
            diagnosis: diagnose_auth(current.pass(), &advert, &candidates),
        });
    };
    if advert.advbase == 0 {
        return Err(Reject::BadAdvbase { vhid: advert.vhid });
    }
    Ok(Received6 { src, advert, key })
}

#[cfg(test)]
mod tests {
    use super::super::ipv4::RejectClass;
    use super::super::packet::{internet_checksum, AuthDiagnosis, CARP_LEN};
    use super::*;
    use std::net::Ipv4Addr;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    const OWN: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const VIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

    fn key() -> AuthKey {
        AuthKey::new(b"secret", &[IpAddr::V6(VIP6), IpAddr::V4(VIP4)])
    }

    fn classify(
        src: Ipv6Addr,
        hop: Option<u8>,
        carp: &[u8],
        k: &AuthKey,
    ) -> Result<Received6, Reject> {
        classify_v6(src, hop, carp, &[OWN], |vhid| {
            (vhid == 7).then_some(std::slice::from_ref(k))
        })
    }

    /// An advert built by hand from the definition (`docs/design.md` §4.2,
    /// §4.4), not by `Advert::encode`/`AuthKey::hmac`: the HMAC input is
    /// `0x02 0x01 vhid ‖ IPv4 addresses ‖ IPv6 addresses ‖ counter`, keyed
    /// with the pass zero-padded to 64 bytes (RFC 2104), as FreeBSD
    /// `carp_hmac_prepare` builds it for both families of a vhid.
    fn hand_built(vhid: u8, advbase: u8, advskew: u8, counter: u64) -> [u8; CARP_LEN] {
        use hmac::{Hmac, Mac};
        let mut pad = [0u8; 64];
        pad[..6].copy_from_slice(b"secret");
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&pad).unwrap();
        mac.update(&[0x02, 0x01, vhid]);
        mac.update(&VIP4.octets());
        mac.update(&VIP6.octets());
        mac.update(&counter.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut b = [0u8; CARP_LEN];
        b[0] = 0x21;
        b[1] = vhid;
        b[2] = advskew;
        b[3] = 7;
        b[5] = advbase;
        b[8..16].copy_from_slice(&counter.to_be_bytes());
        b[16..].copy_from_slice(&digest);
        let sum = internet_checksum(&b);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn hand_built_ipv6_advert_verifies() {
        let k = key();
        let carp = hand_built(7, 1, 100, 0x0102_0304_0506_0708);
        let r = classify(SRC, Some(255), &carp, &k).unwrap();
        assert_eq!(r.src, SRC);
        assert_eq!(
            (r.advert.vhid, r.advert.advbase, r.advert.advskew),
            (7, 1, 100)
        );
        assert_eq!(r.advert.counter, 0x0102_0304_0506_0708);
        // Our encoder produces the same bytes: one header for both families.
        assert_eq!(
            Advert::signed(&k, 7, 1, 100, 0x0102_0304_0506_0708).encode(),
            carp
        );
    }

    #[test]
    fn each_reject_class() {
        let k = key();
        let carp = Advert::signed(&k, 7, 1, 0, 42).encode();
        let wrong = AuthKey::new(b"wrong", &k.addrs());
        let cases: Vec<(Ipv6Addr, Option<u8>, Vec<u8>, Reject)> = vec![
            (SRC, Some(255), carp[..35].to_vec(), Reject::Malformed),
            (SRC, None, carp.to_vec(), Reject::Malformed),
            (SRC, Some(64), carp.to_vec(), Reject::BadTtl(64)),
            (
                SRC,
                Some(255),
                {
                    let mut c = carp;
                    c[0] = 0x31;
                    c.to_vec()
                },
                Reject::BadVersion(3),
            ),
            (
                SRC,
                Some(255),
                {
                    let mut c = carp;
                    c[0] = 0x22;
                    c.to_vec()
                },
                Reject::BadType(2),
            ),
            (
                SRC,
                Some(255),
                {
                    let mut c = carp;
                    c[20] ^= 0x40;
                    c.to_vec()
                },
                Reject::BadChecksum,
            ),
            (
                OWN,
                Some(255),
                carp.to_vec(),
                Reject::AddressClash { vhid: 7 },
            ),
            (
                SRC,
                Some(255),
                Advert::signed(&k, 8, 1, 0, 1).encode().to_vec(),
                Reject::UnknownVhid(8),
            ),
            (
                SRC,
                Some(255),
                Advert::signed(&wrong, 7, 1, 0, 1).encode().to_vec(),
                Reject::AuthFailed {
                    vhid: 7,
                    diagnosis: AuthDiagnosis::PassDiffers,
                },
            ),
            (
                SRC,
                Some(255),
                Advert::signed(&k, 7, 0, 0, 1).encode().to_vec(),
                Reject::BadAdvbase { vhid: 7 },
            ),
        ];
        let mut seen = Vec::new();
        for (src, hop, carp, want) in cases {
            assert_eq!(
                classify(src, hop, &carp, &k),
                Err(want.clone()),
                "{carp:02x?}"
            );
            seen.push(want.class());
        }
        for c in RejectClass::ALL {
            assert!(seen.contains(&c), "class {c} not covered");
        }
    }

    #[test]
    fn hop_limit_is_checked_before_carp_contents() {
        let mut c = Advert::signed(&key(), 7, 1, 0, 42).encode();
        c[0] = 0x31;
        assert_eq!(classify(SRC, Some(1), &c, &key()), Err(Reject::BadTtl(1)));
    }

    #[test]
    fn auth_failure_diagnoses_an_ipv4_only_list() {
        // A peer that hashes only the IPv4 address (ucarp style).
        let peer = AuthKey::new(b"secret", &[IpAddr::V4(VIP4)]);
        let carp = Advert::signed(&peer, 7, 1, 0, 5).encode();
        assert_eq!(
            classify(SRC, Some(255), &carp, &key()),
            Err(Reject::AuthFailed {
                vhid: 7,
                diagnosis: AuthDiagnosis::PassMatchesAddressesDiffer {
                    peer_addrs: vec![IpAddr::V4(VIP4)]
                }
            })
        );
    }

    use crate::carp::test_rng::Rng;

    #[test]
    fn fuzz_never_panics_and_accepts_only_authentic() {
        let k = key();
        let valid = Advert::signed(&k, 7, 1, 0, 42).encode();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        for i in 0..50_000 {
            let mut b = valid.to_vec();
            if i % 2 == 0 {
                for _ in 0..=rng.below(3) {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
            }
            match rng.below(4) {
                0 => b.truncate(rng.below(b.len() + 1)),
                1 => b.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
                _ => {}
            }
            let hop = [Some(255), Some(255), None, Some(rng.next() as u8)][rng.below(4)];
            let src = [SRC, OWN][rng.below(2)];
            if let Ok(r) = classify(src, hop, &b, &k) {
                assert!(k.verify(&r.advert));
                accepted += 1;
            }
        }
        assert!(accepted > 0);
    }
}
