//! TCP Fast Open cookies (RFC 7413 §4.1.2), as Linux's net/ipv4/tcp_fastopen.c
//! makes them.
//!
//! Linux (5.x and later): the cookie is `siphash(saddr ‖ daddr, key)`, 8
//! bytes, over the addresses in network byte order as they sit in the IPv4
//! header of the SYN (saddr = the client), output little-endian. Two keys:
//! the primary mints cookies; a cookie valid under the backup is still
//! accepted, and the SYN-ACK then carries a fresh primary cookie (counted as
//! `TCPFastOpenPassiveAltKey`). Same key bytes, same cookies as a Linux
//! server: a fleet mixing both can share `tcp_fastopen_key`
//! (see [`super::sipkey::parse_linux_tfo_key`]).


use super::sipkey::{parse_linux_tfo_key, KeyParseError, SipKey};
use crate::engine::flow::FlowKey;

/// Linux's `TCP_FASTOPEN_COOKIE_SIZE`: the length of the cookies we mint.
pub const TCP_FASTOPEN_COOKIE_SIZE: usize = 8;

/// The server's TFO keys (Linux's `tcp_fastopen_context`: up to 2 keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TfoKeys {
    pub primary: SipKey,
    pub backup: Option<SipKey>,
}

impl TfoKeys {
    pub fn new(primary: SipKey) -> TfoKeys {
        TfoKeys {
            primary,
            backup: None,
        }
    }

    /// Makes `new` the primary key and keeps the old primary as backup, so
    /// clients holding old cookies still get their data accepted.
    pub fn rotate(&mut self, new: SipKey) {
        self.backup = Some(self.primary);
        self.primary = new;
    }

    /// Parses Linux's `net.ipv4.tcp_fastopen_key` value: one key
    /// `xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`, or `primary,backup`.
    pub fn parse_linux(s: &str) -> Result<TfoKeys, KeyParseError> {
        let mut parts = s.trim().split(',');
        let primary = parse_linux_tfo_key(parts.next().unwrap_or(""))?;
        let backup = parts.next().map(parse_linux_tfo_key).transpose()?;
        if parts.next().is_some() {
            return Err(KeyParseError::BadLinuxFormat);
        }
        Ok(TfoKeys { primary, backup })
    }
}

/// What a SYN's TFO cookie is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TfoCookieCheck {
    /// Valid under the primary key: accept the data in the SYN.
    Valid,
    /// Valid under the backup key only: accept the data, and (as Linux does)
    /// answer with the primary-key cookie from [`gen`] so the client
    /// refreshes it. Linux counts `TCPFastOpenPassiveAltKey`.
    ValidBackup,
    /// Wrong cookie, or wrong length: no data accepted
    /// (`TCPFastOpenPassiveFail`); the SYN-ACK carries a fresh cookie.
    Invalid,
}

fn cookie_word(key: SipKey, saddr: u32, daddr: u32) -> u64 {
    // The 8 bytes saddr ‖ daddr in network order, as one little-endian word:
    // exactly what siphash(&iph->saddr, 8, key) reads.
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&saddr.to_be_bytes());
    bytes[4..].copy_from_slice(&daddr.to_be_bytes());
    key.hash::<2, 4>(&[u64::from_le_bytes(bytes)], 0, 0)
}

/// Over IPv6 Linux hashes the 32 bytes saddr ‖ daddr of the IPv6 header
/// (`__tcp_fastopen_cookie_gen_cipher`), read as little-endian words.
fn cookie_word6(key: SipKey, pair: &[u8; 32]) -> u64 {
    let w: [u64; 4] = std::array::from_fn(|i| u64::from_le_bytes(pair[8 * i..8 * i + 8].try_into().unwrap_or([0; 8])));
    key.hash::<2, 4>(&w, 0, 0)
}

fn flow_word(key: SipKey, flow: &FlowKey) -> u64 {
    if flow.is_v4() {
        cookie_word(key, flow.peer_v4(), flow.local_v4())
    } else {
        cookie_word6(key, &flow.addr_pair_bytes())
    }
}

/// The cookie for the client of `flow` talking to our address, under the
/// primary key (Linux: over the SYN's saddr and daddr only).
pub fn gen(keys: &TfoKeys, flow: &FlowKey) -> [u8; TCP_FASTOPEN_COOKIE_SIZE] {
    flow_word(keys.primary, flow).to_le_bytes()
}

