//! Where the parent listens and how a worker reaches it: fresh random local socket names.
//!
//! - Linux: a name in the abstract namespace (nothing on disk to clean up or race on).
//! - macOS: a socket file inside a fresh private `0700` directory, with a path short enough
//!   for `sun_path` (104 bytes); the directory is removed when the listener drops. Linux uses
//!   the same path when `OFFSPRING_SOCKET_KIND=fs` is set, so the code is exercised here.
//! - Windows: a named pipe.

use std::path::PathBuf;

use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::{GenericFilePath, GenericNamespaced, ListenerOptions, Name};
use offspring_wire::{MAX_FRAME, PRE_AUTH_MAX_FRAME};

use crate::{DirectWriter, FrameReader, FrameWriter, TransportError, sys};

/// Selects the filesystem socket kind on Linux (it is the only kind on macOS).
pub const ENV_SOCKET_KIND: &str = "OFFSPRING_SOCKET_KIND";

/// Bytes buffered on the read side of an authenticated connection.
const READ_BUFFER: usize = 64 * 1024;

/// The address of a parent's listener, as handed to its workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A name in the OS's socket namespace (Linux abstract namespace, Windows named pipe).
    Namespaced(String),
    /// A socket file.
    Path(PathBuf),
    /// A TCP address, `host:port`, for workers on other machines; its connections are
    /// sealed after the handshake (see [`crate::seal`]).
    Tcp(String),
}

impl Endpoint {
    /// The form carried in the worker's environment.
    pub fn to_env(&self) -> String {
        match self {
            Self::Namespaced(name) => format!("ns:{name}"),
            Self::Path(path) => format!("fs:{}", path.display()),
            Self::Tcp(address) => format!("tcp:{address}"),
        }
    }

    /// Parses the form made by [`Endpoint::to_env`].
    ///
    /// # Errors
    ///
    /// [`TransportError::BadEnv`] for anything else.
    pub fn from_env(text: &str) -> Result<Self, TransportError> {
        if let Some(name) = text.strip_prefix("ns:") {
            Ok(Self::Namespaced(name.to_owned()))
        } else if let Some(path) = text.strip_prefix("fs:") {
            Ok(Self::Path(PathBuf::from(path)))
        } else if let Some(address) = text.strip_prefix("tcp:") {
            Ok(Self::Tcp(address.to_owned()))
        } else {
            Err(TransportError::BadEnv(format!("endpoint {text:?}")))
        }
    }

    fn name(&self) -> std::io::Result<Name<'_>> {
        match self {
            Self::Namespaced(name) => name.as_str().to_ns_name::<GenericNamespaced>(),
            Self::Path(path) => path.as_path().to_fs_name::<GenericFilePath>(),
            Self::Tcp(address) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{address} is a TCP address, not a local socket"),
            )),
        }
    }
}

/// An accepted or dialled connection, before or after the handshake.
#[derive(Debug)]
pub struct Conn {
    /// Incoming frames.
    pub reader: FrameReader,
    /// Outgoing frames.
    pub writer: FrameWriter,
    /// The peer's pid as the OS reports it, where it does.
    pub peer_pid: Option<u32>,
    /// A direct write side, on the dialling side on Unix (see [`Conn::take_direct_writer`]).
    direct: Option<DirectWriter>,
    /// Whether the connection is over TCP: sealed after the handshake, and without the
    /// local lifelines (peer pid, parent-death signal), so kept alive by heartbeats.
    remote: bool,
}

impl Conn {
    fn from_stream(stream: LocalSocketStream, max: u32, direct: bool) -> Self {
        let direct = if direct { direct_writer(&stream) } else { None };
        let peer_pid = stream
            .peer_creds()
            .ok()
            .and_then(|creds| creds.pid())
            .and_then(|pid| u32::try_from(i64::from(pid)).ok());
        #[cfg(target_vendor = "apple")]
        let peer_pid = peer_pid.or_else(|| apple_peer_pid(&stream));
        let (read, write) = tokio::io::split(stream);
        // Not buffered until the peer has authenticated: the handshake is three small frames,
        // and a stranger then costs no 64 KiB buffer while it waits to be dropped.
        Self {
            reader: FrameReader::new(Box::new(read), max),
            writer: FrameWriter::new(Box::new(write)),
            peer_pid,
            direct,
            remote: false,
        }
    }

