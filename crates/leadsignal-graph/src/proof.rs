//! `appsecret_proof` (`docs/meta-rules.md` §5): HMAC-SHA256 keyed by the app
//! secret, lowercase hex. Two documented forms, selectable.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

/// Which form of the proof to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofMode {
    /// `hmac_sha256(app_secret, access_token)`: what Meta's Business SDKs send.
    #[default]
    Plain,
    /// `hmac_sha256(app_secret, access_token + "|" + time)` with
    /// `appsecret_time = time`: the Login Security page's form (expires
    /// after 5 minutes, so computed per request).
    Timed,
}

/// HMAC-SHA256 of `message` keyed by `key`, as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    faster_hex::hex_string(&mac.finalize().into_bytes())
}

/// The plain proof.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    hmac_sha256_hex(app_secret.as_bytes(), access_token.as_bytes())
}

/// The time-stamped proof for `unix_time`.
pub fn appsecret_proof_timed(app_secret: &str, access_token: &str, unix_time: i64) -> String {
    hmac_sha256_hex(
        app_secret.as_bytes(),
        format!("{access_token}|{unix_time}").as_bytes(),
    )
}

/// Constant-time comparison of two proofs (or any two secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn forms_differ_and_depend_on_time() {
        let plain = appsecret_proof("s3cret", "EAAtoken");
        assert_eq!(plain, hmac_sha256_hex(b"s3cret", b"EAAtoken"));
        let t1 = appsecret_proof_timed("s3cret", "EAAtoken", 1_700_000_000);
        assert_eq!(t1, hmac_sha256_hex(b"s3cret", b"EAAtoken|1700000000"));
        assert_ne!(plain, t1);
        assert_ne!(
            t1,
            appsecret_proof_timed("s3cret", "EAAtoken", 1_700_000_001)
        );
        assert_eq!(plain.len(), 64);
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
