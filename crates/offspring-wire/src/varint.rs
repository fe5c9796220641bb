//! Postcard's varint: an unsigned integer in 7-bit groups, low group first, the high bit of
//! each byte saying another follows. Written here where a message is encoded by hand (a
//! byte vector's length put in front of its bytes, a ring entry's value).

/// Writes `value` into `out`; how many bytes it took (1 to 10).
pub fn write(mut value: u64, out: &mut [u8; 10]) -> usize {
    let mut n = 0;
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[n] = low;
            return n + 1;
        }
        out[n] = low | 0x80;
        n += 1;
    }
}

/// The varint at the start of `bytes`: its value and its length in bytes; `None` when no
/// byte of the first 10 ends it.
pub fn read(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_postcard() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = [0u8; 10];
            let n = write(value, &mut out);
            assert_eq!(&out[..n], postcard::to_allocvec(&value).unwrap());
            assert_eq!(read(&out[..n]), Some((value, n)));
        }
        assert_eq!(read(&[0x80; 10]), None);
        assert_eq!(read(&[]), None);
    }
}