    fn from_tcp(stream: tokio::net::TcpStream, max: u32) -> Self {
        // Frames are written whole; waiting to merge small ones would only add latency.
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(TCP_KEEPALIVE)
            .with_interval(TCP_KEEPALIVE);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let (read, write) = stream.into_split();
        Self {
            reader: FrameReader::new(Box::new(Watchdog::new(read)), max),
            writer: FrameWriter::new(Box::new(write)),
            peer_pid: None,
            direct: None,
            remote: true,
        }
    }

    /// Whether this connection crosses a network (TCP): see [`Endpoint::Tcp`].
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Seals both directions from now on (after the handshake's proofs).
    pub fn seal(&mut self, sealer: crate::seal::Sealer, opener: crate::seal::Opener) {
        self.writer.seal(sealer);
        self.reader.seal(opener);
    }

    /// Takes the connection's [`DirectWriter`], a second way to write to the same socket
    /// from a thread outside the runtime. Only a connection made by [`connect`] on Unix has
    /// one; `None` everywhere else (and once taken).
    pub fn take_direct_writer(&mut self) -> Option<DirectWriter> {
        self.direct.take()
    }

    /// Raises the frame cap after the peer has authenticated, and starts buffering reads.
    pub fn authenticated(&mut self) {
        self.reader.set_max(MAX_FRAME);
        self.reader.buffer(READ_BUFFER);
    }
}

/// The peer's pid from `LOCAL_PEERPID` (the credentials macOS reports carry none).
#[cfg(target_vendor = "apple")]
fn apple_peer_pid(stream: &LocalSocketStream) -> Option<u32> {
    use std::os::fd::{AsFd, AsRawFd};
    let LocalSocketStream::UdSocket(inner) = stream;
    let fd = inner.as_fd().as_raw_fd();
    let mut pid: libc::pid_t = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::pid_t>()).ok()?;
    // SAFETY: `fd` is a live socket borrowed from `stream` for the call; the option value
    // pointer and length describe `pid`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            std::ptr::from_mut(&mut pid).cast(),
            &mut len,
        )
    };
    if rc == 0 && pid > 0 {
        u32::try_from(pid).ok()
    } else {
        None
    }
}

/// TCP keepalive probes start after this much silence, and repeat this often: a second
/// line behind the heartbeats, which bound the silence a peer may keep.
const TCP_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug)]
enum Inner {
    Local(LocalSocketListener),
    Tcp(tokio::net::TcpListener),
}

/// The parent's listener: a local socket on a fresh random endpoint, or a TCP port.
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
    endpoint: Endpoint,
    private_dir: Option<PathBuf>,
}

impl Listener {
    /// Binds a fresh random endpoint. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`TransportError::Io`] when the OS refuses the socket or the private directory.
    pub fn bind() -> Result<Self, TransportError> {
        let token = crate::auth::random_hex(8).map_err(TransportError::io("read random bytes"))?;
        let use_path = cfg!(target_vendor = "apple")
            || std::env::var(ENV_SOCKET_KIND).is_ok_and(|kind| kind == "fs");
        let (endpoint, private_dir) = if use_path {
            let dir = sys::private_dir(&token).map_err(TransportError::io("create socket dir"))?;
            sys::remove_at_exit(dir.clone());
            (Endpoint::Path(dir.join("s")), Some(dir))
        } else {
            let name = format!("offspring-{}-{token}", std::process::id());
            (Endpoint::Namespaced(name), None)
        };
        let name = endpoint
            .name()
            .map_err(TransportError::io("name the socket"))?;
        let inner = ListenerOptions::new()
            .name(name)
            .create_tokio()
            .map_err(TransportError::io("bind the socket"))?;
        Ok(Self {
            inner: Inner::Local(inner),
            endpoint,
            private_dir,
        })
    }

