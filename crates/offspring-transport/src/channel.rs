//! Direct channels between two processes of one machine (Linux): a `SOCK_SEQPACKET` socket
//! pair, one message per `send`, and descriptors passed from one process to another.
//!
//! A pipe made by `offspring::pipe` is one such pair. Every process that holds an end gets its
//! own descriptor of that end (the parent hands it down over a worker's *side channel*, a
//! second socket pair made at spawn, with [`Channel::send_fd`]), and the two processes then
//! talk without the parent in between.
//!
//! - **Boundaries.** The kernel keeps each message whole, so an end held by two processes (or
//!   two threads) at once never interleaves bytes: each `send` arrives as one message, and
//!   each `recv` takes one.
//! - **Large messages.** A message up to [`INLINE_MAX`] travels in the socket. A larger one is
//!   written to a fresh `memfd`, and the message carries its length and the descriptor, so it
//!   is still one message, whatever its size.
//! - **End of file.** A `recv` sees the end once every descriptor of the other end is closed,
//!   in every process: the parent's registry closes its own when the end's last lease goes.
//! - **Untrusted.** What arrives was written by another process: a message whose tag, length
//!   or descriptors do not make sense is [`io::ErrorKind::InvalidData`], never a wrong value
//!   (the payload is copied out once and then decoded by the caller, which checks it again).

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How long a receive tries again without sleeping before it waits in `poll`. Waking a
/// sleeping process on another CPU costs tens of microseconds on some machines (about 50 on
/// the virtual machine the benchmarks run on, against 5 for a whole round trip between two
/// awake ones), so a receiver whose answer is on its way keeps its CPU for a moment; it
/// yields between tries, so a sender on the same CPU runs at once.
const SPIN: Duration = Duration::from_micros(50);

/// The largest message sent inside the socket; larger ones go through a `memfd`.
pub const INLINE_MAX: usize = 32 * 1024;

const INLINE: u8 = 0;
const OUT_OF_LINE: u8 = 1;
/// What a descriptor passed on a side channel comes with: a tag naming it.
const TAG_LEN: usize = 8;

thread_local! {
    /// One receive buffer per thread, so that a small message costs no allocation.
    static BUFFER: RefCell<Option<Box<[u8]>>> = const { RefCell::new(None) };
}

/// One end of a socket pair that keeps message boundaries (see the module docs).
#[derive(Debug)]
pub struct Channel(OwnedFd);

