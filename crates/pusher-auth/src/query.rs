//! Percent-encoding and `application/x-www-form-urlencoded` parsing, just what request signing
//! needs. Decoding never panics: a bad escape or non-UTF-8 result is `None`.

use crate::mac::hex_pair;

/// Percent-decodes `input`; with `plus_as_space`, `+` means a space (form encoding, for query
/// strings) rather than itself (paths). `None` on a `%` not followed by two hex digits.
pub(crate) fn percent_decode(input: &str, plus_as_space: bool) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = *bytes.get(i + 1)?;
                let lo = *bytes.get(i + 2)?;
                out.push(hex_pair(hi, lo)?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Decodes one form-encoded key or value into UTF-8 text.
pub(crate) fn form_decode(input: &str) -> Option<String> {
    String::from_utf8(percent_decode(input, true)?).ok()
}

/// The raw `key=value` segments of a query string: split on `&`, empty segments skipped (as
/// browsers and form parsers do), a segment without `=` is a key with an empty value.
pub(crate) fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| segment.split_once('=').unwrap_or((segment, "")))
}

/// Decodes a whole query string into `(key, value)` pairs in their original order.
/// `None` if any key or value is not valid percent-encoded UTF-8.
pub(crate) fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    raw_pairs(query)
        .map(|(k, v)| Some((form_decode(k)?, form_decode(v)?)))
        .collect()
}

/// Percent-encodes one URL path segment (a channel name, a user id) the way
/// signed requests carry it: everything but RFC 3986 unreserved characters
/// is escaped, so `#server-to-user-a b` becomes `%23server-to-user-a%20b`.
pub fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    encode_component(text, &mut out);
    out
}

/// Decodes one percent-encoded URL path segment (`+` stays itself); `None`
/// on a bad escape or a result that is not UTF-8.
pub fn decode_path_segment(text: &str) -> Option<String> {
    String::from_utf8(percent_decode(text, false)?).ok()
}

/// Appends `text` percent-encoded: everything but RFC 3986 unreserved characters is escaped,
/// so the result survives any query parser unchanged.
pub(crate) fn encode_component(text: &str, out: &mut String) {
    const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_round_trip() {
        let name = "#server-to-user-auth0|a b+c";
        assert_eq!(
            encode_path_segment(name),
            "%23server-to-user-auth0%7Ca%20b%2Bc"
        );
        assert_eq!(
            decode_path_segment(&encode_path_segment(name)).as_deref(),
            Some(name)
        );
        assert_eq!(decode_path_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_path_segment("%zz"), None);
    }

    #[test]
    fn decodes_form_and_path() {
        assert_eq!(form_decode("a+b%20c%2B%2b").as_deref(), Some("a b c++"));
        assert_eq!(percent_decode("/a+b%20c", false).unwrap(), b"/a+b c");
        assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(form_decode("é").as_deref(), Some("é"));
    }

    #[test]
    fn rejects_bad_escapes_without_panicking() {
        for bad in ["%", "%4", "%zz", "%4g", "a%", "%%41", "%\u{e9}", "%4\u{e9}"] {
            assert_eq!(form_decode(bad), None, "{bad:?}");
        }
        // Valid escapes that are not UTF-8.
        assert_eq!(form_decode("%ff"), None);
        assert_eq!(percent_decode("%ff", false).unwrap(), [0xff]);
    }

    #[test]
    fn parses_pairs() {
        let pairs = parse_query("a=1&&b=&c&d=x=y&=e").unwrap();
        let expected = [("a", "1"), ("b", ""), ("c", ""), ("d", "x=y"), ("", "e")];
        assert_eq!(pairs.len(), expected.len());
        for ((k, v), (ek, ev)) in pairs.iter().zip(expected) {
            assert_eq!((k.as_str(), v.as_str()), (ek, ev));
        }
        assert_eq!(parse_query("").unwrap(), vec![]);
        assert_eq!(parse_query("a=%"), None);
    }

    #[test]
    fn encoding_round_trips() {
        let text = "a b+c&d=e%f/é~._-\u{1F600}";
        let mut encoded = String::new();
        encode_component(text, &mut encoded);
        assert_eq!(encoded, "a%20b%2Bc%26d%3De%25f%2F%C3%A9~._-%F0%9F%98%80");
        assert_eq!(form_decode(&encoded).as_deref(), Some(text));
    }
}
