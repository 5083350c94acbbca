//! HMAC-SHA256 and the hex encoding every Pusher signature travels in.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed, short ones padded), so
    // this cannot fail; `Hmac::new` would need a fixed-size key array.
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Raw HMAC-SHA256 of `message` under `secret`.
pub(crate) fn hmac_sha256(secret: &[u8], message: &[u8]) -> [u8; TAG_LEN] {
    hmac_sha256_parts(secret, &[message])
}

/// Raw HMAC-SHA256 of the concatenation of `parts` under `secret`.
pub(crate) fn hmac_sha256_parts<P: AsRef<[u8]>>(secret: &[u8], parts: &[P]) -> [u8; TAG_LEN] {
    let mut mac = keyed(secret);
    for part in parts {
        mac.update(part.as_ref());
    }
    mac.finalize().into_bytes().into()
}

/// Checks `tag` against the HMAC-SHA256 of the concatenation of `parts` under `secret`, in
/// constant time (the comparison is the `hmac` crate's, built on `subtle`).
pub(crate) fn hmac_sha256_verify<P: AsRef<[u8]>>(secret: &[u8], parts: &[P], tag: &[u8]) -> bool {
    let mut mac = keyed(secret);
    for part in parts {
        mac.update(part.as_ref());
    }
    mac.verify_slice(tag).is_ok()
}

/// Lower-case hex HMAC-SHA256 of `message` under `secret`: the form every Pusher signature
/// (channel auth, user auth, HTTP API `auth_signature`, webhook `X-Pusher-Signature`) is sent in.
///
/// ```
/// assert_eq!(
///     pusher_auth::hmac_sha256_hex(b"secret", br#"{"hello":"world"}"#),
///     "2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778",
/// );
/// ```
#[must_use]
pub fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    hex_encode(&hmac_sha256(secret, message))
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex encoding.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `N` bytes of hex (either case). `None` for a wrong length or a non-hex digit.
pub(crate) fn hex_decode_array<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digits = hex.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

/// Decodes one hex digit pair, for percent-decoding.
pub(crate) fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    Some((hex_value(hi)? << 4) | hex_value(lo)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        let hex = hex_encode(&bytes);
        assert_eq!(&hex[..8], "00010203");
        assert_eq!(&hex[hex.len() - 4..], "feff");
        let arr: [u8; 256] = hex_decode_array(&hex).unwrap();
        assert_eq!(arr.to_vec(), bytes);
        let upper: [u8; 2] = hex_decode_array("ABcd").unwrap();
        assert_eq!(upper, [0xab, 0xcd]);
    }

    #[test]
    fn hex_decode_rejects_bad_input() {
        assert_eq!(hex_decode_array::<2>("abc"), None);
        assert_eq!(hex_decode_array::<2>("abcde"), None);
        assert_eq!(hex_decode_array::<2>("abcg"), None);
        assert_eq!(hex_decode_array::<1>("é"), None);
        assert_eq!(hex_decode_array::<1>("+1"), None);
    }

    #[test]
    fn rfc4231_case_2() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_over_parts_matches_whole() {
        let tag = hmac_sha256(b"k", b"abc:def");
        assert!(hmac_sha256_verify(b"k", &["abc", ":", "def"], &tag));
        assert!(!hmac_sha256_verify(b"k", &["abc", "def"], &tag));
        assert!(!hmac_sha256_verify(b"k", &["abc:def"], &tag[..31]));
    }
}
