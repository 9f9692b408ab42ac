//! Client addresses: parsing from log bytes, the counting key, trusted proxies.
//!
//! A key is a `u128`: IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`),
//! so `::ffff:1.2.3.4` and `1.2.3.4` are the same client, and IPv6 addresses
//! may be grouped by prefix. A `u128` key hashes fast and needs no allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The counting key of one client (an address or an IPv6 prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub u128);

const V4_MAPPED: u128 = 0xffff_u128 << 32;
const V4_MASK: u128 = !0xffff_ffff_u128;

impl Key {
    /// The key of an address, with IPv6 addresses cut to `v6_prefix` bits.
    pub fn of(ip: IpAddr, v6_prefix: u8) -> Key {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Key(V4_MAPPED | u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Key(u128::from(v6) & prefix_mask(v6_prefix)),
        }
    }

    /// True when the key stands for an IPv4 address.
    pub fn is_v4(self) -> bool {
        self.0 & V4_MASK == V4_MAPPED
    }

    /// The IPv4 address of an IPv4 key, as a number.
    pub fn v4_bits(self) -> Option<u32> {
        self.is_v4().then_some(self.0 as u32)
    }

    /// The key of an IPv4 address given as a number.
    pub fn from_v4_bits(v4: u32) -> Key {
        Key(V4_MAPPED | u128::from(v4))
    }

    /// The batch shard (of `n`) the key belongs to with `replay --shard`:
    /// the 64-bit FNV-1a hash of its 16 bytes, big-endian (an IPv4 client
    /// as `::ffff:a.b.c.d`), modulo `n`. Fixed, so every machine of a split
    /// scan agrees; not seeded, which is harmless in a batch run (its input
    /// is already written).
    pub fn batch_shard(self, n: u32) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.0.to_be_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h % u64::from(n.max(1))) as u32
    }

    /// A key hashed from text parts (not a client), shown without its text:
    /// `#` and its 32 hex digits.
    pub fn render_hash(self) -> String {
        format!("#{:032x}", self.0)
    }

    /// Renders the key: `1.2.3.4`, `2001:db8::1`, or `2001:db8:1::/48` for a
    /// grouped IPv6 prefix.
    pub fn render(self, v6_prefix: u8) -> String {
        if self.is_v4() {
            // Not `to_string`: the formatter was 5 % of a replay that
            // alerted on every line.
            let mut out = String::with_capacity(15);
            for (i, octet) in (self.0 as u32).to_be_bytes().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(octet));
            }
            out
        } else if v6_prefix < 128 {
            format!("{}/{v6_prefix}", Ipv6Addr::from(self.0))
        } else {
            Ipv6Addr::from(self.0).to_string()
        }
    }
}

fn prefix_mask(bits: u8) -> u128 {
    match bits {
        0 => 0,
        b if b >= 128 => u128::MAX,
        b => u128::MAX << (128 - u32::from(b)),
    }
}

