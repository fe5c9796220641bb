//! Frames over async byte streams: the reader checks the cap before it allocates.

use offspring_wire::{HEADER_LEN, WireError, frame_len};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
        }
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
}

/// Writes whole frames (as produced by [`offspring_wire::encode`]) to any async byte stream.
pub struct FrameWriter {
    inner: Box<dyn AsyncWrite + Send + Unpin>,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").finish_non_exhaustive()
    }
}

impl FrameWriter {
    /// Wraps a writer.
    pub fn new(inner: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Self { inner }
    }

    /// Writes encoded frames (one, or several back to back) and flushes them.
    ///
    /// # Errors
    ///
    /// The stream's I/O error (typically a broken pipe when the peer is gone).
    pub async fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(frame).await?;
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