impl Channel {
    /// A connected pair, both ends close-on-exec.
    ///
    /// # Errors
    ///
    /// The OS's, when it cannot make the pair (out of descriptors).
    pub fn pair() -> io::Result<(Self, Self)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two descriptors for the call to fill; on success
        // both are fresh descriptors that nothing else owns.
        let made = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if made != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `socketpair` succeeded, so both are open descriptors owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Self(a), Self(b)))
    }

    /// The end whose descriptor this process received.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self(fd)
    }

    /// The end this process inherited under descriptor `fd` (a worker's side channel, see
    /// [`ENV_SIDE`](crate::ENV_SIDE)), made close-on-exec so that nothing this process starts
    /// inherits it in turn.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when `fd` is not an open socket.
    pub fn inherited(fd: RawFd) -> io::Result<Self> {
        // SAFETY: `fstat` only writes the `stat` it is given; an invalid descriptor is an
        // error, not undefined behaviour.
        let is_socket = unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &raw mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFSOCK
        };
        if !is_socket {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} is not a socket"),
            ));
        }
        // SAFETY: the parent handed this descriptor down for this process alone (it was
        // inheritable in this child only) and nothing else in the process takes it: the
        // worker's runtime calls this once, with the number its environment named.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `fcntl` on a descriptor this process owns, with no pointers.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(fd))
    }

    /// Makes sends fail with [`io::ErrorKind::WouldBlock`] instead of waiting while the
    /// other end's buffer is full (the parent's end of a side channel: a worker that reads
    /// nothing must not stall the coordinator).
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn set_nonblocking(&self) -> io::Result<()> {
        // SAFETY: `fcntl` on a descriptor this channel owns, with no pointers.
        unsafe {
            let flags = libc::fcntl(self.0.as_raw_fd(), libc::F_GETFL);
            if flags < 0
                || libc::fcntl(self.0.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The raw descriptor (for a child to inherit under the same number).
    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Sends `message` as one message, waiting while the other end's buffer is full.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::BrokenPipe`] when the other end is closed; the OS's otherwise (a
    /// `memfd` it cannot make for a large message).
    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        if message.len() <= INLINE_MAX {
            match send_parts(self.0.as_fd(), &[&[INLINE], message], None) {
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {}
                other => return other,
            }
        }
        let memfd = memfd_with(message)?;
        let len = (message.len() as u64).to_le_bytes();
        send_parts(self.0.as_fd(), &[&[OUT_OF_LINE], &len], Some(memfd.as_fd()))
    }

    /// Waits for the next message, at most `timeout` (`None`: for ever; zero: a try), and
    /// gives it to `take`. `Ok(None)` when the time ran out; a message over `max` bytes is
    /// refused.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::UnexpectedEof`] when the other end is closed and nothing is left;
    /// [`io::ErrorKind::InvalidData`] for a message that makes no sense (a descriptor sent
    /// with [`send_fd`](Self::send_fd) among them); the OS's otherwise.
    pub fn recv<R>(
        &self,
        timeout: Option<Duration>,
        max: usize,
        take: impl FnOnce(&[u8]) -> R,
    ) -> io::Result<Option<R>> {
        match self.receive(timeout, max, false, take)? {
            Some(Received::Message(value)) => Ok(Some(value)),
            Some(Received::Descriptor(..)) => {
                Err(invalid("a message of a pipe has a malformed header"))
            }
            None => Ok(None),
        }
    }

    /// As [`recv`](Self::recv), and a descriptor sent with [`send_fd`](Self::send_fd) is
    /// received too: a side channel carries both, in the order they were sent.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_any<R>(
        &self,
        timeout: Option<Duration>,
        max: usize,
        take: impl FnOnce(&[u8]) -> R,
    ) -> io::Result<Option<Received<R>>> {
        self.receive(timeout, max, true, take)
    }

    fn receive<R>(
        &self,
        timeout: Option<Duration>,
        max: usize,
        descriptors: bool,
        take: impl FnOnce(&[u8]) -> R,
    ) -> io::Result<Option<Received<R>>> {
        // A timeout too long to add to the clock waits for ever.
        let now = Instant::now();
        let deadline = timeout.and_then(|t| now.checked_add(t));
        let mut buffer = BUFFER
            .with(|b| b.borrow_mut().take())
            .unwrap_or_else(|| vec![0u8; INLINE_MAX + 1].into_boxed_slice());
        // Never spinning past the deadline, nor at all for a try.
        let spin_until = (timeout != Some(Duration::ZERO)).then(|| {
            let until = now + SPIN;
            deadline.map_or(until, |deadline| deadline.min(until))
        });
        let result = loop {
            if let Some(until) = spin_until
                && Instant::now() < until
            {
                // Spinning: try without waiting, and let a peer on this CPU run meanwhile.
                match recv_parts(self.0.as_fd(), &mut buffer) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::yield_now();
                        continue;
                    }
                    // The end, or an empty message: the hang-up tells them apart.
                    Ok((0, _)) => {
                        break match wait_readable(self.0.as_fd(), Some(Instant::now())) {
                            Ok(Some(true)) => Err(io::ErrorKind::UnexpectedEof.into()),
                            Ok(_) => Err(invalid("a message of a pipe is empty")),
                            Err(e) => Err(e),
                        };
                    }
                    Ok((n, fd)) => {
                        break read_message(&buffer[..n], fd, max, descriptors).map(Some);
                    }
                    Err(e) => break Err(e),
                }
            }
            let hung_up = match wait_readable(self.0.as_fd(), deadline) {
                Ok(Some(hung_up)) => hung_up,
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            };
            match recv_parts(self.0.as_fd(), &mut buffer) {
                // End of file and an empty message both read as nothing: only a hang-up is
                // the end (no message of offspring's is empty).
                Ok((0, _)) if !hung_up => break Err(invalid("a message of a pipe is empty")),
                Ok((n, fd)) => break read_message(&buffer[..n], fd, max, descriptors).map(Some),
                // Another thread took the message it was woken for.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => break Err(e),
            }
        };
        let taken = match result {
            Ok(Some(Message::Inline(range))) => Ok(Some(Received::Message(take(&buffer[range])))),
            Ok(Some(Message::Owned(bytes))) => Ok(Some(Received::Message(take(&bytes)))),
            Ok(Some(Message::Descriptor(tag, fd))) => Ok(Some(Received::Descriptor(tag, fd))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        BUFFER.with(|b| *b.borrow_mut() = Some(buffer));
        taken
    }

    /// Sends `message` on an end set non-blocking ([`set_nonblocking`](Self::set_nonblocking)),
    /// waiting at most until `deadline` while the other end's buffer is full.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] when the buffer stayed full; otherwise as
    /// [`send`](Self::send).
    pub fn send_by(&self, message: &[u8], deadline: Instant) -> io::Result<()> {
        loop {
            match self.send(message) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::sys::wait_writable(self.0.as_fd(), Some(deadline))?;
                }
                other => return other,
            }
        }
    }

    /// Waits until a message (or the end) is there to receive, at most `timeout`; `false`
    /// when the time ran out. Another thread may still take that message first.
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn readable(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now().checked_add(timeout);
        Ok(wait_readable(self.0.as_fd(), deadline)?.is_some())
    }

    /// Ends the channel both ways: receives here and at the other end see its end (once
    /// what was sent before is read), and sends fail.
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn shutdown(&self) -> io::Result<()> {
        // SAFETY: `shutdown` on a descriptor this value owns, with no pointers.
        if unsafe { libc::shutdown(self.0.as_raw_fd(), libc::SHUT_RDWR) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends the descriptor `fd` to the process at the other end, with `tag` to name it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_fd(&self, tag: u64, fd: BorrowedFd<'_>) -> io::Result<()> {
        send_parts(self.0.as_fd(), &[&tag.to_le_bytes()], Some(fd))
    }

    /// Receives a descriptor sent with [`send_fd`](Self::send_fd), and its tag, waiting for
    /// one.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::UnexpectedEof`] when the other end is closed;
    /// [`io::ErrorKind::InvalidData`] when what came is not one tag and one descriptor.
    pub fn recv_fd(&self) -> io::Result<(u64, OwnedFd)> {
        let mut buffer = [0u8; TAG_LEN + 1];
        let (n, fd) = loop {
            let _ = wait_readable(self.0.as_fd(), None)?;
            match recv_parts(self.0.as_fd(), &mut buffer) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match (n, fd) {
            (TAG_LEN, Some(fd)) => {
                let mut tag = [0u8; TAG_LEN];
                tag.copy_from_slice(&buffer[..TAG_LEN]);
                Ok((u64::from_le_bytes(tag), fd))
            }
            _ => Err(invalid(
                "a side channel's message is not a tag and a descriptor",
            )),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What [`Channel::recv_any`] received.
#[derive(Debug)]
pub enum Received<R> {
    /// A message, as its `take` made it.
    Message(R),
    /// A descriptor sent with [`Channel::send_fd`], and its tag.
    Descriptor(u64, OwnedFd),
}

enum Message {
    /// The payload's place in the receive buffer.
    Inline(std::ops::Range<usize>),
    Owned(Vec<u8>),
    Descriptor(u64, OwnedFd),
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// What a received message holds (`n` bytes, maybe a descriptor), checked.
fn read_message(
    bytes: &[u8],
    fd: Option<OwnedFd>,
    max: usize,
    descriptors: bool,
) -> io::Result<Message> {
    let fd = match fd {
        Some(fd) if descriptors && bytes.len() == TAG_LEN => {
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(bytes);
            return Ok(Message::Descriptor(u64::from_le_bytes(tag), fd));
        }
        fd => fd,
    };
    match (bytes.first(), fd) {
        (None, _) => Err(io::ErrorKind::UnexpectedEof.into()),
        (Some(&INLINE), None) if bytes.len() <= INLINE_MAX + 1 => {
            if bytes.len() - 1 > max {
                return Err(invalid("a message is larger than allowed"));
            }
            Ok(Message::Inline(1..bytes.len()))
        }
        (Some(&OUT_OF_LINE), Some(fd)) if bytes.len() == 9 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&bytes[1..]);
            let len = usize::try_from(u64::from_le_bytes(len))
                .ok()
                .filter(|len| *len <= max)
                .ok_or_else(|| invalid("a message is larger than allowed"))?;
            read_memfd(&fd, len).map(Message::Owned)
        }
        _ => Err(invalid("a message of a pipe has a malformed header")),
    }
}

/// Reads the first `len` bytes of the sender's `memfd`. Anything else is refused: only
/// memory-backed files take seals, so a descriptor on a file system that could hang the
/// reader (a stalled network mount) never gets read. A file the sender shrinks meanwhile
/// is malformed, not the end of the pipe.
fn read_memfd(fd: &OwnedFd, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt as _;
    let refused = || invalid("a large message's descriptor is not a memory file of its length");
    // SAFETY: `fcntl` on a descriptor this process owns, with no pointers.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) } < 0 {
        return Err(refused());
    }
    let file = std::fs::File::from(fd.try_clone()?);
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() < len as u64 {
        return Err(refused());
    }
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, 0).map_err(|_| refused())?;
    Ok(bytes)
}

fn memfd_with(message: &[u8]) -> io::Result<OwnedFd> {
    use std::io::Write as _;
    // SAFETY: the name is a valid NUL-terminated string; on success the result is a fresh
    // descriptor nothing else owns.
    let raw = unsafe { libc::memfd_create(c"offspring-message".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `memfd_create` succeeded: `raw` is open and ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    file.write_all(message)?;
    Ok(file.into())
}

/// Waits until `fd` is readable (or closed): whether the peer hung up, or `None` when
/// `deadline` passed first.
fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Option<bool>> {
    Ok(crate::sys::poll_one(fd, libc::POLLIN, deadline)?
        .map(|revents| revents & libc::POLLHUP != 0))
}

/// `sendmsg` of `parts` as one message, with `fd` attached if given; blocking.
fn send_parts(sock: BorrowedFd<'_>, parts: &[&[u8]], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut iov: Vec<libc::iovec> = parts
        .iter()
        .map(|part| libc::iovec {
            iov_base: part.as_ptr().cast_mut().cast(),
            iov_len: part.len(),
        })
        .collect();
    // Room for one descriptor's control message, aligned as `cmsghdr` needs.
    let mut control = [0u64; 4];
    // SAFETY: `msghdr` is plain data, for which all zeroes is a valid value.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iov.as_mut_ptr();
    header.msg_iovlen = iov.len();
    if let Some(fd) = fd {
        // SAFETY: `control` is large enough and aligned for one `cmsghdr` carrying one
        // descriptor (`CMSG_SPACE(4)` is 24 bytes on Linux); the macros only compute
        // addresses inside it, and the header points at it only for this call.
        unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            header.msg_control = control.as_mut_ptr().cast();
            header.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(&raw const header);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
        }
    }
    loop {
        let flags = libc::MSG_NOSIGNAL;
        // SAFETY: `header` points at `iov` (whose slices outlive the call) and, if set, at
        // `control`; both stay alive and unmoved until the call returns.
        let sent = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const header, flags) };
        if sent >= 0 {
            // A message of a seqpacket socket is sent whole or not at all.
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// One `recvmsg` without waiting: how many bytes, and the descriptor that came with them.
/// Descriptors beyond one, and a cut message, are refused (those received are closed).
fn recv_parts(sock: BorrowedFd<'_>, buffer: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // Room for a few descriptors, so that a sender attaching more is seen (and refused)
    // rather than cut.
    let mut control = [0u64; 8];
    // SAFETY: `msghdr` is plain data, for which all zeroes is a valid value.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control);
    let received = loop {
        // SAFETY: `header` points at `iov` (over `buffer`) and `control`, both alive and
        // unmoved for the call; the kernel writes at most their lengths.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &raw mut header,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `header.msg_control` with `msg_controllen` bytes of control
    // messages; the macros walk them inside that length, and each SCM_RIGHTS payload holds
    // whole descriptors that are now this process's to own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..payload / std::mem::size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const header, cmsg);
        }
    }
    if header.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 || fds.len() > 1 {
        return Err(invalid("a message of a pipe was larger than it may be"));
    }
    Ok((received, fds.pop()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(channel: &Channel, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        channel.recv(timeout, usize::MAX, <[u8]>::to_vec)
    }

    #[test]
    fn messages_small_and_large_arrive_whole_and_in_order() {
        let (a, b) = Channel::pair().expect("pair");
        let sizes = [0usize, 1, 100, INLINE_MAX, INLINE_MAX + 1, 3 << 20];
        let sender = std::thread::spawn(move || {
            for (i, len) in sizes.iter().enumerate() {
                a.send(&vec![i as u8; *len]).expect("send");
            }
            a
        });
        for (i, len) in sizes.iter().enumerate() {
            let got = take(&b, None).expect("recv").expect("a message");
            assert_eq!(got, vec![i as u8; *len]);
        }
        drop(sender.join().expect("sender"));
        let end = take(&b, None).expect_err("closed");
        assert_eq!(end.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_try_and_a_timeout_come_back_empty() {
        let (_a, b) = Channel::pair().expect("pair");
        assert!(take(&b, Some(Duration::ZERO)).expect("try").is_none());
        let started = Instant::now();
        assert!(
            take(&b, Some(Duration::from_millis(30)))
                .expect("wait")
                .is_none()
        );
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_closed_end_is_a_broken_pipe_for_the_sender() {
        let (a, b) = Channel::pair().expect("pair");
        drop(b);
        assert_eq!(
            a.send(b"x").expect_err("closed").kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[test]
    fn over_the_limit_and_malformed_messages_are_refused() {
        let (a, b) = Channel::pair().expect("pair");
        a.send(&[1, 2, 3]).expect("send");
        let refused = b.recv(None, 2, <[u8]>::to_vec).expect_err("too large");
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        a.send(&vec![5; INLINE_MAX + 10]).expect("send");
        let refused = b
            .recv(None, INLINE_MAX, <[u8]>::to_vec)
            .expect_err("too large");
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        // Raw messages another process could write: an unknown tag, an out-of-line header
        // without its descriptor, one whose file is shorter than it says, a descriptor that
        // is not a file.
        let raw = |parts: &[&[u8]], fd: Option<BorrowedFd<'_>>| {
            send_parts(a.0.as_fd(), parts, fd).expect("raw send");
        };
        raw(&[&[7, 1, 2]], None);
        raw(&[&[OUT_OF_LINE], &10u64.to_le_bytes()], None);
        let short = memfd_with(&[1, 2, 3]).expect("memfd");
        raw(&[&[OUT_OF_LINE], &10u64.to_le_bytes()], Some(short.as_fd()));
        let (not_a_file, _other) = Channel::pair().expect("pair");
        raw(
            &[&[OUT_OF_LINE], &1u64.to_le_bytes()],
            Some(not_a_file.0.as_fd()),
        );
        raw(&[&[INLINE]], Some(short.as_fd()));
        raw(&[], None);
        let file = tempfile_fd();
        raw(&[&[OUT_OF_LINE], &1u64.to_le_bytes()], Some(file.as_fd()));
        for _ in 0..7 {
            let refused = take(&b, None).expect_err("malformed");
            assert_eq!(refused.kind(), io::ErrorKind::InvalidData, "{refused}");
        }
        // And the channel still works.
        a.send(b"fine").expect("send");
        assert_eq!(take(&b, None).expect("recv"), Some(b"fine".to_vec()));
    }

    /// A regular file that is not a memory file, already unlinked.
    fn tempfile_fd() -> OwnedFd {
        let path = std::env::temp_dir().join(format!("offspring-channel-{}", std::process::id()));
        std::fs::write(&path, [1u8; 16]).expect("temp file");
        let file = std::fs::File::open(&path).expect("open");
        let _ = std::fs::remove_file(&path);
        file.into()
    }

    #[test]
    fn a_huge_timeout_waits_and_does_not_overflow() {
        let (a, b) = Channel::pair().expect("pair");
        a.send(b"now").expect("send");
        let got = b
            .recv(Some(Duration::MAX), usize::MAX, <[u8]>::to_vec)
            .expect("recv");
        assert_eq!(got, Some(b"now".to_vec()));
        a.send(b"then").expect("send");
        assert!(b.readable(Duration::MAX).expect("readable"));
    }

    #[test]
    fn a_descriptor_crosses_a_side_channel_with_its_tag() {
        let (side_parent, side_child) = Channel::pair().expect("pair");
        let (x, y) = Channel::pair().expect("pair");
        side_parent.send_fd(42, y.0.as_fd()).expect("send fd");
        drop(y);
        let (tag, fd) = side_child.recv_fd().expect("recv fd");
        assert_eq!(tag, 42);
        let y = Channel::from_fd(fd);
        x.send(b"through").expect("send");
        assert_eq!(take(&y, None).expect("recv"), Some(b"through".to_vec()));
        drop(side_parent);
        assert_eq!(
            side_child.recv_fd().expect_err("closed").kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn two_senders_on_one_end_never_interleave() {
        let (a, b) = Channel::pair().expect("pair");
        let a = std::sync::Arc::new(a);
        let senders: Vec<_> = (0..2u8)
            .map(|who| {
                let a = std::sync::Arc::clone(&a);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        a.send(&vec![who; 20_000]).expect("send");
                    }
                })
            })
            .collect();
        for _ in 0..400 {
            let got = take(&b, None).expect("recv").expect("message");
            assert_eq!(got.len(), 20_000);
            assert!(got.iter().all(|byte| *byte == got[0]));
        }
        for sender in senders {
            sender.join().expect("sender");
        }
    }
}