/// Parses an address as written by a web server: `1.2.3.4`, `2001:db8::1`,
/// `1.2.3.4:5678`, `[2001:db8::1]:5678`, `::ffff:1.2.3.4`.
pub fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    if b.len() > 64 {
        return None;
    }
    let b = match b {
        [b'[', inner @ ..] => &inner[..memchr::memchr(b']', inner)?],
        _ => b,
    };
    if let Some(v4) = fast_v4(b) {
        return Some(IpAddr::V4(v4));
    }
    let s = std::str::from_utf8(b).ok()?;
    let parsed =
        if b.contains(&b':') { s.parse::<Ipv6Addr>().map(IpAddr::V6) } else { s.parse::<IpAddr>() };
    if let Ok(ip) = parsed {
        return Some(ip.to_canonical());
    }
    // `a.b.c.d:port` (Apache 2.4 error logs); an IPv6 address never has one dot.
    let (host, port) = s.rsplit_once(':')?;
    (port.bytes().all(|c| c.is_ascii_digit()) && host.contains('.'))
        .then(|| host.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

/// Dotted-quad IPv4 without leading zeros, the common case, parsed in one
/// pass without UTF-8 validation (std's parser showed as a fifth of parse
/// time); anything else falls through to std's parser.
fn fast_v4(b: &[u8]) -> Option<Ipv4Addr> {
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    let (mut octets, mut n, mut val, mut digits) = ([0u8; 4], 0, 0u16, 0);
    for &c in b {
        if c == b'.' {
            if digits == 0 || n == 3 {
                return None;
            }
            octets[n] = u8::try_from(val).ok()?;
            (n, val, digits) = (n + 1, 0, 0);
        } else if c.is_ascii_digit() && digits < 3 && !(digits == 1 && val == 0) {
            val = val * 10 + u16::from(c - b'0');
            digits += 1;
        } else {
            return None;
        }
    }
    if n != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(val).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    base: u128,
    mask: u128,
}

impl Cidr {
    /// Parses `addr/bits` or a bare address; `None` when malformed.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let ip = ip.to_canonical();
        let bits = match (ip, bits) {
            (IpAddr::V4(_), Some(b)) if b <= 32 => 96 + b,
            (IpAddr::V6(_), Some(b)) if b <= 128 => b,
            (_, Some(_)) => return None,
            (_, None) => 128,
        };
        let mask = prefix_mask(bits);
        Some(Cidr { base: Key::of(ip, 128).0 & mask, mask })
    }

    /// True when `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Key::of(ip, 128).0 & self.mask == self.base
    }

    /// Whose every address the block holds: `IPv4` (`0.0.0.0/0`), `IPv4 and
    /// IPv6` (`::/0`), or none.
    pub fn everyone(&self) -> Option<&'static str> {
        match self.mask {
            0 => Some("IPv4 and IPv6"),
            _ if Cidr::parse("0.0.0.0/0").is_some_and(|all| all == *self) => Some("IPv4"),
            _ => None,
        }
    }
}

impl Cidr {
    /// The first and last key of the block.
    fn range(&self) -> (u128, u128) {
        (self.base, self.base | !self.mask)
    }
}

/// A set of address blocks (an allow-list), as sorted disjoint ranges of
/// keys: a look-up is a binary search, however many blocks there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrSet {
    ranges: Vec<(u128, u128)>,
}

impl AddrSet {
    /// The set of these blocks (overlaps merged).
    pub fn new(blocks: impl IntoIterator<Item = Cidr>) -> AddrSet {
        AddrSet::merged(blocks.into_iter().map(|c| c.range()).collect())
    }

    /// This set with `blocks` added.
    pub fn with(self, blocks: impl IntoIterator<Item = Cidr>) -> AddrSet {
        let mut v = self.ranges;
        v.extend(blocks.into_iter().map(|c| c.range()));
        AddrSet::merged(v)
    }

    /// The addresses in this set or in `other`.
    pub fn union(&self, other: &AddrSet) -> AddrSet {
        AddrSet::merged(self.ranges.iter().chain(&other.ranges).copied().collect())
    }

    fn merged(mut v: Vec<(u128, u128)>) -> AddrSet {
        v.sort_unstable();
        let mut ranges: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match ranges.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => ranges.push((lo, hi)),
            }
        }
        AddrSet { ranges }
    }

    /// True when the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let k = Key::of(ip, 128).0;
        let i = self.ranges.partition_point(|r| r.1 < k);
        self.ranges.get(i).is_some_and(|r| r.0 <= k)
    }
}

