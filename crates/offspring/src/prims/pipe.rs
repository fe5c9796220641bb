//! [`pipe`] and its two [`Connection`] ends.
//!
//! On Linux a pipe is *direct*: its ends are the two ends of a socket pair (see
//! `offspring_transport::channel`), held by the parent's registry. Each process that uses an
//! end gets its own descriptor of it (the parent's threads from the registry, a worker
//! through its side channel, once, with `PrimOp::Attach`), and sends and receives on it
//! itself: a message goes from one process to the other without the parent in between. A
//! process that cannot hold the descriptor (a worker on another machine, a worker's own
//! worker) has the registry do its sends and receives on the registry's own copy, so every
//! holder of an end reads and writes the same stream of messages. Elsewhere, the registry
//! keeps each end's messages itself, and every operation is a message to it.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::handle::{Handle, HandleCore, backend, handle_serde, millis, take_item, unexpected};
use crate::{Error, Result};

/// One end of a duplex pipe made by [`pipe`]: what one end sends, only the other receives.
pub struct Connection<T> {
    handle: Handle,
    /// How this process reaches the end, found on first use and shared by clones.
    route: Arc<OnceLock<Route>>,
    _items: PhantomData<fn() -> T>,
}

/// How a process sends and receives on a pipe end.
enum Route {
    /// On the end's own descriptor (see the module docs).
    #[cfg(any(target_os = "linux", windows))]
    Direct(Arc<offspring_transport::channel::Channel>),
    /// Through the parent's registry.
    Relay,
}

impl<T> Clone for Connection<T> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            route: Arc::clone(&self.route),
            _items: PhantomData,
        }
    }
}

/// The direct ends this worker holds, by id, so that every handle of one end in this
/// process shares one descriptor (closed with the last of them).
#[cfg(any(target_os = "linux", windows))]
static ATTACHED: std::sync::Mutex<
    std::collections::BTreeMap<u64, std::sync::Weak<offspring_transport::channel::Channel>>,
> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// How this process reaches pipe end `handle`.
fn resolve(handle: &Handle) -> Result<Route> {
    #[cfg(any(target_os = "linux", windows))]
    {
        let id = handle.id();
        if let Some(registry) = handle.registry() {
            return Ok(registry
                .pipe_channel(id)
                .map_or(Route::Relay, Route::Direct));
        }
        if let Some(client) = handle.client() {
            let attached = || {
                ATTACHED
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            if let Some(channel) = attached().get(&id).and_then(std::sync::Weak::upgrade) {
                return Ok(Route::Direct(channel));
            }
            // Not under the lock: attaching is a round trip to the parent, and other threads'
            // first uses of other ends need not wait for it.
            return match client.attach(id) {
                Ok(Some(channel)) => {
                    let mut attached = attached();
                    attached.retain(|_, end| end.strong_count() > 0);
                    // Another thread of this process may have attached the same end meanwhile:
                    // keep one descriptor per end (this one closes).
                    if let Some(channel) = attached.get(&id).and_then(std::sync::Weak::upgrade) {
                        return Ok(Route::Direct(channel));
                    }
                    let channel = Arc::new(channel);
                    attached.insert(id, Arc::downgrade(&channel));
                    Ok(Route::Direct(channel))
                }
                Ok(None) => Ok(Route::Relay),
                Err(reason) => Err(Error::Primitive { reason }),
            };
        }
    }
    let _ = handle;
    Ok(Route::Relay)
}

/// A direct end's error as the caller sees it.
#[cfg(any(target_os = "linux", windows))]
fn channel_error(what: &str, error: &std::io::Error) -> Error {
    let reason = match error.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof => {
            offspring_coordinator::CLOSED_PIPE.to_owned()
        }
        _ => format!("cannot {what} on the pipe: {error}"),
    };
    Error::Primitive { reason }
}

impl<T> std::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Connection").field(&self.handle).finish()
    }
}

handle_serde!(Connection<T>, Kind::PipeEnd);

/// A duplex pipe: two connected ends, like Python's `multiprocessing.Pipe()`.
///
/// # Errors
///
/// The errors of `init()`'s checks in a parent.
pub fn pipe<T: Serialize + DeserializeOwned>() -> Result<(Connection<T>, Connection<T>)> {
    let backend = backend()?;
    match backend.call(PrimOp::CreatePipe) {
        PrimReply::Pair(a, b) => {
            let end = |id| {
                Connection::from_handle(Handle(Arc::new(HandleCore {
                    id,
                    kind: Kind::PipeEnd,
                    backend,
                })))
            };
            Ok((end(a), end(b)))
        }
        other => Err(unexpected(other)),
    }
}

impl<T> Connection<T> {
    fn from_handle(handle: Handle) -> Self {
        Self {
            handle,
            route: Arc::new(OnceLock::new()),
            _items: PhantomData,
        }
    }

    /// The end's id in the registry.
    pub(crate) fn id(&self) -> u64 {
        self.handle.id()
    }

    fn route(&self) -> Result<&Route> {
        if let Some(route) = self.route.get() {
            return Ok(route);
        }
        let route = resolve(&self.handle)?;
        Ok(self.route.get_or_init(|| route))
    }
}

impl<T: Serialize + DeserializeOwned> Connection<T> {
    /// Sends a message to the other end.
    ///
    /// # Errors
    ///
    /// [`Error::Primitive`] when the other end is closed or the message does not encode.
    pub fn send(&self, value: &T) -> Result<()> {
        let item = crate::codec::encode_item(value)?;
        #[cfg(any(target_os = "linux", windows))]
        if let Route::Direct(channel) = self.route()? {
            // The same limit as through the registry: another holder of this end may be
            // one the registry relays for.
            if item.len() > offspring_coordinator::MAX_ITEM {
                return Err(Error::Primitive {
                    reason: format!(
                        "the item is {} bytes encoded, more than the {} a queue or pipe carries",
                        item.len(),
                        offspring_coordinator::MAX_ITEM
                    ),
                });
            }
            return channel.send(&item).map_err(|e| channel_error("send", &e));
        }
        match self.handle.call(PrimOp::Send {
            id: self.handle.id(),
            item,
        }) {
            PrimReply::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn take(&self, timeout: Option<Duration>) -> Result<Option<T>> {
        #[cfg(any(target_os = "linux", windows))]
        if let Route::Direct(channel) = self.route()? {
            return match channel.recv(
                timeout,
                offspring_coordinator::MAX_ITEM,
                crate::codec::decode_item::<T>,
            ) {
                Ok(Some(item)) => item.map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(channel_error("receive", &e)),
            };
        }
        #[cfg(not(any(target_os = "linux", windows)))]
        self.route()?;
        let timeout_ms = timeout.map(millis);
        take_item(
            &self.handle,
            PrimOp::Recv {
                id: self.handle.id(),
                timeout_ms,
            },
        )
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`Error::Primitive`] when the other end is closed (every handle to it dropped, or its
    /// process died) and nothing is left to read.
    pub fn recv(&self) -> Result<T> {
        self.take(None)?.ok_or(Error::Timeout)
    }

    /// As [`recv`](Self::recv), waiting up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when nothing came; otherwise as `recv`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        self.take(Some(timeout))?.ok_or(Error::Timeout)
    }

    /// The next message if there is one now.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<T>> {
        self.take(Some(Duration::ZERO))
    }
}
