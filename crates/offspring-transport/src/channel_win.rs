//! Direct channels between two processes of one machine (Windows): the two ends of a
//! message-mode named pipe, one message per `send`, and an end duplicated into another
//! process by its parent.
//!
//! A pipe made by `offspring::pipe` is one such pair. Every process that holds an end gets its
//! own handle of that end (the parent duplicates it into a worker with
//! [`Channel::duplicate_into`] when the worker first uses it), and the two processes then talk
//! without the parent in between.
//!
//! - **Boundaries.** The pipe is in message mode: each `send` is one `WriteFile`, which
//!   arrives as one message, and each `recv` takes one whole message (a message longer than
//!   the buffer is read on after `ERROR_MORE_DATA`), so an end held by two processes (or two
//!   threads) at once never interleaves bytes (but see below for a long message that two
//!   processes read at once). A message larger than the pipe's 64 KiB buffer is written
//!   whole only as its reader takes it, so its `send` waits for a reader.
//! - **Overlapped.** Both ends are opened for overlapped i/o, so a thread waiting in `recv`
//!   never holds up a `send` on the same end (a synchronous handle serializes every
//!   operation on it), and a timeout cancels the read it started (`CancelIoEx`); a read
//!   that completed as it was cancelled still delivers its message.
//! - **End of file.** A `recv` sees the end (`ERROR_BROKEN_PIPE`) once every handle of the
//!   other end is closed, in every process, and the messages sent before are read.
//! - **Untrusted.** What arrives was written by another process: a message whose header or
//!   length does not make sense is [`io::ErrorKind::InvalidData`], never a wrong value.
//!
//! Every message starts with a byte and its payload's length, so that none is empty (an empty
//! message could not be told from an empty read) and a cut one is refused. One thread of a
//! process reads an end at a time. Two *processes* reading one end at the same moment can
//! split a message over 32 KiB between them (the pipe gives the rest of it to the next read
//! of any holder): both refuse what they got, so such a message is lost with an error, never
//! taken as a wrong value.

use std::io;
use std::os::windows::io::{
    AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle, RawHandle,
};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    DUPLICATE_SAME_ACCESS, DuplicateHandle, ERROR_BROKEN_PIPE, ERROR_IO_PENDING, ERROR_MORE_DATA,
    ERROR_NO_DATA, ERROR_OPERATION_ABORTED, ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED,
    GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, FILE_TYPE_PIPE, GetFileType,
    OPEN_EXISTING, PIPE_ACCESS_DUPLEX, ReadFile, WriteFile,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_MESSAGE, PIPE_WAIT, PeekNamedPipe, SetNamedPipeHandleState,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentProcess, INFINITE, WaitForSingleObject,
};

/// The largest message read without asking the pipe how long it is first.
pub const INLINE_MAX: usize = 32 * 1024;

/// What every message starts with.
const MESSAGE: u8 = 0;

/// The pipe's buffer, each way. A message larger than this still goes whole: its
/// `WriteFile` waits until the reader has taken it.
const BUFFER: u32 = 64 * 1024;

/// One end of a message-mode pipe (see the module docs), and the lock its readers in this
/// process take.
#[derive(Debug)]
pub struct Channel(OwnedHandle, std::sync::Mutex<()>);

/// What every message starts with: [`MESSAGE`], then its payload's length.
const HEADER: usize = 1 + 8;

/// The event an overlapped operation signals when it ends. Each thread keeps one (see
/// [`with_event`]): `ReadFile`, `WriteFile` and `ConnectNamedPipe` reset it as they start, and
/// a thread has one operation of its own in flight at a time.
struct Event(OwnedHandle);

thread_local! {
    static EVENT: std::cell::RefCell<Option<Event>> = const { std::cell::RefCell::new(None) };
}

/// Runs `operation` with this thread's event, made on first use.
fn with_event<R>(operation: impl FnOnce(&Event) -> io::Result<R>) -> io::Result<R> {
    let event = match EVENT.with(|cell| cell.borrow_mut().take()) {
        Some(event) => event,
        None => Event::new()?,
    };
    let result = operation(&event);
    EVENT.with(|cell| *cell.borrow_mut() = Some(event));
    result
}

