//! The CARP v2 advertisement: encode, decode and HMAC-SHA1 authentication.
//!
//! The wire layout is that of FreeBSD/OpenBSD `sys/netinet/ip_carp.h`
//! (`struct carp_header`), which ucarp copies; the check vectors are tested
//! below. Nothing here panics on input from the network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hmac::digest::{Digest, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Length of the CARP header on the wire.
pub const CARP_LEN: usize = 36;
/// The only CARP version there is (`CARP_VERSION` in ip_carp.h).
pub const CARP_VERSION: u8 = 2;
/// The only CARP message type (`CARP_ADVERTISEMENT`).
pub const CARP_TYPE_ADVERTISEMENT: u8 = 1;
/// `carp_authlen`: counter + HMAC length in 32-bit words, always 7.
pub const CARP_AUTHLEN: u8 = 7;
/// IP protocol number shared with VRRP.
pub const IPPROTO_CARP: u8 = 112;
/// IPv4 multicast group adverts are sent to.
pub const CARP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group adverts are sent to.
pub const CARP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit on send, and the only one accepted on receive.
pub const CARP_TTL: u8 = 255;
/// Longest `pass` FreeBSD's `ifconfig ... pass` accepts (its key buffer is 20
/// bytes including the terminating NUL). Enforced by the configuration.
pub const CARP_MAX_PASS_LEN: usize = 19;
/// advbase and advskew of a bow-out advert (a master leaving gracefully).
pub const BOW_OUT: u8 = 255;

// Byte offsets inside the header.
const OFF_VHID: usize = 1;
const OFF_ADVSKEW: usize = 2;
const OFF_AUTHLEN: usize = 3;
const OFF_DEMOTE: usize = 4;
const OFF_ADVBASE: usize = 5;
const OFF_CKSUM: usize = 6;
const OFF_COUNTER: usize = 8;
const OFF_HMAC: usize = 16;

/// HMAC-SHA1 block size in bytes (RFC 2104 "B").
const SHA1_BLOCK_LEN: usize = 64;

/// Upper bound on the single-address candidates [`candidate_lists`] returns,
/// so diagnosing one bad advert costs a bounded number of HMACs.
pub const MAX_SINGLE_CANDIDATES: usize = 256;

/// One CARP v2 advertisement (header only; the IP layer is elsewhere).
///
/// Layout (`struct carp_header`, FreeBSD `sys/netinet/ip_carp.h`):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | VirtualHostID |    AdvSkew    |  AuthLen (7)  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Demote / Rsvd |    AdvBase    |           Checksum            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Counter (64 bits,                        |
/// +                        big-endian)                            +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                                                               +
/// |                     SHA-1 HMAC (20 bytes)                     |
/// +                                                               +
/// |                                                               |
/// +                                                               +
/// |                                                               |
/// +                                                               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Version is 2 and Type 1 (advertisement), so byte 0 is always 0x21. The
/// checksum is the Internet checksum (RFC 1071) of the 36 header bytes.
/// Byte 4 is `carp_pad1` (reserved) on FreeBSD and the demote counter on
/// OpenBSD; it takes no part in the election here and is sent as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    pub vhid: u8,
    pub advskew: u8,
    pub advbase: u8,
    pub demote: u8,
    pub counter: u64,
    pub hmac: [u8; 20],
}

/// Why a received CARP header was rejected before authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("CARP header truncated: {len} bytes, need {CARP_LEN}")]
    Truncated { len: usize },
    #[error("CARP version {0}, only version 2 is supported (VRRPv3 on the link?)")]
    BadVersion(u8),
    #[error("CARP message type {0}, only 1 (advertisement) exists")]
    BadType(u8),
    #[error("CARP header checksum mismatch (corrupted, or a VRRPv2 packet: same protocol 112)")]
    BadChecksum,
}

impl Advert {
    /// Builds an advert signed with `key`; the demote byte is 0.
    pub fn signed(key: &AuthKey, vhid: u8, advbase: u8, advskew: u8, counter: u64) -> Advert {
        Advert {
            vhid,
            advskew,
            advbase,
            demote: 0,
            counter,
            hmac: key.hmac(vhid, counter),
        }
    }

