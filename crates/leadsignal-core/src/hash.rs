//! SHA-256 digests as Meta wants them: 64 lowercase hex characters.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::block_api::compress256;
use sha2::{Digest, Sha256 as Hasher};

/// SHA-256 initial hash values (FIPS 180-4, 5.3.3).
const H256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
use std::fmt;

/// Digests of "a".."z" then "aa".."zz" (702 values, computed once).
fn short_digests() -> &'static [Sha256] {
    static TABLE: std::sync::OnceLock<Vec<Sha256>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let letters = b'a'..=b'z';
        let singles = letters.clone().map(|a| Sha256::of_bytes(&[a]));
        let pairs = letters.flat_map(|a| (b'a'..=b'z').map(move |b| Sha256::of_bytes(&[a, b])));
        singles.chain(pairs).collect()
    })
}

/// A SHA-256 digest of a normalized value, serialized as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Hashes the UTF-8 bytes of `normalized`.
    #[inline]
    pub fn of(normalized: &str) -> Self {
        Self::of_bytes(normalized.as_bytes())
    }

    /// Hashes raw bytes. Messages under 56 bytes (nearly every normalized
    /// contact value) fit one padded block and go straight to the
    /// compression function, skipping the streaming hasher's bookkeeping.
    #[inline]
    pub fn of_bytes(bytes: &[u8]) -> Self {
        if bytes.len() < 56 {
            let mut block = [0u8; 64];
            block[..bytes.len()].copy_from_slice(bytes);
            block[bytes.len()] = 0x80;
            block[56..].copy_from_slice(&(bytes.len() as u64 * 8).to_be_bytes());
            let mut state = H256;
            compress256(&mut state, &[block]);
            let mut out = [0u8; 32];
            for (o, w) in out.chunks_exact_mut(4).zip(state) {
                o.copy_from_slice(&w.to_be_bytes());
            }
            return Sha256(out);
        }
        Sha256(Hasher::digest(bytes).into())
    }

    /// Parses a value that already is a SHA-256 digest: exactly 64 hex digits,
    /// either case (after trimming). Anything else, including 32-digit MD5
    /// values, is not a digest.
    pub fn parse_hex(value: &str) -> Option<Self> {
        let bytes = value.trim().as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Sha256(out))
    }

    /// Writes the 64 lowercase hex digits into a stack buffer.
    #[inline]
    pub fn to_hex_bytes(&self) -> [u8; 64] {
        let mut buf = [0u8; 64];
        self.write_hex(&mut buf);
        buf
    }

    /// Writes the 64 lowercase hex digits into `out` (64 bytes long).
    #[inline]
    pub fn write_hex(&self, out: &mut [u8]) {
        // SIMD where the CPU has it (runtime detection inside faster-hex).
        faster_hex::hex_encode(&self.0, out).expect("64-byte buffer for 32 bytes");
    }

    /// SHA-256 of a normalized value, memoized for values of one or two
    /// lowercase ASCII letters: every country code, US/Canadian state code and
    /// gender is one, so most events skip two or three hash computations.
    #[inline]
    pub fn of_normalized(normalized: &str) -> Self {
        match normalized.as_bytes() {
            [a @ b'a'..=b'z'] => short_digests()[(a - b'a') as usize],
            [a @ b'a'..=b'z', b @ b'a'..=b'z'] => {
                short_digests()[26 + (a - b'a') as usize * 26 + (b - b'a') as usize]
            }
            _ => Self::of(normalized),
        }
    }

    /// The 64 lowercase hex digits as a `String`.
    pub fn to_hex(&self) -> String {
        let buf = self.to_hex_bytes();
        // The buffer holds ASCII hex digits only.
        String::from_utf8(buf.to_vec()).expect("hex digits are ASCII")
    }
}

#[inline]
fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.to_hex_bytes();
        f.write_str(std::str::from_utf8(&buf).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// Hex in human-readable formats (JSON), the 32 raw bytes in binary ones
/// (the outbox's stored form).
impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let buf = self.to_hex_bytes();
            s.serialize_str(std::str::from_utf8(&buf).expect("hex digits are ASCII"))
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            Sha256::parse_hex(&s)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hexadecimal digits (SHA-256)"))
        } else {
            <[u8; 32]>::deserialize(d).map(Sha256)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_sha256sum() {
        // printf %s john_smith@gmail.com | sha256sum
        assert_eq!(
            Sha256::of("john_smith@gmail.com").to_hex(),
            "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
        );
    }

    #[test]
    fn single_block_path_matches_the_streaming_hasher_at_every_length() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let want: [u8; 32] = Hasher::digest(&data[..len]).into();
            assert_eq!(Sha256::of_bytes(&data[..len]).0, want, "length {len}");
        }
    }

    #[test]
    fn memoized_short_values_match() {
        for v in [
            "a", "f", "m", "z", "aa", "us", "ca", "zz", "abc", "A", "u1", "",
        ] {
            assert_eq!(Sha256::of_normalized(v), Sha256::of(v), "{v:?}");
        }
    }

    #[test]
    fn parses_only_64_hex() {
        let h = "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F";
        assert_eq!(
            Sha256::parse_hex(h).unwrap().to_hex(),
            h.to_ascii_lowercase()
        );
        assert!(
            Sha256::parse_hex("d41d8cd98f00b204e9800998ecf8427e").is_none(),
            "MD5 is not SHA-256"
        );
        assert!(Sha256::parse_hex(&"g".repeat(64)).is_none());
        assert!(Sha256::parse_hex(&"a".repeat(63)).is_none());
        assert!(Sha256::parse_hex(&"a".repeat(65)).is_none());
    }

    #[test]
    fn serde_round_trip() {
        let h = Sha256::of("x");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{h}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Sha256>("\"abc\"").is_err());
    }
}
