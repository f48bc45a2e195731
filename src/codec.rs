//! A small fixed binary layout for the records on the hot path: big-endian integers, and
//! length-prefixed byte strings. Decoding never panics: malformed input is `None`.

/// Appends fields to a byte vector.
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer(Vec::with_capacity(n))
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// An optional number: a presence byte and the value (0 when absent).
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        self.u8(u8::from(v.is_some())).u64(v.unwrap_or(0))
    }

    /// Bytes with a 16-bit length; longer input is cut at 65,535 bytes (callers bound their
    /// fields far below that).
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0
            .extend_from_slice(v.get(..usize::from(len)).unwrap_or(v));
        self
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

/// Reads fields in the order a [`Writer`] wrote them.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }

    pub(crate) fn opt_u64(&mut self) -> Option<Option<u64>> {
        let present = self.u8()?;
        let v = self.u64()?;
        match present {
            0 => Some(None),
            1 => Some(Some(v)),
            _ => None,
        }
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(u16::from_be_bytes(self.take::<2>()?));
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    /// Whether every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_input_is_none() {
        let mut w = Writer::with_capacity(32);
        w.u8(7)
            .u32(9)
            .u64(u64::MAX)
            .opt_u64(None)
            .opt_u64(Some(3))
            .bytes(b"abc");
        let bytes = w.into_vec();
        let mut r = Reader(&bytes);
        assert_eq!(r.u8(), Some(7));
        assert_eq!(r.u32(), Some(9));
        assert_eq!(r.u64(), Some(u64::MAX));
        assert_eq!(r.opt_u64(), Some(None));
        assert_eq!(r.opt_u64(), Some(Some(3)));
        assert_eq!(r.bytes(), Some(&b"abc"[..]));
        assert!(r.is_empty());
        for cut in 0..bytes.len() {
            let mut r = Reader(&bytes[..cut]);
            let all = (|| {
                r.u8()?;
                r.u32()?;
                r.u64()?;
                r.opt_u64()?;
                r.opt_u64()?;
                r.bytes()
            })();
            assert_eq!(all, None, "cut at {cut}");
        }
    }
}
