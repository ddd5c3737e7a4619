//! Unsigned LEB128 varints, as used by protobuf, multiformats and CAR.
//!
//! Hand-written because the decoder must report *why* input is bad (too long,
//! overflowing, truncated) with an offset, which the CAR reader and the UnixFS
//! decoder turn into their own errors.

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended before the last byte of the varint.
    Truncated,
    /// More than 10 bytes, or a value above `u64::MAX`.
    Overflow,
    /// A value that has a shorter encoding (trailing zero byte); multiformats
    /// require minimal varints.
    NotMinimal,
}

impl std::fmt::Display for VarintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VarintError::Truncated => "truncated varint",
            VarintError::Overflow => "varint overflows 64 bits",
            VarintError::NotMinimal => "varint is not minimally encoded",
        })
    }
}

/// Appends the varint encoding of `v` to `out`.
pub fn encode(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Number of bytes [`encode`] writes for `v`.
pub fn encoded_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes a varint from the start of `buf`, returning the value and the
/// number of bytes it used.
pub fn decode(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i == 10 {
            return Err(VarintError::Overflow);
        }
        let low = u64::from(b & 0x7f);
        // The 10th byte may only carry the single remaining bit.
        if i == 9 && low > 1 {
            return Err(VarintError::Overflow);
        }
        value |= low << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(VarintError::NotMinimal);
            }
            return Ok((value, i + 1));
        }
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edge_values() {
        for v in [0u64, 1, 127, 128, 255, 300, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            encode(v, &mut buf);
            assert_eq!(buf.len(), encoded_len(v), "len of {v}");
            assert_eq!(decode(&buf), Ok((v, buf.len())), "value {v}");
        }
    }

    #[test]
    fn known_encodings() {
        let mut buf = Vec::new();
        encode(300, &mut buf);
        assert_eq!(buf, [0xac, 0x02]);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode(&[]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80, 0x80]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0xff; 11]), Err(VarintError::Overflow));
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(decode(&too_big), Err(VarintError::Overflow));
        assert_eq!(decode(&[0x81, 0x00]), Err(VarintError::NotMinimal));
    }
}