/// Picks the client from a proxy header such as `X-Forwarded-For`: the
/// rightmost address that is not a trusted proxy. `peer` is the connecting
/// address (`%h`), used when it is itself untrusted.
pub fn client_from_forwarded(
    peer: Option<IpAddr>,
    header: &[u8],
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if let Some(p) = peer
        && !is_trusted(p)
    {
        return Some(p);
    }
    let mut leftmost = None;
    for part in header.rsplit(|&c| c == b',') {
        let ip = parse_ip(part.trim_ascii())?;
        if !is_trusted(ip) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    leftmost.or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn address_sets_hold_their_blocks() {
        let blocks = ["10.0.0.0/8", "192.0.2.10", "2001:db8::/32", "10.1.0.0/16", "11.0.0.0/8"];
        let set = AddrSet::new(blocks.iter().map(|b| Cidr::parse(b).unwrap()));
        let has = |ip: &str| set.contains(ip.parse().unwrap());
        assert!(has("10.255.1.2") && has("11.0.0.1") && has("192.0.2.10"));
        assert!(has("::ffff:192.0.2.10") && has("2001:db8:ffff::1"));
        assert!(!has("192.0.2.11") && !has("12.0.0.0") && !has("9.255.255.255"));
        assert!(!has("2001:db9::1") && !has("::1"));
        assert_eq!(set.ranges.len(), 3, "10/8, 10.1/16 and 11/8 merge into one range");
        assert!(!AddrSet::default().contains("10.0.0.1".parse().unwrap()));
    }

    proptest! {
        /// An IPv4 key renders as `Ipv4Addr`'s own text.
        #[test]
        fn ipv4_keys_render_as_std_does(a in any::<u32>()) {
            let key = Key::of(IpAddr::V4(Ipv4Addr::from(a)), 64);
            prop_assert_eq!(key.render(64), Ipv4Addr::from(a).to_string());
        }

        /// An address set agrees with checking every block.
        #[test]
        fn address_sets_match_their_blocks(
            blocks in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
            probes in proptest::collection::vec(any::<u32>(), 1..50),
        ) {
            let cidrs: Vec<Cidr> = blocks
                .iter()
                .map(|(a, b)| Cidr::parse(&format!("{}/{b}", Ipv4Addr::from(*a))).unwrap())
                .collect();
            let set = AddrSet::new(cidrs.iter().copied());
            for p in probes {
                let ip = IpAddr::V4(Ipv4Addr::from(p));
                prop_assert_eq!(set.contains(ip), cidrs.iter().any(|c| c.contains(ip)));
            }
        }

        /// The fast IPv4 path agrees with std on every dotted-quad-like text.
        #[test]
        fn fast_v4_matches_std(parts in proptest::collection::vec("[0-9]{0,4}", 1..6)) {
            let text = parts.join(".");
            prop_assert_eq!(fast_v4(text.as_bytes()), text.parse::<Ipv4Addr>().ok());
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_server_spellings() {
        assert_eq!(parse_ip(b"1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_ip(b"1.2.3.4:5678"), Some(ip("1.2.3.4")));
        assert_eq!(parse_ip(b"[2001:db8::1]:5678"), Some(ip("2001:db8::1")));
        assert_eq!(parse_ip(b"2001:db8::80da:af6b:8b2c"), Some(ip("2001:db8::80da:af6b:8b2c")));
        assert_eq!(parse_ip(b"::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_ip(b"example.com"), None);
        assert_eq!(parse_ip(b"1.2.3.4:x"), None);
        assert_eq!(parse_ip(b"\xff\xfe"), None);
        for bad in [
            &b"01.2.3.4"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"256.1.1.1",
            b"1..2.3",
            b"1.2.3.",
            b".1.2.3",
            b"1.2.3.1000",
        ] {
            assert_eq!(parse_ip(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_ip(b"0.0.0.0"), Some(ip("0.0.0.0")));
        assert_eq!(parse_ip(b"255.255.255.255"), Some(ip("255.255.255.255")));
    }

    #[test]
    fn keys_unify_mapped_and_group_v6() {
        assert_eq!(Key::of(ip("::ffff:1.2.3.4"), 128), Key::of(ip("1.2.3.4"), 128));
        assert_eq!(Key::of(ip("1.2.3.4"), 64).render(64), "1.2.3.4");
        let a = Key::of(ip("2001:db8:1:2:aaaa::1"), 64);
        assert_eq!(a, Key::of(ip("2001:db8:1:2:bbbb::9"), 64));
        assert_ne!(a, Key::of(ip("2001:db8:1:3::1"), 64));
        assert_eq!(a.render(64), "2001:db8:1:2::/64");
        assert_eq!(Key::of(ip("2001:db8::1"), 128).render(128), "2001:db8::1");
    }

    #[test]
    fn forwarded_takes_rightmost_untrusted() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap(), Cidr::parse("2001:db8::/32").unwrap()];
        let peer = Some(ip("10.1.1.1"));
        let got = client_from_forwarded(peer, b"6.6.6.6, 1.2.3.4, 10.0.0.2", &trusted);
        assert_eq!(got, Some(ip("1.2.3.4")));
        // An untrusted peer is the client whatever the header claims.
        assert_eq!(
            client_from_forwarded(Some(ip("9.9.9.9")), b"1.2.3.4", &trusted),
            Some(ip("9.9.9.9"))
        );
        // All trusted: the leftmost.
        assert_eq!(
            client_from_forwarded(peer, b"10.0.0.3, 10.0.0.2", &trusted),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(client_from_forwarded(peer, b"garbage", &trusted), None);
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(ip("::ffff:1.2.3.4")));
    }
}