    /// The 36 header bytes, checksum filled in.
    pub fn encode(&self) -> [u8; CARP_LEN] {
        let mut b = [0u8; CARP_LEN];
        b[0] = (CARP_VERSION << 4) | CARP_TYPE_ADVERTISEMENT;
        b[OFF_VHID] = self.vhid;
        b[OFF_ADVSKEW] = self.advskew;
        b[OFF_AUTHLEN] = CARP_AUTHLEN;
        b[OFF_DEMOTE] = self.demote;
        b[OFF_ADVBASE] = self.advbase;
        b[OFF_COUNTER..OFF_HMAC].copy_from_slice(&self.counter.to_be_bytes());
        b[OFF_HMAC..].copy_from_slice(&self.hmac);
        let sum = internet_checksum(&b);
        b[OFF_CKSUM..OFF_COUNTER].copy_from_slice(&sum.to_be_bytes());
        b
    }

    /// Parses the first 36 bytes of `buf` (a CARP payload; trailing bytes are
    /// ignored). Checks version, type and checksum, not the HMAC.
    ///
    /// `authlen` is not checked: FreeBSD's `carp_input_c` does not either, and
    /// the HMAC decides authenticity anyway.
    pub fn decode(buf: &[u8]) -> Result<Advert, DecodeError> {
        let Some(h) = buf.first_chunk::<CARP_LEN>() else {
            return Err(DecodeError::Truncated { len: buf.len() });
        };
        let version = h[0] >> 4;
        if version != CARP_VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let kind = h[0] & 0x0f;
        if kind != CARP_TYPE_ADVERTISEMENT {
            return Err(DecodeError::BadType(kind));
        }
        // RFC 1071: summing the data including its checksum gives 0 (after
        // the final complement) when nothing was altered.
        if internet_checksum(h) != 0 {
            return Err(DecodeError::BadChecksum);
        }
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&h[OFF_COUNTER..OFF_HMAC]);
        let mut hmac = [0u8; 20];
        hmac.copy_from_slice(&h[OFF_HMAC..]);
        Ok(Advert {
            vhid: h[OFF_VHID],
            advskew: h[OFF_ADVSKEW],
            advbase: h[OFF_ADVBASE],
            demote: h[OFF_DEMOTE],
            counter: u64::from_be_bytes(counter),
            hmac,
        })
    }

    /// The sender's advert interval, `advbase + advskew/256` seconds; the
    /// smaller interval wins the election.
    pub fn interval(&self) -> Duration {
        // 1/256 s = 3_906_250 ns exactly.
        Duration::from_secs(u64::from(self.advbase))
            + Duration::from_nanos(u64::from(self.advskew) * 3_906_250)
    }

    /// A master leaving gracefully announces advbase 255 / advskew 255 so
    /// that every backup takes over at once (`docs/interop.md`, section 4,
    /// "Bow-out").
    pub fn is_bow_out(&self) -> bool {
        self.advbase == BOW_OUT && self.advskew == BOW_OUT
    }
}

/// RFC 1071 Internet checksum: one's-complement of the one's-complement sum
/// of big-endian 16-bit words (an odd trailing byte is padded with zero).
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut words = data.chunks_exact(2);
    let mut sum: u32 = 0;
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The HMAC key material of one vhid: the `pass` plus the address list the
/// HMAC covers (`hmac_addrs`), kept sorted as the HMAC needs it.
#[derive(Clone)]
pub struct AuthKey {
    pass: Vec<u8>,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    /// HMAC state with the key already absorbed (RFC 2104 inner/outer pads),
    /// cloned for every advert.
    keyed: Hmac<Sha1>,
}

impl fmt::Debug for AuthKey {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKey")
            .field("pass", &format_args!("<{} bytes>", self.pass.len()))
            .field("v4", &self.v4)
            .field("v6", &self.v6)
            .finish()
    }
}

impl AuthKey {
    /// `pass` is used as the raw HMAC key (the configuration limits it to
    /// [`CARP_MAX_PASS_LEN`] bytes). `addrs` may be in any order and may hold
    /// duplicates: like FreeBSD's `carp_hmac_prepare`, which walks the
    /// addresses in ascending order skipping equal ones, each address is
    /// hashed once, IPv4 before IPv6.
    pub fn new(pass: &[u8], addrs: &[IpAddr]) -> AuthKey {
        let mut v4: Vec<Ipv4Addr> = Vec::new();
        let mut v6: Vec<Ipv6Addr> = Vec::new();
        for a in addrs {
            match a {
                IpAddr::V4(a) => v4.push(*a),
                IpAddr::V6(a) => v6.push(*a),
            }
        }
        v4.sort_unstable();
        v4.dedup();
        v6.sort_unstable();
        v6.dedup();
        AuthKey {
            pass: pass.to_vec(),
            v4,
            v6,
            keyed: keyed_hmac(pass),
        }
    }

    /// The shared secret (for diagnosing auth failures).
    pub fn pass(&self) -> &[u8] {
        &self.pass
    }