impl Event {
    fn new() -> io::Result<Self> {
        // SAFETY: an unnamed manual-reset event with default security; checked for null.
        let raw = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` was just created for us and nothing else owns it.
        Ok(Self(unsafe { OwnedHandle::from_raw_handle(raw.cast()) }))
    }

    fn raw(&self) -> HANDLE {
        self.0.as_raw_handle().cast()
    }
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn is(error: &io::Error, code: u32) -> bool {
    error.raw_os_error() == i32::try_from(code).ok()
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The end of the pipe, as `recv` and `send` report it.
fn closed(error: io::Error) -> io::Error {
    if is(&error, ERROR_BROKEN_PIPE) || is(&error, ERROR_PIPE_NOT_CONNECTED) {
        io::ErrorKind::UnexpectedEof.into()
    } else if is(&error, ERROR_NO_DATA) {
        io::ErrorKind::BrokenPipe.into()
    } else {
        error
    }
}

impl Channel {
    /// A connected pair: the two ends of a fresh named pipe with a random name, neither
    /// inheritable.
    ///
    /// # Errors
    ///
    /// The OS's, when it cannot make the pipe.
    pub fn pair() -> io::Result<(Self, Self)> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let tag: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!(r"\\.\pipe\offspring-channel-{}-{tag}", std::process::id());
        let wide: Vec<u16> = name.encode_utf16().chain(Some(0)).collect();
        // SAFETY: `wide` is a NUL-terminated name that outlives the call; default security
        // (not inheritable). The result is checked.
        let server = unsafe {
            CreateNamedPipeW(
                wide.as_ptr(),
                PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE | FILE_FLAG_OVERLAPPED,
                PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                1,
                BUFFER,
                BUFFER,
                0,
                std::ptr::null(),
            )
        };
        if server == INVALID_HANDLE_VALUE {
            return Err(last_error());
        }
        // SAFETY: a handle just returned to us, owned by nobody else.
        let server = Self::own(unsafe { OwnedHandle::from_raw_handle(server.cast()) });
        // SAFETY: as above; the pipe has one instance, which this open takes (a stranger
        // who found the random name first makes it fail, and the pair is not made).
        let client = unsafe {
            CreateFileW(
                wide.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                0,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_OVERLAPPED,
                std::ptr::null_mut(),
            )
        };
        if client == INVALID_HANDLE_VALUE {
            return Err(last_error());
        }
        // SAFETY: a handle just returned to us, owned by nobody else.
        let client = Self::own(unsafe { OwnedHandle::from_raw_handle(client.cast()) });
        let mode = PIPE_READMODE_MESSAGE;
        // SAFETY: `mode` outlives the call; the other settings stay as they are.
        if unsafe {
            SetNamedPipeHandleState(client.raw(), &mode, std::ptr::null(), std::ptr::null())
        } == 0
        {
            return Err(last_error());
        }
        server.connected()?;
        Ok((server, client))
    }

    /// Waits for the server end's client, which has opened it already.
    fn connected(&self) -> io::Result<()> {
        with_event(|event| self.connect_with(event))
    }

    fn connect_with(&self, event: &Event) -> io::Result<()> {
        let mut overlapped = OVERLAPPED {
            hEvent: event.raw(),
            ..OVERLAPPED::default()
        };
        // SAFETY: `overlapped` and its event outlive the operation: it is waited for below
        // before either is dropped.
        if unsafe { ConnectNamedPipe(self.raw(), &mut overlapped) } != 0 {
            return Ok(());
        }
        let error = last_error();
        if is(&error, ERROR_PIPE_CONNECTED) {
            return Ok(());
        }
        if !is(&error, ERROR_IO_PENDING) {
            return Err(error);
        }
        let mut n = 0;
        // SAFETY: waits for the operation started above on the same `overlapped`.
        if unsafe { GetOverlappedResult(self.raw(), &overlapped, &mut n, 1) } == 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Takes the handle of an end that the parent duplicated into this process (see
    /// [`duplicate_into`](Self::duplicate_into)); refused unless it is a pipe.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when `raw` is not a pipe handle.
    pub fn inherited(raw: u64) -> io::Result<Self> {
        let raw = usize::try_from(raw)
            .ok()
            .filter(|raw| *raw != 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a bad handle"))?;
        // SAFETY: the parent duplicated this handle into this process for the caller alone,
        // and nothing else here uses it: we take ownership.
        let owned = unsafe { OwnedHandle::from_raw_handle(raw as HANDLE) };
        // SAFETY: asks the type of a handle we own.
        if unsafe { GetFileType(owned.as_raw_handle().cast()) } != FILE_TYPE_PIPE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the handle is not a pipe",
            ));
        }
        Ok(Self::own(owned))
    }

    /// Duplicates this end into `process` (a worker's process handle, opened with the right
    /// to duplicate into it); the value of the handle there, which the worker takes with
    /// [`inherited`](Self::inherited).
    ///
    /// # Errors
    ///
    /// What `DuplicateHandle` says.
    pub fn duplicate_into(&self, process: BorrowedHandle<'_>) -> io::Result<u64> {
        let mut target: HANDLE = std::ptr::null_mut();
        // SAFETY: duplicating a handle we own into a process handle the caller holds; the
        // out-pointer is a local. The result is checked.
        let ok = unsafe {
            DuplicateHandle(
                GetCurrentProcess(),
                self.raw(),
                process.as_raw_handle().cast(),
                &mut target,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        Ok(target as usize as u64)
    }

    fn raw(&self) -> HANDLE {
        self.0.as_raw_handle().cast()
    }

    fn own(handle: OwnedHandle) -> Self {
        Self(handle, std::sync::Mutex::new(()))
    }

    /// Sends `message` as one message, waiting while the other end's buffer is full.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::BrokenPipe`] when the other end is closed; the OS's otherwise.
    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        let mut whole = Vec::with_capacity(message.len() + HEADER);
        whole.push(MESSAGE);
        whole.extend_from_slice(&(message.len() as u64).to_le_bytes());
        whole.extend_from_slice(message);
        let len = u32::try_from(whole.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a message over 4 GiB"))?;
        with_event(|event| self.write_with(event, &whole, len))
    }

