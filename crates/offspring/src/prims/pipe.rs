//! [`pipe`] and its two [`Connection`] ends.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::handle::{Handle, HandleCore, backend, handle_serde, millis, take_item, unexpected};
use crate::{Error, Result};

/// One end of a duplex pipe made by [`pipe`]: what one end sends, only the other receives.
pub struct Connection<T> {
    handle: Handle,
    _items: PhantomData<fn() -> T>,
}

impl<T> Clone for Connection<T> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _items: PhantomData,
        }
    }
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
            let end = |id| Connection {
                handle: Handle(Arc::new(HandleCore {
                    id,
                    kind: Kind::PipeEnd,
                    backend,
                })),
                _items: PhantomData,
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
            _items: PhantomData,
        }
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
        match self.handle.call(PrimOp::Send {
            id: self.handle.id(),
            item,
        }) {
            PrimReply::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn take(&self, timeout_ms: Option<u64>) -> Result<Option<T>> {
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
        self.take(Some(millis(timeout)))?.ok_or(Error::Timeout)
    }

    /// The next message if there is one now.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<T>> {
        self.take(Some(0))
    }
}
