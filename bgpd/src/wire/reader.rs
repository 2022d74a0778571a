// A bounds-checked reader over a `Bytes` buffer for the decoders. Every read
// returns `None` instead of panicking when the input is short, and `take`
// hands out zero-copy `Bytes` slices of the received frame (RFC 4271 §4
// fields are all big-endian).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Buf, Bytes};

/// Reads big-endian fields from the front of a frame without copying.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        if self.buf.len() < 2 {
            return None;
        }
        Some(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        if self.buf.len() < 4 {
            return None;
        }
        Some(self.buf.get_u32())
    }

    pub(crate) fn ipv4(&mut self) -> Option<Ipv4Addr> {
        self.u32().map(Ipv4Addr::from)
    }

    pub(crate) fn ipv6(&mut self) -> Option<Ipv6Addr> {
        if self.buf.len() < 16 {
            return None;
        }
        Some(Ipv6Addr::from(self.buf.get_u128()))
    }

    /// The next `len` bytes as a slice of the same frame.
    pub(crate) fn take(&mut self, len: usize) -> Option<Bytes> {
        if self.buf.len() < len {
            return None;
        }
        Some(self.buf.split_to(len))
    }

    /// Everything left, consuming the reader.
    pub(crate) fn rest(self) -> Bytes {
        self.buf
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn peek_rest(&self) -> &Bytes {
        &self.buf
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_return_none_and_consume_nothing() {
        let mut reader = Reader::new(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(reader.u32(), None);
        assert_eq!(reader.take(4), None);
        assert_eq!(reader.u16(), Some(0x0102));
        assert_eq!(reader.u16(), None);
        assert_eq!(reader.u8(), Some(3));
        assert_eq!(reader.u8(), None);
        assert!(reader.is_empty());
    }
}