    fn write_with(&self, event: &Event, whole: &[u8], len: u32) -> io::Result<()> {
        let mut overlapped = OVERLAPPED {
            hEvent: event.raw(),
            ..OVERLAPPED::default()
        };
        // SAFETY: `whole`, `overlapped` and its event outlive the write: it is waited for
        // below before any of them is dropped.
        let done = unsafe {
            WriteFile(
                self.raw(),
                whole.as_ptr(),
                len,
                std::ptr::null_mut(),
                &mut overlapped,
            )
        };
        if done == 0 {
            let error = last_error();
            if !is(&error, ERROR_IO_PENDING) {
                return Err(broken(error));
            }
        }
        let mut n = 0;
        // SAFETY: waits for the write started above on the same `overlapped`.
        if unsafe { GetOverlappedResult(self.raw(), &overlapped, &mut n, 1) } == 0 {
            return Err(broken(last_error()));
        }
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "a message was written in part",
            ));
        }
        Ok(())
    }

    /// Waits for the next message, at most `timeout` (`None`: for ever; zero: a try), and
    /// gives it to `take`. `Ok(None)` when the time ran out; a message over `max` bytes is
    /// refused (and read to its end, so the next one can be read).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::UnexpectedEof`] when the other end is closed and nothing is left;
    /// [`io::ErrorKind::InvalidData`] for a message that makes no sense; the OS's otherwise.
    pub fn recv<R>(
        &self,
        timeout: Option<Duration>,
        max: usize,
        take: impl FnOnce(&[u8]) -> R,
    ) -> io::Result<Option<R>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // One reader of this process at a time: a long message is read in two parts, and
        // another thread's read between them would take its second.
        let _reading = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut buffer = vec![0u8; INLINE_MAX + HEADER];
        let first = match self.read(&mut buffer, deadline)? {
            Some(first) => first,
            None => return Ok(None),
        };
        let message = match first {
            Read::Whole(n) => {
                buffer.truncate(n);
                buffer
            }
            Read::More(n) => {
                // The rest of a long message: the pipe says how long it is.
                let left = self.left_in_message()?;
                let total = n.saturating_add(left);
                if total.saturating_sub(HEADER) > max {
                    self.discard(left)?;
                    return Err(invalid("a message is larger than allowed"));
                }
                buffer.resize(total, 0);
                match self.read(&mut buffer[n..], None)? {
                    Some(Read::Whole(m)) if n + m == total => buffer,
                    _ => return Err(invalid("a message of a pipe was cut")),
                }
            }
        };
        // The length is checked too: a message whose two parts another process's read
        // split (it took the second) is refused on both sides, never taken as a value.
        let (header, payload) = message
            .split_at_checked(HEADER)
            .ok_or_else(|| invalid("a message of a pipe has a malformed header"))?;
        let mut len = [0u8; 8];
        len.copy_from_slice(&header[1..]);
        if header[0] != MESSAGE || u64::from_le_bytes(len) != payload.len() as u64 {
            return Err(invalid("a message of a pipe has a malformed header"));
        }
        if payload.len() > max {
            return Err(invalid("a message is larger than allowed"));
        }
        Ok(Some(take(payload)))
    }

    /// Waits until a message (or the end) is there to receive, at most `timeout`; `false`
    /// when the time ran out. Another thread or process may still take that message first.
    /// It looks every millisecond (a pipe has nothing to wait on that does not take).
    ///
    /// # Errors
    ///
    /// The OS's.
    pub fn readable(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let mut available = 0u32;
            // SAFETY: only the counts are asked for; the out-pointer is a local.
            let ok = unsafe {
                PeekNamedPipe(
                    self.raw(),
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null_mut(),
                    &mut available,
                    std::ptr::null_mut(),
                )
            };
            // The end is there to receive too.
            if ok == 0 || available > 0 {
                return Ok(true);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// How many bytes of the message being read are still in the pipe.
    fn left_in_message(&self) -> io::Result<usize> {
        let mut left = 0u32;
        // SAFETY: only the counts are asked for; the out-pointer is a local.
        let ok = unsafe {
            PeekNamedPipe(
                self.raw(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut left,
            )
        };
        if ok == 0 {
            return Err(closed(last_error()));
        }
        Ok(left as usize)
    }

    /// Reads and drops the `left` bytes of a refused message.
    fn discard(&self, mut left: usize) -> io::Result<()> {
        let mut sink = vec![0u8; INLINE_MAX.min(left.max(1))];
        while left > 0 {
            let want = sink.len().min(left);
            match self.read(&mut sink[..want], None)? {
                Some(Read::Whole(n) | Read::More(n)) if n > 0 => left -= n.min(left),
                _ => break,
            }
        }
        Ok(())
    }

    /// One overlapped read into `buffer`, waiting until `deadline` (`None`: for ever); a
    /// read still pending then is cancelled (`Ok(None)`), unless it completed meanwhile.
    fn read(&self, buffer: &mut [u8], deadline: Option<Instant>) -> io::Result<Option<Read>> {
        with_event(|event| self.read_with(event, buffer, deadline))
    }

    fn read_with(
        &self,
        event: &Event,
        buffer: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<Option<Read>> {
        let len = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        let mut overlapped = OVERLAPPED {
            hEvent: event.raw(),
            ..OVERLAPPED::default()
        };
        // SAFETY: `buffer`, `overlapped` and its event outlive the read: it completes, or is
        // cancelled and waited for, below, before any of them is dropped.
        let done = unsafe {
            ReadFile(
                self.raw(),
                buffer.as_mut_ptr(),
                len,
                std::ptr::null_mut(),
                &mut overlapped,
            )
        };
        if done == 0 {
            let error = last_error();
            if is(&error, ERROR_MORE_DATA) {
                return Ok(Some(Read::More(buffer.len())));
            }
            if !is(&error, ERROR_IO_PENDING) {
                return Err(closed(error));
            }
            let wait_ms = match deadline {
                None => INFINITE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    u32::try_from(left.as_micros().div_ceil(1000))
                        .unwrap_or(INFINITE - 1)
                        .min(INFINITE - 1)
                }
            };
            // SAFETY: waits on the event of the read started above.
            let waited = unsafe { WaitForSingleObject(event.raw(), wait_ms) };
            if waited == WAIT_TIMEOUT {
                // SAFETY: cancels only the read started above; it is waited for below.
                unsafe { CancelIoEx(self.raw(), &overlapped) };
            } else if waited != WAIT_OBJECT_0 {
                let error = last_error();
                // SAFETY: as above: the read must end before its buffer goes.
                unsafe { CancelIoEx(self.raw(), &overlapped) };
                let mut n = 0;
                // SAFETY: waits for the read started above on the same `overlapped`.
                unsafe { GetOverlappedResult(self.raw(), &overlapped, &mut n, 1) };
                return Err(error);
            }
        }
        let mut n = 0;
        // SAFETY: waits for the read started above (done, or cancelled) on the same
        // `overlapped`.
        if unsafe { GetOverlappedResult(self.raw(), &overlapped, &mut n, 1) } == 0 {
            let error = last_error();
            if is(&error, ERROR_OPERATION_ABORTED) {
                return Ok(None);
            }
            if is(&error, ERROR_MORE_DATA) {
                return Ok(Some(Read::More(n as usize)));
            }
            return Err(closed(error));
        }
        Ok(Some(Read::Whole(n as usize)))
    }
}

/// What one read gave: a whole message of `n` bytes, or the first `n` of a longer one.
enum Read {
    Whole(usize),
    More(usize),
}

/// A write's error as `send` reports it: the other end closed is a broken pipe.
fn broken(error: io::Error) -> io::Error {
    if is(&error, ERROR_NO_DATA)
        || is(&error, ERROR_BROKEN_PIPE)
        || is(&error, ERROR_PIPE_NOT_CONNECTED)
    {
        io::ErrorKind::BrokenPipe.into()
    } else {
        error
    }
}

impl AsHandle for Channel {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.0.as_handle()
    }
}

/// A duplicate of `process` (a child's process handle, which its owner may close), for
/// this process to keep.
///
/// # Errors
///
/// What `DuplicateHandle` says (a handle that is not open is refused there).
pub fn keep_process(process: RawHandle) -> io::Result<OwnedHandle> {
    let mut target: HANDLE = std::ptr::null_mut();
    // SAFETY: duplicating a handle value into this process reads nothing through it (a
    // value that is not an open handle makes the call fail); the out-pointer is a local.
    // The result is checked.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            process.cast(),
            GetCurrentProcess(),
            &mut target,
            0,
            0,
            DUPLICATE_SAME_ACCESS,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    // SAFETY: a handle just duplicated for us alone.
    Ok(unsafe { OwnedHandle::from_raw_handle(target.cast()) })
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
            for (i, size) in sizes.iter().enumerate() {
                a.send(&vec![i as u8; *size]).expect("send");
            }
            a
        });
        for (i, size) in sizes.iter().enumerate() {
            let got = take(&b, None).expect("recv").expect("a message");
            assert_eq!(got, vec![i as u8; *size], "message {i}");
        }
        drop(sender.join().expect("sender"));
        assert_eq!(
            take(&b, None).map_err(|e| e.kind()),
            Err(io::ErrorKind::UnexpectedEof)
        );
    }

    #[test]
    fn a_try_and_a_timeout_come_back_empty_and_a_later_message_still_arrives() {
        let (a, b) = Channel::pair().expect("pair");
        assert!(take(&b, Some(Duration::ZERO)).expect("try").is_none());
        let started = Instant::now();
        assert!(
            take(&b, Some(Duration::from_millis(50)))
                .expect("wait")
                .is_none()
        );
        assert!(started.elapsed() >= Duration::from_millis(40));
        a.send(b"after").expect("send");
        assert_eq!(take(&b, None).expect("recv"), Some(b"after".to_vec()));
    }

    #[test]
    fn a_send_while_another_thread_waits_to_receive_goes_through() {
        let (a, b) = Channel::pair().expect("pair");
        let a = std::sync::Arc::new(a);
        let waiter = {
            let a = std::sync::Arc::clone(&a);
            std::thread::spawn(move || take(&a, None))
        };
        // `a` is also sending while its other thread waits on it.
        a.send(b"ping").expect("send");
        assert_eq!(take(&b, None).expect("recv"), Some(b"ping".to_vec()));
        b.send(b"pong").expect("send back");
        assert_eq!(
            waiter.join().expect("waiter").expect("recv"),
            Some(b"pong".to_vec())
        );
    }

    #[test]
    fn over_the_limit_is_refused_and_the_next_message_reads() {
        let (a, b) = Channel::pair().expect("pair");
        // A message larger than the pipe's buffer waits for its reader: sent from another
        // thread.
        let sender = std::thread::spawn(move || {
            a.send(&vec![1u8; 100_000]).expect("send");
            a.send(b"next").expect("send");
            a
        });
        let refused = b.recv(None, 1000, <[u8]>::to_vec).map_err(|e| e.kind());
        assert_eq!(refused, Err(io::ErrorKind::InvalidData));
        assert_eq!(take(&b, None).expect("recv"), Some(b"next".to_vec()));
        drop(sender.join().expect("sender"));
        assert_eq!(
            b.send(b"x").map_err(|e| e.kind()),
            Err(io::ErrorKind::BrokenPipe)
        );
    }
}