/// Checks the cookie a client sent in its SYN. Only our own 8-byte cookies
/// can be valid: any other length (RFC 7413 allows 4..=16) is invalid, as
/// in Linux, which compares length and bytes.
pub fn check(keys: &TfoKeys, flow: &FlowKey, cookie: &[u8]) -> TfoCookieCheck {
    let Ok(got) = <[u8; TCP_FASTOPEN_COOKIE_SIZE]>::try_from(cookie) else {
        return TfoCookieCheck::Invalid;
    };
    let got = u64::from_le_bytes(got);
    if got == flow_word(keys.primary, flow) {
        return TfoCookieCheck::Valid;
    }
    match keys.backup {
        Some(backup) if got == flow_word(backup, flow) => TfoCookieCheck::ValidBackup,
        _ => TfoCookieCheck::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siphasher::sip::SipHasher24;

    const CLIENT: u32 = 0xC612_0002; // 198.18.0.2
    const SERVER: u32 = 0xC612_0001; // 198.18.0.1

    /// The flow of a SYN from `saddr` (the client) to our `daddr`; ports do not matter.
    fn flow(saddr: u32, daddr: u32) -> FlowKey {
        FlowKey::v4(daddr, saddr, 80, 40000)
    }

    fn keys() -> TfoKeys {
        TfoKeys::new(SipKey::from_bytes(*b"dlisten-tfo-key1"))
    }

    #[test]
    fn cookie_is_siphash_of_the_header_bytes() {
        // The word-fed hash equals SipHash-2-4 over the 8 header bytes, i.e.
        // Linux's siphash(&iph->saddr, 8, key) with the same key bytes.
        let k = keys();
        let hdr = [198, 18, 0, 2, 198, 18, 0, 1];
        let reference = SipHasher24::new_with_key(b"dlisten-tfo-key1").hash(&hdr);
        assert_eq!(gen(&k, &flow(CLIENT, SERVER)), reference.to_le_bytes());
    }

    #[test]
    fn ipv6_cookie_is_siphash_of_both_addresses() {
        // Linux: siphash(&ip6h->saddr, 32, key) over saddr then daddr.
        let k = keys();
        let (client, server): (std::net::Ipv6Addr, std::net::Ipv6Addr) = ("2001:2::2".parse().unwrap(), "2001:2::1".parse().unwrap());
        let mut hdr = [0u8; 32];
        hdr[..16].copy_from_slice(&client.octets());
        hdr[16..].copy_from_slice(&server.octets());
        let reference = SipHasher24::new_with_key(b"dlisten-tfo-key1").hash(&hdr);
        let f6 = FlowKey::v6(server, client, 80, 40000);
        assert_eq!(gen(&k, &f6), reference.to_le_bytes());
        assert_eq!(check(&k, &f6, &reference.to_le_bytes()), TfoCookieCheck::Valid);
        let other = FlowKey::v6(server, "2001:2::3".parse().unwrap(), 80, 40000);
        assert_eq!(check(&k, &other, &reference.to_le_bytes()), TfoCookieCheck::Invalid);
    }

    #[test]
    fn same_cookie_as_a_linux_server() {
        // Recorded from Linux 6.18 in a network namespace: 198.18.0.1 and
        // 198.18.0.2 on lo, tcp_fastopen=3, this tcp_fastopen_key, a listener
        // with TCP_FASTOPEN on 198.18.0.1:8080 and a MSG_FASTOPEN client bound
        // to 198.18.0.2; `ip tcp_metrics show` then printed the client's
        // cached cookie as `fo_cookie a48dac0638247cd6`.
        let k = TfoKeys::parse_linux("00112233-44556677-8899aabb-ccddeeff").unwrap();
        assert_eq!(
            gen(&k, &flow(CLIENT, SERVER)),
            [0xa4, 0x8d, 0xac, 0x06, 0x38, 0x24, 0x7c, 0xd6]
        );
    }

    #[test]
    fn valid_for_the_same_pair_only() {
        let k = keys();
        let c = gen(&k, &flow(CLIENT, SERVER));
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &c), TfoCookieCheck::Valid);
        assert_eq!(check(&k, &flow(CLIENT + 1, SERVER), &c), TfoCookieCheck::Invalid);
        assert_eq!(check(&k, &flow(CLIENT, SERVER + 1), &c), TfoCookieCheck::Invalid);
        assert_eq!(check(&k, &flow(SERVER, CLIENT), &c), TfoCookieCheck::Invalid);
        for bit in 0..64 {
            let mut bad = c;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(check(&k, &flow(CLIENT, SERVER), &bad), TfoCookieCheck::Invalid);
        }
    }

    #[test]
    fn wrong_lengths_are_invalid() {
        let k = keys();
        let c = gen(&k, &flow(CLIENT, SERVER));
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &[]), TfoCookieCheck::Invalid);
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &c[..4]), TfoCookieCheck::Invalid);
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &c[..7]), TfoCookieCheck::Invalid);
        let mut long = [0u8; 16];
        long[..8].copy_from_slice(&c);
        assert_eq!(
            check(&k, &flow(CLIENT, SERVER), &long[..9]),
            TfoCookieCheck::Invalid
        );
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &long), TfoCookieCheck::Invalid);
    }

    #[test]
    fn backup_key_is_accepted_after_rotation() {
        let mut k = keys();
        let old = gen(&k, &flow(CLIENT, SERVER));
        k.rotate(SipKey::from_bytes(*b"dlisten-tfo-key2"));
        let new = gen(&k, &flow(CLIENT, SERVER));
        assert_ne!(old, new);
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &new), TfoCookieCheck::Valid);
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &old), TfoCookieCheck::ValidBackup);
        assert_eq!(check(&k, &flow(CLIENT + 1, SERVER), &old), TfoCookieCheck::Invalid);
        k.rotate(SipKey::from_bytes(*b"dlisten-tfo-key3"));
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &new), TfoCookieCheck::ValidBackup);
        assert_eq!(check(&k, &flow(CLIENT, SERVER), &old), TfoCookieCheck::Invalid);
    }

    #[test]
    fn linux_key_string_parses_primary_and_backup() {
        let one = TfoKeys::parse_linux("00112233-44556677-8899aabb-ccddeeff").unwrap();
        assert_eq!(one.backup, None);
        let two = TfoKeys::parse_linux(
            "00112233-44556677-8899aabb-ccddeeff,01234567-89abcdef-01234567-89abcdef\n",
        )
        .unwrap();
        assert_eq!(two.primary, one.primary);
        assert!(two.backup.is_some());
        assert!(TfoKeys::parse_linux("1-2-3-4,5-6-7-8,9-a-b-c").is_err());
        assert!(TfoKeys::parse_linux("").is_err());
    }
}
