//! Framing of several files in one fuzz input: text files separated by NUL bytes (text formats
//! never hold a raw NUL, so a seed is just the files joined by `\0`); binary files each behind
//! a 4-byte little-endian length.

use std::borrow::Cow;

/// The first `N` NUL-separated fields of `data` (the last keeps any further NULs); fields past
/// the end of the input are empty.
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    for (slot, field) in out.iter_mut().zip(data.splitn(N, |&b| b == 0)) {
        *slot = field;
    }
    out
}

/// `N` length-prefixed fields: each is a u32 LE length then that many bytes (cut short at the
/// end of the input); the last field is the rest of the input, unprefixed.
pub fn prefixed<const N: usize>(mut data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *slot = data;
            break;
        }
        let Some((len, rest)) = data.split_first_chunk::<4>() else {
            break;
        };
        let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
        (*slot, data) = rest.split_at(len);
    }
    out
}

/// A field as text (invalid UTF-8 replaced, as a lossy reader would).
pub fn text(field: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(field)
}

/// An optional file: absent when the field is empty.
pub fn optional(field: &[u8]) -> Option<Cow<'_, str>> {
    (!field.is_empty()).then(|| text(field))
}

/// Token ids from raw bytes, two little-endian bytes each, reduced modulo `vocab + 1` so that
/// one id past the end of the vocabulary shows up too (it must be an error, not a panic).
pub fn ids(raw: &[u8], vocab: usize) -> Vec<u32> {
    raw.chunks_exact(2)
        .map(|c| (u16::from_le_bytes([c[0], c[1]]) as usize % (vocab + 1)) as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_at_nuls() {
        assert_eq!(fields::<3>(b"a\0b\0c\0d"), [&b"a"[..], b"b", b"c\0d"]);
        assert_eq!(fields::<3>(b"a"), [&b"a"[..], b"", b""]);
        assert_eq!(ids(&[1, 0, 255, 255, 7], 10), vec![1, 65535 % 11]);
        let data = [&[2, 0, 0, 0][..], b"ab", &[9, 0, 0, 0], b"c\0", b"rest"].concat();
        assert_eq!(prefixed::<3>(&data), [&b"ab"[..], b"c\0rest", b""]);
        let data = [&[1, 0, 0, 0][..], b"a", &[1, 0, 0, 0], b"b", b"rest"].concat();
        assert_eq!(prefixed::<3>(&data), [&b"a"[..], b"b", b"rest"]);
    }
}
