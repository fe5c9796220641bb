//! [`Queue`]: items shared by processes, with `JoinableQueue`'s `task_done` and `join`.

use std::marker::PhantomData;
use std::time::Duration;

use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::handle::{Handle, handle_serde, log_failure, millis, take_item, unexpected};
use crate::{Error, Result};

/// A queue of `T` shared by processes, like Python's `multiprocessing.JoinableQueue`:
/// unbounded, or bounded with [`Queue::bounded`]. Every item is delivered once; an item
/// `put` reported as accepted is never lost.
pub struct Queue<T> {
    handle: Handle,
    _items: PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _items: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Queue").field(&self.handle).finish()
    }
}

handle_serde!(Queue<T>, Kind::Queue);

impl<T> Queue<T> {
    fn from_handle(handle: Handle) -> Self {
        Self {
            handle,
            _items: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn new() -> Result<Self> {
        Handle::create(Kind::Queue, 0).map(Self::from_handle)
    }

    /// A queue that holds at most `maxsize` items; `put` waits while it is full.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bound of zero; the errors of `init()`'s checks.
    pub fn bounded(maxsize: usize) -> Result<Self> {
        if maxsize == 0 {
            return Err(Error::InvalidConfig {
                reason: "a bounded queue needs room for at least one item".into(),
            });
        }
        Handle::create(Kind::Queue, maxsize as u64).map(Self::from_handle)
    }

    /// Puts an item, waiting while a bounded queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`] once the queue was shut down; [`Error::Primitive`] when the item
    /// does not encode or the handle names no queue.
    pub fn put(&self, item: &T) -> Result<()> {
        let item = crate::codec::encode_item(item)?;
        match self.handle.call(PrimOp::Put {
            id: self.handle.id(),
            item,
            timeout_ms: None,
        }) {
            PrimReply::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn take(&self, timeout_ms: Option<u64>) -> Result<Option<T>> {
        take_item(
            &self.handle,
            PrimOp::Get {
                id: self.handle.id(),
                timeout_ms,
            },
        )
    }

    /// Takes the next item, waiting for one.
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`] when the queue was shut down and is empty; [`Error::Primitive`]
    /// when the item does not decode or the handle names no queue.
    pub fn get(&self) -> Result<T> {
        self.take(None)?.ok_or(Error::Timeout)
    }

    /// Takes the next item, waiting up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when none came; otherwise as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.take(Some(millis(timeout)))?.ok_or(Error::Timeout)
    }

    /// Takes the next item if there is one now.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn try_get(&self) -> Result<Option<T>> {
        self.take(Some(0))
    }

    /// Items in the queue now.
    pub fn len(&self) -> usize {
        match self.handle.call(PrimOp::Len {
            id: self.handle.id(),
        }) {
            PrimReply::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            other => {
                log_failure("Queue::len", &other);
                0
            }
        }
    }

    /// Whether the queue is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks one item taken from the queue as processed (for [`join`](Self::join)). From a
    /// worker this sends one message and waits for no answer, in order with this process's
    /// other operations (see [`Event::set`](crate::Event::set)).
    pub fn task_done(&self) {
        self.handle.one_way(
            "Queue::task_done",
            PrimOp::TaskDone {
                id: self.handle.id(),
            },
        );
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) {
        self.join_for(None);
    }

    /// As [`join`](Self::join), giving up after `timeout`; whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_for(Some(millis(timeout)))
    }

    /// Shuts the queue down, as Python 3.13's `Queue.shutdown()`: every later `put` (and
    /// every `put` blocked on a full queue) fails with [`Error::ShutDown`]; gets take what is
    /// left, then fail with [`Error::ShutDown`] instead of waiting (getters waiting now are
    /// woken). For every process holding the queue.
    pub fn shutdown(&self) {
        self.shut(false);
    }

    /// As [`shutdown`](Self::shutdown), and drops what is queued now (counted done for
    /// [`join`](Self::join)), so every waiter, getters included, wakes at once (Python's
    /// `shutdown(immediate=True)`).
    pub fn shutdown_now(&self) {
        self.shut(true);
    }

    fn shut(&self, immediate: bool) {
        let reply = self.handle.call(PrimOp::QueueShutdown {
            id: self.handle.id(),
            immediate,
        });
        if reply != PrimReply::Unit {
            log_failure("Queue::shutdown", &reply);
        }
    }

    fn join_for(&self, timeout_ms: Option<u64>) -> bool {
        match self.handle.call(PrimOp::Join {
            id: self.handle.id(),
            timeout_ms,
        }) {
            PrimReply::Bool(done) => done,
            PrimReply::Timeout => false,
            other => {
                log_failure("Queue::join", &other);
                false
            }
        }
    }
}
