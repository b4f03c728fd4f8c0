//! Key material for SYN cookies, ISNs, timestamp offsets and TFO cookies.
//!
//! The engine never reads the OS RNG: the control plane builds a [`Secrets`]
//! (from [`Secrets::random`], from operator-supplied hex keys, or from a seed
//! in tests) and hands it to the workers.
//!
//! Linux keeps one random key per purpose, initialised lazily at first use
//! (`net_get_random_once`): `syncookie_secret[2]`, `net_secret` (ISNs),
//! `ts_secret` (timestamp offsets) and the per-netns TFO context
//! (`tcp_fastopen_key`, primary and backup). We keep the same split so a key
//! leak of one purpose does not give away the others.

pub mod block_prf;
pub mod fastopen;
pub mod fleet;
pub mod isn;
pub mod sipkey;
pub mod syncookie;

use std::hash::Hasher as _;

use siphasher::sip128::{Hasher128 as _, SipHasher24 as SipHasher128};
use thiserror::Error;

pub use fastopen::TfoKeys;
pub use fleet::{FleetKeys, KeyFileError};
pub use sipkey::{KeyParseError, SipKey, SIP_KEY_LEN};
pub use syncookie::SyncookieKeys;

/// Failure to read key material from the OS.
#[derive(Debug, Error)]
#[error("cannot read random key material from the OS: {0}")]
pub struct RandomError(getrandom::Error);

/// All the keys a worker's engine needs on the listen path.
#[derive(Clone, Debug)]
pub struct Secrets {
    /// SYN cookie MAC key (current and, after a rotation, previous).
    pub syncookie: SyncookieKeys,
    /// RFC 6528 ISN key (Linux's `net_secret`).
    pub isn: SipKey,
    /// Per address pair timestamp offset key (Linux's `ts_secret`).
    pub ts_off: SipKey,
    /// TCP Fast Open cookie keys (primary and backup).
    pub tfo: TfoKeys,
    /// The keys come from a fleet key file ([`fleet`]): servers share them,
    /// so a cookie ACK is checked whatever the listener's overflow state and
    /// the cookie counter and the TSval clock run on UTC.
    pub fleet: bool,
}

impl Secrets {
    /// Deterministic keys derived from a seed, for tests and reproducible
    /// benchmarks. Each sub-key is SipHash-2-4-128 keyed with the first half
    /// of the seed over the second half and a purpose label, so sub-keys are
    /// independent of each other.
    pub fn from_seed(seed: [u8; 32]) -> Secrets {
        let mut k = [0u8; SIP_KEY_LEN];
        k.copy_from_slice(&seed[..16]);
        let mut rest = [0u8; 16];
        rest.copy_from_slice(&seed[16..]);
        let derive = |label: u64| -> SipKey {
            let mut h = SipHasher128::new_with_key(&k);
            h.write(&rest);
            h.write_u64(label);
            SipKey::from_bytes(h.finish128().as_bytes())
        };
        Secrets {
            syncookie: SyncookieKeys::new(derive(1)),
            isn: derive(2),
            ts_off: derive(3),
            tfo: TfoKeys::new(derive(4)),
            fleet: false,
        }
    }

    /// Fresh keys from the OS RNG. Called by the control plane, never by the
    /// engine. The TFO key is random too: Linux also picks a random TFO key
    /// unless the operator sets `tcp_fastopen_key`.
    pub fn random() -> Result<Secrets, RandomError> {
        let key = || -> Result<SipKey, RandomError> {
            let mut b = [0u8; SIP_KEY_LEN];
            getrandom::getrandom(&mut b).map_err(RandomError)?;
            Ok(SipKey::from_bytes(b))
        };
        Ok(Secrets {
            syncookie: SyncookieKeys::new(key()?),
            isn: key()?,
            ts_off: key()?,
            tfo: TfoKeys::new(key()?),
            fleet: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_secrets_are_deterministic_and_independent() {
        let a = Secrets::from_seed([7; 32]);
        let b = Secrets::from_seed([7; 32]);
        let mut seed = [7; 32];
        seed[31] = 8;
        let c = Secrets::from_seed(seed);
        assert_eq!(a.isn, b.isn);
        assert_eq!(a.ts_off, b.ts_off);
        assert_eq!(a.tfo, b.tfo);
        assert_eq!(a.syncookie.current(), b.syncookie.current());
        assert_ne!(a.isn, c.isn);
        // Sub-keys differ from each other.
        let keys = [a.syncookie.current(), a.isn, a.ts_off, a.tfo.primary];
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j]);
            }
        }
    }

    #[test]
    fn random_secrets_differ() {
        let a = Secrets::random().unwrap();
        let b = Secrets::random().unwrap();
        assert_ne!(a.isn, b.isn);
        assert_ne!(a.syncookie.current(), b.syncookie.current());
    }

    #[test]
    fn debug_redacts_keys() {
        let s = Secrets::from_seed([1; 32]);
        let text = format!("{s:?}");
        assert!(text.contains("<redacted>"));
        let hex: String = s
            .isn
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.contains(&hex));
    }
}
