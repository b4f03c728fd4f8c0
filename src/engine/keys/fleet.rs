//! Keys shared by every server of a fleet: the `--key-file` format.
//!
//! Servers behind one anycast or ECMP address answer each other's clients
//! whenever a route changes, so a SYN cookie made by server A may come back
//! as an ACK to server B. B accepts it when both hold the same SYN cookie
//! key, the same timestamp-offset key (the cookie's options ride in the
//! TSval) and run the cookie counter on the same clock. TFO cookies are
//! shared the same way.
//!
//! The file is TOML, every value a string:
//!
//! ```toml
//! # Mints new SYN cookies (32 hex digits).
//! syncookie = "00112233445566778899aabbccddeeff"
//! # Optional: also accepted, never minted (a rotation in progress).
//! syncookie_previous = "ffeeddccbbaa99887766554433221100"
//! # Keys the per address pair TSval offsets (32 hex digits).
//! timestamp = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
//! # Optional: TFO keys in Linux's net.ipv4.tcp_fastopen_key format, so
//! # Linux servers of the same fleet can share them.
//! fastopen = "00112233-44556677-8899aabb-ccddeeff"
//! fastopen_previous = "01234567-89abcdef-01234567-89abcdef"
//! ```
//!
//! A rotation without a window where one server refuses another's cookies
//! takes three file versions, each on every server before the next:
//! (1) the new key as `syncookie_previous` (accepted everywhere, minted
//! nowhere), (2) the new key as `syncookie` and the old as
//! `syncookie_previous`, (3) after two minutes (a cookie's life), the new
//! key alone. `fastopen` and `fastopen_previous` rotate the same way.

use super::sipkey::{parse_linux_tfo_key, KeyParseError, SipKey};
use super::{Secrets, SyncookieKeys, TfoKeys};
use thiserror::Error;
use toml::de::{DeTable, DeValue};

/// The keys of a key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetKeys {
    pub syncookie: SipKey,
    /// Accepted for as long as the file names it.
    pub syncookie_previous: Option<SipKey>,
    pub timestamp: SipKey,
    /// `None`: this server keeps its own random TFO key.
    pub fastopen: Option<TfoKeys>,
}

/// Why a key file's text is not a set of keys (the caller adds the path).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KeyFileError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("line {line}: unknown key `{key}` (the keys are {})", KEYS.join(", "))]
    UnknownKey { line: usize, key: String },
    #[error("line {line}: {key}: {source}")]
    BadKey { line: usize, key: String, source: KeyParseError },
    #[error("line {line}: {key}: takes a string, e.g. \"00112233445566778899aabbccddeeff\"")]
    NotAString { line: usize, key: String },
    #[error("`{0}` is missing: every server of the fleet needs it")]
    Missing(&'static str),
    #[error("fastopen_previous without fastopen")]
    PreviousWithoutFastopen,
}

const KEYS: [&str; 5] = ["syncookie", "syncookie_previous", "timestamp", "fastopen", "fastopen_previous"];

impl FleetKeys {
    pub fn parse(text: &str) -> Result<FleetKeys, KeyFileError> {
        let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
        let table = DeTable::parse(text).map_err(|e| KeyFileError::Syntax {
            line: e.span().map_or(1, |s| line(s.start)),
            message: e.message().to_string(),
        })?;
        let mut found: [Option<SipKey>; 5] = [None; 5];
        for (key, value) in table.get_ref() {
            let name: &str = key.get_ref();
            let at = line(key.span().start);
            let Some(i) = KEYS.iter().position(|k| *k == name) else {
                return Err(KeyFileError::UnknownKey { line: at, key: name.into() });
            };
            let DeValue::String(s) = value.get_ref() else {
                return Err(KeyFileError::NotAString { line: at, key: name.into() });
            };
            let parsed = if name.starts_with("fastopen") { parse_linux_tfo_key(s) } else { SipKey::from_hex(s) };
            found[i] = Some(parsed.map_err(|source| KeyFileError::BadKey { line: at, key: name.into(), source })?);
        }
        let [syncookie, syncookie_previous, timestamp, fastopen, fastopen_previous] = found;
        let fastopen = match (fastopen, fastopen_previous) {
            (Some(primary), backup) => Some(TfoKeys { primary, backup }),
            (None, Some(_)) => return Err(KeyFileError::PreviousWithoutFastopen),
            (None, None) => None,
        };
        Ok(FleetKeys {
            syncookie: syncookie.ok_or(KeyFileError::Missing("syncookie"))?,
            syncookie_previous,
            timestamp: timestamp.ok_or(KeyFileError::Missing("timestamp"))?,
            fastopen,
        })
    }

