//! Frames over async byte streams: the reader checks the cap before it allocates.

use offspring_wire::{HEADER_LEN, WireError, frame_len};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::seal::{Opener, RECORD_HEADER, Sealer};

/// What a sealed reader holds: its opener and the plaintext opened but not yet parsed.
struct Sealed {
    opener: Opener,
    plain: Vec<u8>,
    pos: usize,
}

/// Reads frames from any async byte stream.
///
/// # Cancel safety
///
/// [`FrameReader::read_frame`] is not cancel safe: dropping it mid-frame loses the stream's
/// position. Keep it in a task of its own rather than in a `select!` loop.
pub struct FrameReader {
    inner: Box<dyn AsyncRead + Send + Unpin>,
    max: u32,
    buffered: bool,
    sealed: Option<Sealed>,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("max", &self.max)
            .finish()
    }
}

impl FrameReader {
    /// Wraps a reader with the given frame cap. Reads are not buffered until
    /// [`FrameReader::buffer`] is called.
    pub fn new(inner: Box<dyn AsyncRead + Send + Unpin>, max: u32) -> Self {
        Self {
            inner,
            max,
            buffered: false,
            sealed: None,
        }
    }

    /// Opens every byte read from now on as sealed records (see [`crate::seal`]).
    pub fn seal(&mut self, opener: Opener) {
        self.sealed = Some(Sealed {
            opener,
            plain: Vec::new(),
            pos: 0,
        });
    }

    /// Buffers reads from now on, up to `capacity` bytes at a time, so that a small frame
    /// costs one read call and frames that arrived together are parsed from memory. A second
    /// call does nothing.
    ///
    /// Until then each frame is read as it is announced, header then body, and nothing is
    /// read ahead: so wrapping the reader now loses no bytes, and an unauthenticated peer
    /// costs no buffer beyond its (capped) frame.
    pub fn buffer(&mut self, capacity: usize) {
        if self.buffered {
            return;
        }
        let inner = std::mem::replace(&mut self.inner, Box::new(tokio::io::empty()));
        self.inner = Box::new(tokio::io::BufReader::with_capacity(capacity, inner));
        self.buffered = true;
    }

    /// Changes the cap (raised once the peer has authenticated).
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Reads one frame body. `Ok(None)` is a clean end of stream between frames.
    ///
    /// # Errors
    ///
    /// [`WireError::TooLarge`] before allocating when the header exceeds the cap;
    /// [`WireError::Io`] when the stream fails or ends inside a frame.
    pub async fn read_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        if self.sealed.is_some() {
            return self.read_sealed_frame().await;
        }
        let mut header = [0u8; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            let n = self.inner.read(&mut header[filled..]).await?;
            if n == 0 {
                if filled == 0 {
                    return Ok(None);
                }
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            filled += n;
        }
        let len = frame_len(header, self.max)?;
        let mut body = vec![0u8; len];
        self.inner.read_exact(&mut body).await?;
        Ok(Some(body))
    }

    /// [`FrameReader::read_frame`] over sealed records: frames are parsed from the opened
    /// plaintext, and a frame's length is checked against the cap as soon as its header is
    /// there, before more records are read for its body.
    async fn read_sealed_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let Self {
            inner, max, sealed, ..
        } = self;
        let Some(sealed) = sealed.as_mut() else {
            return Ok(None);
        };
        loop {
            let have = sealed.plain.len() - sealed.pos;
            if have >= HEADER_LEN {
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(&sealed.plain[sealed.pos..sealed.pos + HEADER_LEN]);
                let len = frame_len(header, *max)?;
                if have >= HEADER_LEN + len {
                    let start = sealed.pos + HEADER_LEN;
                    let body = if sealed.pos == 0 && sealed.plain.len() == HEADER_LEN + len {
                        let mut whole = std::mem::take(&mut sealed.plain);
                        whole.drain(..HEADER_LEN);
                        whole
                    } else {
                        sealed.plain[start..start + len].to_vec()
                    };
                    sealed.pos += HEADER_LEN + len;
                    if sealed.pos >= sealed.plain.len() {
                        sealed.plain.clear();
                        sealed.pos = 0;
                    }
                    return Ok(Some(body));
                }
                sealed.plain.reserve(HEADER_LEN + len - have);
            }
            // More plaintext is needed: open the next record after what is held.
            let mut record_header = [0u8; RECORD_HEADER];
            let mut filled = 0;
            while filled < RECORD_HEADER {
                let n = inner.read(&mut record_header[filled..]).await?;
                if n == 0 {
                    if filled == 0 && have == 0 {
                        return Ok(None);
                    }
                    return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                filled += n;
            }
            let body_len = Opener::body_len(record_header)?;
            if sealed.pos > 0 {
                sealed.plain.drain(..sealed.pos);
                sealed.pos = 0;
            }
            let start = sealed.plain.len();
            sealed.plain.resize(start + body_len, 0);
            // Nothing unopened may stay behind as plaintext, whatever ends this read.
            let opened = match inner.read_exact(&mut sealed.plain[start..]).await {
                Ok(_) => sealed
                    .opener
                    .open(record_header, &mut sealed.plain[start..]),
                Err(e) => Err(e),
            };
            match opened {
                Ok(opened) => sealed.plain.truncate(start + opened),
                Err(e) => {
                    sealed.plain.truncate(start);
                    return Err(e.into());
                }
            }
        }
    }
}

