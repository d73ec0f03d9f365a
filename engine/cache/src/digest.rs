//! Typed blake3 digests: an object (file content) digest and an action (cache key) digest differ in type.

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A raw 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Digest of a byte string.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex characters (either case). A table look-up per character: a re-run of a
    /// large workflow reads tens of thousands of digests from its indexes.
    pub fn from_hex(s: &str) -> Option<Digest> {
        let bytes: &[u8; 64] = s.as_bytes().try_into().ok()?;
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = (HEX_VALUE[usize::from(pair[0])], HEX_VALUE[usize::from(pair[1])]);
            if (hi | lo) == NOT_HEX {
                return None;
            }
            *o = (hi << 4) | lo;
        }
        Some(Digest(out))
    }

    /// The first 12 hex characters, for display.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_owned()
    }
}

/// [`HEX_VALUE`]'s mark for a byte that is not a hex digit (all bits set, so it survives `|`).
const NOT_HEX: u8 = 0xff;

/// The value of each byte as a hex digit, or [`NOT_HEX`].
const HEX_VALUE: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Reads the text in place (borrowed or not): no `String` per digest.
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a blake3 hex digest")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Digest, E> {
                Digest::from_hex(s).ok_or_else(|| E::custom(format!("not a blake3 hex digest: {s:?}")))
            }
        }
        d.deserialize_str(Hex)
    }
}

macro_rules! typed_digest {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

typed_digest!(
    /// Digest of a file's bytes: the name of an object in the store.
    ObjectDigest
);
typed_digest!(
    /// A task's cache key: the digest of its canonical [`crate::KeyInputs`].
    ActionKey
);
typed_digest!(
    /// Digest of a cache entry's own canonical content: what makes an entry self-verifying.
    EntryDigest
);
typed_digest!(
    /// Digest of a task's output manifest (names, paths and object digests).
    ManifestDigest
);

/// Hashes a file's content, streaming; returns its digest and length.
pub fn hash_file(path: &Path) -> std::io::Result<(ObjectDigest, u64)> {
    let mut file = std::fs::File::open(path)?;
    hash_reader(&mut file)
}

/// Hashes everything a reader yields.
pub fn hash_reader(r: &mut impl Read) -> std::io::Result<(ObjectDigest, u64)> {
    // One buffer per thread, reused: a fresh 64 KiB one was zeroed at every call, and its free
    // made glibc consolidate its free lists (a task hashes at least its inputs and its outputs).
    thread_local! {
        static BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut buf = BUF.take();
    buf.resize(64 * 1024, 0);
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    let hashed = loop {
        match r.read(&mut buf) {
            Ok(0) => break Ok((ObjectDigest(Digest(*hasher.finalize().as_bytes())), len)),
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    BUF.set(buf);
    hashed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_value() {
        let d = Digest::of(b"");
        assert_eq!(d.to_hex(), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
    }

    /// The same answer as blake3's own parser for every byte in every position of a digest.
    #[test]
    fn from_hex_agrees_with_blake3() {
        let hex = Digest::of(b"x").to_hex();
        let upper = hex.to_uppercase();
        assert_eq!(Digest::from_hex(&upper), Some(Digest::of(b"x")));
        for pos in [0, 1, 31, 62, 63] {
            for b in 0..=255u8 {
                let mut bytes = hex.clone().into_bytes();
                bytes[pos] = b;
                let Ok(s) = String::from_utf8(bytes) else { continue };
                let want = blake3::Hash::from_hex(&s).ok().map(|h| Digest(*h.as_bytes()));
                assert_eq!(Digest::from_hex(&s), want, "{s}");
            }
        }
        for s in ["", &hex[..63], &format!("{hex}0"), &format!("é{}", &hex[2..])] {
            assert_eq!(Digest::from_hex(s), None, "{s:?}");
        }
        let json: Digest = serde_json::from_str(&format!("\"{hex}\"")).unwrap();
        assert_eq!(json, Digest::of(b"x"));
        let e = serde_json::from_str::<Digest>("\"nope\"").unwrap_err().to_string();
        assert!(e.starts_with("not a blake3 hex digest: \"nope\""), "{e}");
    }
}