    /// Listens on TCP at `bind` (port 0: any free one). Workers are told to dial
    /// `advertise:port`: a name or address of this host that they can reach. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`TransportError::Io`] when the address cannot be bound.
    pub async fn bind_tcp(
        bind: std::net::SocketAddr,
        advertise: &str,
    ) -> Result<Self, TransportError> {
        let inner = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(TransportError::io("listen on TCP"))?;
        let port = inner
            .local_addr()
            .map_err(TransportError::io("read the TCP port"))?
            .port();
        let host = if advertise.contains(':') && !advertise.starts_with('[') {
            format!("[{advertise}]")
        } else {
            advertise.to_owned()
        };
        Ok(Self {
            inner: Inner::Tcp(inner),
            endpoint: Endpoint::Tcp(format!("{host}:{port}")),
            private_dir: None,
        })
    }

    /// Where workers reach this listener.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Accepts the next connection, capped at the pre-authentication frame size.
    ///
    /// # Errors
    ///
    /// [`TransportError::Io`] when accepting fails.
    pub async fn accept(&self) -> Result<Conn, TransportError> {
        match &self.inner {
            Inner::Local(inner) => {
                let stream = inner
                    .accept()
                    .await
                    .map_err(TransportError::io("accept a connection"))?;
                Ok(Conn::from_stream(stream, PRE_AUTH_MAX_FRAME, false))
            }
            Inner::Tcp(inner) => {
                let (stream, _) = inner
                    .accept()
                    .await
                    .map_err(TransportError::io("accept a connection"))?;
                Ok(Conn::from_tcp(stream, PRE_AUTH_MAX_FRAME))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(dir) = &self.private_dir {
            // Best effort: a leftover empty 0700 directory in the temp dir is harmless.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Dials a parent's endpoint. Must be called inside a tokio runtime.
///
/// # Errors
///
/// [`TransportError::Io`] when the endpoint cannot be reached.
pub async fn connect(endpoint: &Endpoint) -> Result<Conn, TransportError> {
    if let Endpoint::Tcp(address) = endpoint {
        let stream = tokio::net::TcpStream::connect(address.as_str())
            .await
            .map_err(TransportError::io("connect to the parent over TCP"))?;
        return Ok(Conn::from_tcp(stream, PRE_AUTH_MAX_FRAME));
    }
    let name = endpoint
        .name()
        .map_err(TransportError::io("name the socket"))?;
    let stream = LocalSocketStream::connect(name)
        .await
        .map_err(TransportError::io("connect to the parent"))?;
    Ok(Conn::from_stream(stream, PRE_AUTH_MAX_FRAME, true))
}

/// A duplicate of the socket's descriptor, for writes that bypass the runtime. No `unsafe`:
/// the descriptor is borrowed from the stream and duplicated into an owned one.
#[cfg(unix)]
fn direct_writer(stream: &LocalSocketStream) -> Option<DirectWriter> {
    use std::os::fd::AsFd as _;
    let LocalSocketStream::UdSocket(socket) = stream;
    socket
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(DirectWriter::new)
}

#[cfg(not(unix))]
fn direct_writer(_stream: &LocalSocketStream) -> Option<DirectWriter> {
    None
}

/// A TCP connection's read half that fails with [`std::io::ErrorKind::TimedOut`] once the
/// peer sent nothing at all for [`offspring_wire::SILENCE_LIMIT`]: heartbeats keep a live
/// peer talking, so silence means its host or the network is gone. Any byte resets the
/// clock, so a large frame that takes long to arrive is not silence.
struct Watchdog<R> {
    inner: R,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<R> Watchdog<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(offspring_wire::SILENCE_LIMIT)),
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watchdog<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            std::task::Poll::Ready(result) => {
                if result.is_ok() && buf.filled().len() > before {
                    let deadline = tokio::time::Instant::now() + offspring_wire::SILENCE_LIMIT;
                    this.sleep.as_mut().reset(deadline);
                }
                std::task::Poll::Ready(result)
            }
            std::task::Poll::Pending => match this.sleep.as_mut().poll(cx) {
                std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no word from the peer in {:?}: its host or the network is gone",
                        offspring_wire::SILENCE_LIMIT
                    ),
                ))),
                std::task::Poll::Pending => std::task::Poll::Pending,
            },
        }
    }
}
