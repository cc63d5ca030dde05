//! A cursor over GGUF bytes that checks every read, and every count taken from the file,
//! against the bytes actually left.

use rmlx_core::{Error, Result};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &dyn std::fmt::Display) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::format(format!(
                "gguf: truncated file: expected {n} bytes for {what} at offset {}, found {}",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn std::fmt::Display) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &dyn std::fmt::Display) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &dyn std::fmt::Display) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &dyn std::fmt::Display) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &dyn std::fmt::Display) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items each at least `min_item_bytes` long: rejected unless that many items
    /// could fit in what is left of the file, so it is safe to allocate for.
    pub fn count(&mut self, min_item_bytes: usize, what: &dyn std::fmt::Display) -> Result<usize> {
        let n = self.u64(what)?;
        let left = self.remaining() as u64;
        if n.checked_mul(min_item_bytes as u64)
            .is_none_or(|need| need > left)
        {
            return Err(Error::format(format!(
                "gguf: {what}: count {n} cannot fit in the {left} bytes left in the file"
            )));
        }
        Ok(n as usize)
    }

    /// A length-prefixed string's bytes (not necessarily UTF-8).
    pub fn string(&mut self, what: &dyn std::fmt::Display) -> Result<&'a [u8]> {
        let n = self.count(1, &format_args!("length of {what}"))?;
        self.take(n, what)
    }

    /// A string that must be valid UTF-8 (keys and tensor names).
    pub fn utf8(&mut self, what: &dyn std::fmt::Display) -> Result<String> {
        let at = self.pos;
        let b = self.string(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| {
            Error::format(format!(
                "gguf: {what} at offset {at}: expected UTF-8, found invalid bytes"
            ))
        })
    }
}