/// Writes whole frames (as produced by [`offspring_wire::encode`]) to any async byte stream.
pub struct FrameWriter {
    inner: Box<dyn AsyncWrite + Send + Unpin>,
    sealed: Option<(Sealer, Vec<u8>)>,
    /// Test switch: flip one bit of the sealed write with this number (0 is the first).
    corrupt_write: Option<u64>,
}

/// A sealed writer's buffer is kept between writes up to this capacity.
const KEEP_SEALED_BUFFER: usize = 1024 * 1024;

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").finish_non_exhaustive()
    }
}

impl FrameWriter {
    /// Wraps a writer.
    pub fn new(inner: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Self {
            inner,
            sealed: None,
            corrupt_write: None,
        }
    }

    /// Test switch: flips one bit of the `n`th sealed write from now (0 is the next), so
    /// that the peer's opening of it fails, as a tampering network would make it.
    pub fn corrupt_sealed_write(&mut self, n: u64) {
        self.corrupt_write = Some(n);
    }

    /// Seals every byte written from now on (see [`crate::seal`]).
    pub fn seal(&mut self, sealer: Sealer) {
        self.sealed = Some((sealer, Vec::new()));
    }

    /// Writes encoded frames (one, or several back to back) and flushes them.
    ///
    /// # Errors
    ///
    /// The stream's I/O error (typically a broken pipe when the peer is gone).
    pub async fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match &mut self.sealed {
            None => self.inner.write_all(frame).await?,
            Some((sealer, buffer)) => {
                buffer.clear();
                sealer.seal_into(frame, buffer)?;
                match &mut self.corrupt_write {
                    Some(0) => {
                        if let Some(last) = buffer.last_mut() {
                            *last ^= 0x20;
                        }
                        self.corrupt_write = None;
                    }
                    Some(n) => *n -= 1,
                    None => {}
                }
                self.inner.write_all(buffer).await?;
                if buffer.capacity() > KEEP_SEALED_BUFFER {
                    *buffer = Vec::new();
                }
            }
        }
        self.inner.flush().await
    }

    /// Shuts the write side down so the peer sees end of stream.
    ///
    /// # Errors
    ///
    /// The stream's I/O error.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::seal::{Role, derive};

    fn sealed_pair(stream_bytes: usize) -> (FrameWriter, FrameReader) {
        let secret = Secret::generate().expect("secret");
        let shared = [7u8; 32];
        let (sealer, _) = derive(&secret, &shared, &[b"t"], Role::Parent).expect("keys");
        let (_, opener) = derive(&secret, &shared, &[b"t"], Role::Worker).expect("keys");
        let (a, b) = tokio::io::duplex(stream_bytes);
        let mut writer = FrameWriter::new(Box::new(a));
        writer.seal(sealer);
        let mut reader = FrameReader::new(Box::new(b), offspring_wire::MAX_FRAME);
        reader.seal(opener);
        (writer, reader)
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn sealed_frames_of_every_size_arrive_whole_and_in_order() {
        let (mut writer, mut reader) = sealed_pair(1 << 16);
        let big: Vec<u8> = (0..40 * 1024 * 1024 + 3).map(|i| (i % 253) as u8).collect();
        let bodies = vec![b"a".to_vec(), big, Vec::new(), vec![5u8; 300_000]];
        let sent = bodies.clone();
        let write = tokio::spawn(async move {
            // Two frames in one write, then one each.
            let mut two = frame(&sent[0]);
            two.extend_from_slice(&frame(&sent[1]));
            writer.write_frame(&two).await.expect("write");
            writer.write_frame(&frame(&sent[2])).await.expect("write");
            writer.write_frame(&frame(&sent[3])).await.expect("write");
        });
        let began = std::time::Instant::now();
        for body in &bodies {
            let got = reader.read_frame().await.expect("read").expect("a frame");
            assert_eq!(&got, body);
        }
        write.await.expect("writer");
        assert!(reader.read_frame().await.expect("clean end").is_none());
        println!("40 MiB sealed and opened in {:?}", began.elapsed());
    }
}
