//! The webhook signature: `X-Tocsin-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the raw body with the subscriber's secret; and the keyed
//! hash that replaces NHS numbers for subscribers that ask.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Tocsin-Signature";

/// The header carrying the alert id (subscribers drop repeats by it).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The header carrying the attempt number (1 for the first).
pub const ATTEMPT_HEADER: &str = "X-Tocsin-Delivery-Attempt";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(key).expect("HMAC accepts any key length")
}

/// The signature header's value for `body`: `sha256=` and 64 lowercase hex
/// digits.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Checks a received signature header against the body, in constant time;
/// what a receiver does (and what the tests do).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&sig).is_ok()
}

/// The keyed hash that stands for an NHS number: `hmac-sha256:` and 64 hex
/// digits. The same number and key always give the same value, so a
/// subscriber can still link alerts about one patient without holding the
/// number.
pub fn nhs_number_hash(key: &[u8], nhs_number: &str) -> String {
    let mut m = mac(key);
    m.update(nhs_number.as_bytes());
    format!(
        "{NHS_NUMBER_HASH_PREFIX}{}",
        hex::encode(m.finalize().into_bytes())
    )
}

/// How a hashed NHS number begins, so that one is never hashed twice.
pub const NHS_NUMBER_HASH_PREFIX: &str = "hmac-sha256:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_refuses_another_secret_a_changed_body_and_junk() {
        let sig = signature(b"s1", b"{}");
        assert!(verify(b"s1", b"{}", &sig));
        assert!(!verify(b"s2", b"{}", &sig));
        assert!(!verify(b"s1", b"{ }", &sig));
        assert!(!verify(b"s1", b"{}", "sha1=00"));
        assert!(!verify(b"s1", b"{}", "sha256=zz"));
    }

    #[test]
    fn nhs_hash_depends_on_key_and_number() {
        let a = nhs_number_hash(b"k1", "9434765919");
        assert!(a.starts_with("hmac-sha256:") && a.len() == 12 + 64);
        assert_eq!(a, nhs_number_hash(b"k1", "9434765919"));
        assert_ne!(a, nhs_number_hash(b"k2", "9434765919"));
        assert_ne!(a, nhs_number_hash(b"k1", "9434765927"));
        assert!(!a.contains("9434765919"));
    }
}
