//! Checks shared by the fuzz targets of the offspring protocol.
//!
//! Every target ends in [`decode_body`]: decoding may fail, it must never panic, and a message
//! that decodes must encode again and decode back to the same value. [`read_frames`] drives
//! `read_frame` over an arbitrary byte stream under either cap and checks that a frame over
//! the cap is refused after its header alone.

use std::fmt::Debug;
use std::io::{self, Read};

use offspring_wire::{
    HEADER_LEN, MAX_FRAME, PRE_AUTH_MAX_FRAME, WireError, decode, encode, frame_len, read_frame,
};
use serde::{Serialize, de::DeserializeOwned};

/// Decodes `body` as one `M`. Anything that decodes must survive the round trip; any failure
/// must be [`WireError::Malformed`]. Returns whether it decoded.
///
/// # Panics
///
/// When a decoded message does not encode, encodes longer than the input it came from
/// (postcard's encoding is the shortest one), or decodes back to a different value.
pub fn decode_body<M>(body: &[u8]) -> bool
where
    M: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let msg = match decode::<M>(body) {
        Ok(msg) => msg,
        Err(WireError::Malformed(_)) => return false,
        Err(e) => panic!("decode failed with something other than Malformed: {e}"),
    };
    let frame = match encode(&msg) {
        Ok(frame) => frame,
        Err(e) => panic!("{msg:?} decoded but does not encode: {e}"),
    };
    let header = [frame[0], frame[1], frame[2], frame[3]];
    match frame_len(header, MAX_FRAME) {
        Ok(len) => assert_eq!(len, frame.len() - HEADER_LEN, "the header states the body"),
        Err(e) => panic!("an encoded frame is refused: {e}"),
    }
    assert!(
        frame.len() - HEADER_LEN <= body.len(),
        "{msg:?} re-encodes longer than the {} bytes it decoded from",
        body.len()
    );
    match decode::<M>(&frame[HEADER_LEN..]) {
        Ok(back) => assert_eq!(back, msg, "the round trip changed the message"),
        Err(e) => panic!("{msg:?} re-encoded does not decode: {e}"),
    }
    true
}

/// Reads `data[1..]` as a stream of frames until it ends or a read fails, handing every body
/// to `each`. The low bit of `data[0]` picks the cap ([`PRE_AUTH_MAX_FRAME`] or [`MAX_FRAME`]);
/// the next three bits how many bytes each read returns at most (zero: no limit), so the
/// header loop sees short reads.
///
/// # Panics
///
/// When `read_frame` reads a body over the cap, reads any of a body it refuses, reports a
/// clean end inside the stream, or fails in a way a byte slice cannot explain.
pub fn read_frames(data: &[u8], mut each: impl FnMut(&[u8])) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let cap = if control & 1 == 0 {
        PRE_AUTH_MAX_FRAME
    } else {
        MAX_FRAME
    };
    let chunk = match usize::from((control >> 1) & 0b111) {
        0 => usize::MAX,
        n => n,
    };
    if stream.len() >= HEADER_LEN {
        let header = [stream[0], stream[1], stream[2], stream[3]];
        let announced = u32::from_le_bytes(header);
        assert_eq!(frame_len(header, cap).is_ok(), announced <= cap);
    }
    let mut reader = Trickle {
        data: stream,
        pos: 0,
        chunk,
    };
    loop {
        let start = reader.pos;
        match read_frame(&mut reader, cap) {
            Ok(None) => {
                assert_eq!(start, stream.len(), "end of stream reported mid-stream");
                return;
            }
            Ok(Some(body)) => {
                assert!(body.len() <= cap as usize, "a body over the cap was read");
                assert_eq!(reader.pos, start + HEADER_LEN + body.len());
                each(&body);
            }
            Err(WireError::TooLarge { len, max }) => {
                assert_eq!(max, cap);
                assert!(
                    len > u64::from(cap),
                    "{len} bytes refused under a cap of {cap}"
                );
                assert_eq!(
                    reader.pos,
                    start + HEADER_LEN,
                    "a frame over the cap had its body read before it was refused"
                );
                return;
            }
            Err(WireError::Io(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
                assert_eq!(reader.pos, stream.len(), "a read failed before the end");
                return;
            }
            Err(e) => panic!("read_frame failed with an unexpected error: {e}"),
        }
    }
}

/// A reader over a slice that hands out at most `chunk` bytes per read.
#[derive(Debug)]
struct Trickle<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