    /// Puts these keys in `secrets` and marks them shared.
    pub fn apply(&self, secrets: &mut Secrets) {
        secrets.syncookie = match self.syncookie_previous {
            Some(previous) => SyncookieKeys::with_accepted(self.syncookie, previous),
            None => SyncookieKeys::new(self.syncookie),
        };
        secrets.ts_off = self.timestamp;
        if let Some(tfo) = self.fastopen {
            secrets.tfo = tfo;
        }
        secrets.fleet = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
# a comment
syncookie = "00112233445566778899aabbccddeeff"
syncookie_previous = "ffeeddccbbaa99887766554433221100"
timestamp = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
fastopen = "00112233-44556677-8899aabb-ccddeeff"
fastopen_previous = "01234567-89abcdef-01234567-89abcdef"
"#;

    #[test]
    fn every_key_parses() {
        let k = FleetKeys::parse(FULL).unwrap();
        assert_eq!(k.syncookie, SipKey::from_hex("00112233445566778899aabbccddeeff").unwrap());
        assert_eq!(k.syncookie_previous, Some(SipKey::from_hex("ffeeddccbbaa99887766554433221100").unwrap()));
        assert_eq!(k.timestamp, SipKey::from_hex("0f1e2d3c4b5a69788796a5b4c3d2e1f0").unwrap());
        let tfo = TfoKeys::parse_linux("00112233-44556677-8899aabb-ccddeeff,01234567-89abcdef-01234567-89abcdef").unwrap();
        assert_eq!(k.fastopen, Some(tfo));
    }

    #[test]
    fn minimal_file_and_apply() {
        let k = FleetKeys::parse("syncookie = \"00112233445566778899aabbccddeeff\"\ntimestamp = \"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"\n").unwrap();
        assert_eq!((k.syncookie_previous, k.fastopen), (None, None));
        let mut s = Secrets::from_seed([3; 32]);
        let tfo_before = s.tfo;
        assert!(!s.fleet);
        k.apply(&mut s);
        assert!(s.fleet);
        assert_eq!(s.syncookie.current(), k.syncookie);
        assert_eq!(s.ts_off, k.timestamp);
        assert_eq!(s.tfo, tfo_before);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = |t: &str| FleetKeys::parse(t).unwrap_err().to_string();
        assert_eq!(e("timestamp = \"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"\n"), "`syncookie` is missing: every server of the fleet needs it");
        assert_eq!(e("syncookie = \"00112233445566778899aabbccddeeff\"\n"), "`timestamp` is missing: every server of the fleet needs it");
        assert!(e("\nsyncookies = \"00\"\n").starts_with("line 2: unknown key `syncookies`"), "{}", e("\nsyncookies = \"00\"\n"));
        assert!(e("\n\nsyncookie = \"0011\"\n").starts_with("line 3: syncookie: "));
        assert!(e("syncookie = 7\n").starts_with("line 1: syncookie: takes a string"));
        assert!(e("syncookie = \"0011\n").starts_with("line 1: "));
        let no_primary = "syncookie = \"00112233445566778899aabbccddeeff\"\ntimestamp = \"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"\nfastopen_previous = \"00112233-44556677-8899aabb-ccddeeff\"\n";
        assert_eq!(e(no_primary), "fastopen_previous without fastopen");
    }
}