    /// The addresses the HMAC covers, in hashing order.
    pub fn addrs(&self) -> Vec<IpAddr> {
        let v4 = self.v4.iter().map(|a| IpAddr::V4(*a));
        v4.chain(self.v6.iter().map(|a| IpAddr::V6(*a))).collect()
    }

    /// HMAC-SHA1 over `0x02 0x01 vhid ‖ IPv4 addrs ‖ IPv6 addrs ‖ counter`
    /// (FreeBSD `carp_hmac_prepare` + `carp_hmac_generate`).
    pub fn hmac(&self, vhid: u8, counter: u64) -> [u8; 20] {
        self.mac(vhid, counter).finalize().into_bytes().into()
    }

    /// True if `adv` carries the HMAC this key produces for its vhid and
    /// counter. The comparison is constant-time.
    pub fn verify(&self, adv: &Advert) -> bool {
        self.mac(adv.vhid, adv.counter)
            .verify_slice(&adv.hmac)
            .is_ok()
    }

    /// The first of `keys` that verifies `adv` (its index), if any: a
    /// group accepts its current key and, for a while after a reload that
    /// changed its address list, the previous ones (docs/safety.md §10).
    pub fn verify_any(keys: &[AuthKey], adv: &Advert) -> Option<usize> {
        keys.iter().position(|k| k.verify(adv))
    }

    fn mac(&self, vhid: u8, counter: u64) -> Hmac<Sha1> {
        let mut m = self.keyed.clone();
        m.update(&[CARP_VERSION, CARP_TYPE_ADVERTISEMENT, vhid]);
        for a in &self.v4 {
            m.update(&a.octets());
        }
        for a in &self.v6 {
            m.update(&a.octets());
        }
        m.update(&counter.to_be_bytes());
        m
    }
}

/// An HMAC-SHA1 keyed with `pass`. RFC 2104 §2: a key shorter than the
/// block is zero-padded to it, a longer one is hashed first. Doing this here
/// (as FreeBSD's `carp_hmac_prepare` copies the key into a zeroed 64-byte
/// pad) uses the infallible fixed-size constructor.
fn keyed_hmac(pass: &[u8]) -> Hmac<Sha1> {
    let mut block = [0u8; SHA1_BLOCK_LEN];
    if pass.len() > SHA1_BLOCK_LEN {
        let digest = Sha1::digest(pass);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..pass.len()].copy_from_slice(pass);
    }
    <Hmac<Sha1> as KeyInit>::new(&block.into())
}

/// Why an advert failed [`AuthKey::verify`], as far as we can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDiagnosis {
    /// The pass is right but the peer hashes another address list (set
    /// `hmac_addrs` to this list to interoperate).
    PassMatchesAddressesDiffer { peer_addrs: Vec<IpAddr> },
    /// No plausible address list verifies with our pass: the pass most
    /// likely differs (or the peer hashes a list we did not guess).
    PassDiffers,
}

impl fmt::Display for AuthDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthDiagnosis::PassMatchesAddressesDiffer { peer_addrs } => {
                write!(
                    f,
                    "pass matches but the peer's HMAC covers other addresses: ["
                )?;
                for (i, a) in peer_addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str("] (set hmac_addrs to this list)")
            }
            AuthDiagnosis::PassDiffers => {
                f.write_str("pass differs (no plausible address list verifies with our pass)")
            }
        }
    }
}

/// Tries `pass` with each candidate address list; the first list that
/// verifies `adv` is reported.
pub fn diagnose_auth(pass: &[u8], adv: &Advert, candidates: &[Vec<IpAddr>]) -> AuthDiagnosis {
    candidates
        .iter()
        .find(|list| AuthKey::new(pass, list).verify(adv))
        .map_or(AuthDiagnosis::PassDiffers, |list| {
            AuthDiagnosis::PassMatchesAddressesDiffer {
                peer_addrs: list.clone(),
            }
        })
}

