//! A connection's write side for a thread outside the async runtime: it writes whole frames
//! to the socket itself, blocking, instead of handing them to the runtime's thread and
//! waiting to hear they were written.
//!
//! Only on Unix, where the dialling side of a [`Conn`](crate::Conn) keeps a duplicate of the
//! socket's descriptor. The runtime owns the socket and keeps it non-blocking (the flag
//! belongs to the open file, so the duplicate shares it): a write that meets a full socket
//! waits with `poll` for room, then goes on. Elsewhere no connection has one, and everything
//! goes through the async [`FrameWriter`](crate::FrameWriter).
//!
//! The direct writer and the async writer write the same byte stream: whoever uses both must
//! make sure only one of them writes at a time, and only whole frames.

use std::io::{self, IoSlice};
use std::time::Instant;

/// Writes frames straight to a connection's socket from any thread that may block (see the
/// module docs).
#[derive(Debug)]
pub struct DirectWriter {
    #[cfg(unix)]
    stream: std::os::unix::net::UnixStream,
    #[cfg(not(unix))]
    never: std::convert::Infallible,
}

impl DirectWriter {
    #[cfg(unix)]
    pub(crate) fn new(fd: std::os::fd::OwnedFd) -> Self {
        Self {
            stream: std::os::unix::net::UnixStream::from(fd),
        }
    }

    /// Writes all of `bufs`, in order, waiting for room in the socket whenever it is full,
    /// at most until `deadline`. The slices are advanced past what was written.
    ///
    /// # Errors
    ///
    /// The socket's error, typically a broken pipe or a reset connection when the peer is
    /// gone; [`io::ErrorKind::TimedOut`] when `deadline` passed first. Either way part of the
    /// bytes may have been written, so the stream must not be written again.
    pub fn write_all(&self, bufs: &mut [IoSlice<'_>], deadline: Option<Instant>) -> io::Result<()> {
        #[cfg(unix)]
        {
            write_all(&self.stream, bufs, deadline)
        }
        #[cfg(not(unix))]
        {
            let _ = (bufs, deadline);
            match self.never {}
        }
    }
}

#[cfg(unix)]
fn write_all(
    stream: &std::os::unix::net::UnixStream,
    mut bufs: &mut [IoSlice<'_>],
    deadline: Option<Instant>,
) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::fd::AsFd as _;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match (&*stream).write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                crate::sys::wait_writable(stream.as_fd(), deadline)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Read as _;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;

    /// A socket far smaller than what is written: the writer must wait for room many times,
    /// and the reader must get every byte in order.
    #[test]
    fn writes_everything_through_a_full_nonblocking_socket() {
        let (ours, mut theirs) = UnixStream::pair().expect("socket pair");
        ours.set_nonblocking(true).expect("non-blocking");
        let writer = DirectWriter::new(OwnedFd::from(ours));
        let first: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let second = vec![9u8; 12_345];
        let expected = [first.clone(), second.clone()].concat();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).expect("read");
            got
        });
        let mut bufs = [IoSlice::new(&first), IoSlice::new(&second)];
        writer.write_all(&mut bufs, None).expect("write");
        drop(writer);
        assert_eq!(reader.join().expect("reader"), expected);
    }

    #[test]
    fn a_full_socket_nobody_reads_times_out() {
        let (ours, _theirs) = UnixStream::pair().expect("socket pair");
        ours.set_nonblocking(true).expect("non-blocking");
        let writer = DirectWriter::new(OwnedFd::from(ours));
        let big = vec![0u8; 16 * 1024 * 1024];
        let deadline = Instant::now() + Duration::from_millis(50);
        let error = writer
            .write_all(&mut [IoSlice::new(&big)], Some(deadline))
            .expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_closed_peer_is_an_error() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        ours.set_nonblocking(true).expect("non-blocking");
        drop(theirs);
        let writer = DirectWriter::new(OwnedFd::from(ours));
        let error = writer
            .write_all(&mut [IoSlice::new(b"frame")], None)
            .expect_err("peer closed");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
