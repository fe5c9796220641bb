//! Length-prefixed postcard frames: encoding, the length check, and decoding.

use std::io::Read;

use serde::{Serialize, de::DeserializeOwned};

/// Bytes in a frame header (the `u32` little-endian body length).
pub const HEADER_LEN: usize = 4;

/// The largest body accepted before the peer has authenticated: handshake messages are a few
/// hundred bytes, so a stranger can never make the parent allocate a larger frame body (and
/// the transport buffers reads only once the peer has authenticated).
pub const PRE_AUTH_MAX_FRAME: u32 = 4 * 1024;

/// The largest body accepted from an authenticated peer: a 64 MiB payload plus its envelope.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024 + 1024 * 1024;

/// What can go wrong with a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The header announces a body larger than the cap in force.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The cap in force.
        max: u32,
    },
    /// The body is not a valid encoding of the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Encoding a message failed (for example a type postcard cannot carry).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The underlying reader failed or ended inside a frame.
    #[error("i/o error while reading a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg` as one complete frame (header and body).
///
/// # Errors
///
/// [`WireError::Encode`] if postcard cannot serialize the value, and [`WireError::TooLarge`] if
/// the body would exceed [`MAX_FRAME`] (the peer would refuse it).
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, WireError> {
    let mut buf = postcard::to_extend(msg, vec![0u8; HEADER_LEN])
        .map_err(|e| WireError::Encode(e.to_string()))?;
    let body_len = buf.len() - HEADER_LEN;
    let len = u32::try_from(body_len)
        .ok()
        .filter(|len| *len <= MAX_FRAME)
        .ok_or(WireError::TooLarge {
            len: body_len as u64,
            max: MAX_FRAME,
        })?;
    buf[..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

/// Reads the body length from a header, refusing anything over `max` before a byte of the body
/// is allocated.
///
/// # Errors
///
/// [`WireError::TooLarge`] when the length exceeds `max`.
pub fn frame_len(header: [u8; HEADER_LEN], max: u32) -> Result<usize, WireError> {
    let len = u32::from_le_bytes(header);
    if len > max {
        return Err(WireError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(len as usize)
}

/// Decodes a frame body. Trailing bytes after the message are an error: a frame carries exactly
/// one message.
///
/// # Errors
///
/// [`WireError::Malformed`] on any input that is not exactly one encoded `T`.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (msg, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} unexpected bytes after the message",
            rest.len()
        )));
    }
    Ok(msg)
}

/// Reads one frame body from a blocking reader. `Ok(None)` is a clean end of stream at a frame
/// boundary; an end inside a frame is an error.
///
/// # Errors
///
/// [`WireError::TooLarge`] before any allocation when the header exceeds `max`, and
/// [`WireError::Io`] when the reader fails or ends inside the frame.
pub fn read_frame<R: Read>(reader: &mut R, max: u32) -> Result<Option<Vec<u8>>, WireError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    let len = frame_len(header, max)?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, ToWorker};

    #[test]
    fn round_trip() -> Result<(), WireError> {
        let msg = ToWorker::Shutdown;
        let frame = encode(&msg)?;
        let len = frame_len([frame[0], frame[1], frame[2], frame[3]], MAX_FRAME)?;
        assert_eq!(len, frame.len() - HEADER_LEN);
        let back: ToWorker = decode(&frame[HEADER_LEN..])?;
        assert_eq!(back, msg);
        Ok(())
    }

    #[test]
    fn oversized_header_is_refused() {
        let header = u32::MAX.to_le_bytes();
        assert!(matches!(
            frame_len(header, PRE_AUTH_MAX_FRAME),
            Err(WireError::TooLarge { .. })
        ));
        let mut bytes: &[u8] = &header;
        assert!(matches!(
            read_frame(&mut bytes, MAX_FRAME),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_malformed() -> Result<(), WireError> {
        let mut frame = encode(&Outcome::UnknownTask)?;
        frame.push(0);
        assert!(matches!(
            decode::<Outcome>(&frame[HEADER_LEN..]),
            Err(WireError::Malformed(_))
        ));
        Ok(())
    }

    #[test]
    fn truncated_stream_is_an_error_not_eof() {
        let mut bytes: &[u8] = &[5, 0];
        assert!(matches!(
            read_frame(&mut bytes, MAX_FRAME),
            Err(WireError::Io(_))
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut empty, MAX_FRAME), Ok(None)));
    }
}