/// Address lists a peer with the same pass plausibly hashes, given our own
/// list `own` and the advert's source `src`: each single address of `own`
/// (ucarp hashes only its `-a` address; at most [`MAX_SINGLE_CANDIDATES`]),
/// all IPv4 addresses of `own` only, `src` alone, and the empty list.
/// Lists that hash identically (same set) are returned once.
pub fn candidate_lists(own: &[IpAddr], src: IpAddr) -> Vec<Vec<IpAddr>> {
    let mut out: Vec<Vec<IpAddr>> = Vec::new();
    let mut seen: Vec<Vec<IpAddr>> = Vec::new();
    let mut push = |list: Vec<IpAddr>| {
        let mut canon = list.clone();
        canon.sort_unstable();
        canon.dedup();
        if !seen.contains(&canon) {
            seen.push(canon);
            out.push(list);
        }
    };
    for a in own.iter().take(MAX_SINGLE_CANDIDATES) {
        push(vec![*a]);
    }
    push(own.iter().copied().filter(IpAddr::is_ipv4).collect());
    push(vec![src]);
    push(Vec::new());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn check_vector_1_full_header() {
        let key = AuthKey::new(b"secret", &[v4([10, 0, 0, 10])]);
        let adv = Advert::signed(&key, 1, 1, 0, 0x0102_0304_0506_0708);
        let want = hex("21 01 00 07 00 01 9c 90 0102030405060708 \
             2607d35574e9abf36e30267ef6ef7edc0e58ff44");
        assert_eq!(adv.encode().as_slice(), want.as_slice());
        assert_eq!(Advert::decode(&want), Ok(adv));
        assert!(key.verify(&adv));
    }

    #[test]
    fn check_vector_2_hmac_sorts_addresses() {
        // Given out of order on purpose: the HMAC sorts them.
        let key = AuthKey::new(b"secret", &[v4([192, 0, 2, 20]), v4([192, 0, 2, 10])]);
        assert_eq!(
            key.hmac(7, 0).as_slice(),
            hex("e3a47315a9ac6e128154316edccca3931465a150").as_slice()
        );
    }

    #[test]
    fn ipv6_addresses_follow_ipv4_in_hmac() {
        let a6: IpAddr = "2001:db8::1".parse().unwrap();
        let a4 = v4([192, 0, 2, 1]);
        let key = AuthKey::new(b"k", &[a6, a4]);
        let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(b"k").unwrap();
        m.update(&[2, 1, 9, 192, 0, 2, 1]);
        m.update(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        m.update(&5u64.to_be_bytes());
        let want: [u8; 20] = m.finalize().into_bytes().into();
        assert_eq!(key.hmac(9, 5), want);
        assert_eq!(key.addrs(), vec![a4, a6]);
    }

    #[test]
    fn long_pass_is_hashed_like_rfc2104() {
        // Pass longer than the SHA-1 block: must equal the hmac crate's own
        // key handling, i.e. our fixed-block constructor is faithful.
        let pass = [0x5au8; 100];
        for p in [&pass[..], &pass[..64], &pass[..19], &[][..]] {
            let key = AuthKey::new(p, &[v4([192, 0, 2, 1])]);
            let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(p).unwrap();
            m.update(&[2, 1, 3, 192, 0, 2, 1]);
            m.update(&7u64.to_be_bytes());
            let want: [u8; 20] = m.finalize().into_bytes().into();
            assert_eq!(key.hmac(3, 7), want, "pass length {}", p.len());
        }
    }

    #[test]
    fn encode_decode_roundtrip() {
        let key = AuthKey::new(b"pw", &[v4([203, 0, 113, 5])]);
        for (vhid, advbase, advskew, counter) in [
            (1, 1, 0, 0),
            (255, 255, 255, u64::MAX),
            (42, 3, 100, 0xdead_beef),
        ] {
            let mut adv = Advert::signed(&key, vhid, advbase, advskew, counter);
            adv.demote = 3;
            let wire = adv.encode();
            assert_eq!(wire[0], 0x21);
            assert_eq!(wire[3], CARP_AUTHLEN);
            assert_eq!(Advert::decode(&wire), Ok(adv));
            // Trailing bytes are ignored.
            let mut longer = wire.to_vec();
            longer.extend_from_slice(&[0xff; 8]);
            assert_eq!(Advert::decode(&longer), Ok(adv));
            assert!(key.verify(&adv));
        }
    }

    #[test]
    fn decode_rejects_short_bad_version_type() {
        let key = AuthKey::new(b"pw", &[]);
        let wire = Advert::signed(&key, 1, 1, 0, 0).encode();
        for len in 0..CARP_LEN {
            assert_eq!(
                Advert::decode(&wire[..len]),
                Err(DecodeError::Truncated { len })
            );
        }
        let mut b = wire;
        b[0] = 0x31;
        assert_eq!(Advert::decode(&b), Err(DecodeError::BadVersion(3)));
        let mut b = wire;
        b[0] = 0x22;
        assert_eq!(Advert::decode(&b), Err(DecodeError::BadType(2)));
    }

    #[test]
    fn checksum_catches_every_single_bit_flip() {
        let key = AuthKey::new(b"secret", &[v4([192, 0, 2, 50])]);
        let wire = Advert::signed(&key, 7, 1, 0, 0x1122_3344_5566_7788).encode();
        for bit in 0..CARP_LEN * 8 {
            let mut b = wire;
            b[bit / 8] ^= 1 << (bit % 8);
            // Flips in byte 0 turn into version/type errors first.
            assert!(Advert::decode(&b).is_err(), "bit {bit} flip accepted");
            if bit >= 8 {
                assert_eq!(Advert::decode(&b), Err(DecodeError::BadChecksum));
            }
        }
    }

    #[test]
    fn interval_and_bow_out() {
        let mut adv = Advert {
            vhid: 1,
            advskew: 128,
            advbase: 1,
            demote: 0,
            counter: 0,
            hmac: [0; 20],
        };
        assert_eq!(adv.interval(), Duration::from_millis(1500));
        assert!(!adv.is_bow_out());
        adv.advbase = 255;
        assert!(!adv.is_bow_out());
        adv.advskew = 255;
        assert!(adv.is_bow_out());
        assert_eq!(
            adv.interval(),
            Duration::from_secs(255) + Duration::from_nanos(255 * 3_906_250)
        );
    }

    #[test]
    fn verify_rejects_other_vhid_counter_or_hmac() {
        let key = AuthKey::new(b"secret", &[v4([192, 0, 2, 50])]);
        let adv = Advert::signed(&key, 7, 1, 0, 99);
        assert!(key.verify(&adv));
        assert!(!key.verify(&Advert { vhid: 8, ..adv }));
        assert!(!key.verify(&Advert {
            counter: 100,
            ..adv
        }));
        let mut bad = adv;
        bad.hmac[19] ^= 1;
        assert!(!key.verify(&bad));
        // advbase/advskew are not covered by the HMAC (as in FreeBSD/ucarp).
        assert!(key.verify(&Advert { advskew: 9, ..adv }));
    }

    #[test]
    fn debug_does_not_leak_pass() {
        let key = AuthKey::new(b"hunter2", &[]);
        assert!(!format!("{key:?}").contains("hunter2"));
    }

    #[test]
    fn diagnose_ucarp_style_single_address() {
        let ours = [
            v4([192, 0, 2, 50]),
            v4([192, 0, 2, 51]),
            v4([192, 0, 2, 52]),
        ];
        let src = v4([192, 0, 2, 7]);
        // The peer (ucarp -a 192.0.2.51) hashes only that address.
        let peer = AuthKey::new(b"secret", &[ours[1]]);
        let adv = Advert::signed(&peer, 7, 1, 0, 1);
        let mine = AuthKey::new(b"secret", &ours);
        assert!(!mine.verify(&adv));
        let cands = candidate_lists(&mine.addrs(), src);
        assert_eq!(
            diagnose_auth(mine.pass(), &adv, &cands),
            AuthDiagnosis::PassMatchesAddressesDiffer {
                peer_addrs: vec![ours[1]]
            }
        );
        // Wrong pass: no list helps.
        let stranger = AuthKey::new(b"other", &[ours[1]]);
        let adv = Advert::signed(&stranger, 7, 1, 0, 1);
        assert_eq!(
            diagnose_auth(mine.pass(), &adv, &cands),
            AuthDiagnosis::PassDiffers
        );
    }

    #[test]
    fn diagnose_finds_source_only_and_empty_lists() {
        let ours = [v4([192, 0, 2, 50])];
        let src = v4([192, 0, 2, 7]);
        let cands = candidate_lists(&ours, src);
        for peer_list in [vec![src], vec![]] {
            let adv = Advert::signed(&AuthKey::new(b"s", &peer_list), 7, 1, 0, 1);
            assert_eq!(
                diagnose_auth(b"s", &adv, &cands),
                AuthDiagnosis::PassMatchesAddressesDiffer {
                    peer_addrs: peer_list
                }
            );
        }
    }

    #[test]
    fn candidate_lists_shape() {
        let a = v4([192, 0, 2, 1]);
        let b = v4([192, 0, 2, 2]);
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let src = v4([192, 0, 2, 9]);
        assert_eq!(
            candidate_lists(&[a, b, c], src),
            vec![vec![a], vec![b], vec![c], vec![a, b], vec![src], vec![]]
        );
        // A single own address equals "all IPv4": listed once; src == own
        // address likewise.
        assert_eq!(candidate_lists(&[a], a), vec![vec![a], vec![]]);
    }

    #[test]
    fn candidate_lists_are_bounded() {
        let own: Vec<IpAddr> = (0..2000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)))
            .collect();
        let n = candidate_lists(&own, v4([192, 0, 2, 1])).len();
        assert_eq!(n, MAX_SINGLE_CANDIDATES + 3);
    }
}
