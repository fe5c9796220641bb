//! Shared memory: [`SharedBytes`], [`SharedSlice`], [`SharedArray`] and [`Value`]. Passing one
//! to another process sends a handle; the receiver maps the same pages, and nothing is
//! copied. Python shares read-only data by forking; offspring's workers are started afresh,
//! so these types are how a large table reaches every task of a pool once.
//!
//! ```no_run
//! #[offspring::task]
//! fn lookup(args: (offspring::SharedSlice<f32>, usize)) -> f32 {
//!     let (table, i) = args;
//!     table[i]
//! }
//!
//! # fn main() -> offspring::Result<()> {
//! offspring::init();
//! let table = offspring::SharedSlice::copy_from_slice(&vec![0.5f32; 1 << 20])?;
//! let pool = offspring::Pool::new(2)?;
//! let values = pool.map(lookup, (0..100).map(|i| (table.clone(), i)))?;
//! assert!(values.iter().all(|v| *v == 0.5));
//! # Ok(())
//! # }
//! ```
//!
//! # Where things live
//!
//! The process at the top of the tree (the one that has no offspring parent) owns every
//! object: its coordinator's registry holds the OS object and leases on it, exactly as it does
//! for a primitive, so an object lives while a handle to it exists in any process (handles in
//! flight inside task arguments included) and is freed once the last one is dropped or its
//! holder has died. The bytes themselves are in memory every holder maps. A
//! [`SharedArray`]'s lock is a [`Lock`](crate::Lock) of the registry, given back when its
//! holder dies; a [`Value`] is a word changed by atomic instructions, with no message at all.
//! No object outlives the tree: on Linux it is a `memfd` (never a file in `/dev/shm`) whose
//! memory the kernel frees with the last process that maps it, on Windows a named mapping
//! Windows frees with its last handle. (On macOS it is a POSIX shared-memory object whose
//! name its owner unlinks when it frees it; a parent killed outright leaves the name behind.)
//!
//! A handle names its object privately to the owner (on Linux `/proc/<owner>/fd/<n>`, which
//! only processes of the same user can open, checked against a random tag; on Windows a name
//! with that tag) rather than passing a descriptor along with it (`SCM_RIGHTS`,
//! `DuplicateHandle`). A handle is serialized bytes inside task arguments, queue items and
//! pipe messages, which reach workers two or three levels down through every process in
//! between: a name travels with the bytes, where a descriptor would need a side channel to
//! each receiving process and a hop through each middle one. The owner keeps the only
//! reference that names it; when it frees the object, the name names nothing.
//!
//! Handles travel as primitives' handles do: from a process to its workers (any number of
//! levels down) inside task and `Process` arguments, and from the parent to workers through
//! queues and pipes. A worker that serializes one anywhere else (a result, a queue item for
//! its parent) gets an error. They are local to one machine.
//!
//! # Order
//!
//! Shared memory changes as soon as a process writes it, while an operation on a primitive
//! from a worker is a message the parent applies in that worker's order. So a [`Value`]
//! stored after an [`Event::set`](crate::Event::set) can be seen changed before the event
//! is set; to publish data through shared memory, change it first and then signal through a
//! primitive that the reader waits on (a `Queue` item, an `Event` the reader waits for, the
//! array's own lock), which the reader observes after the write.
//!
//! # Trust
//!
//! Memory another process writes is untrusted input, as a frame is.
//!
//! - [`SharedBytes`] and [`SharedSlice`] are read-only for everyone once created: on Linux
//!   the creator fills the `memfd` and the owner seals it against writes, growing and
//!   shrinking before any handle exists, so no process (a buggy or hostile worker included)
//!   can change the bytes another process has borrowed as `&[T]`. On Windows and macOS every
//!   receiver maps a read-only view; there a process that goes around offspring's API to open
//!   the object for writing could still change it.
//! - A [`SharedArray`] is writable by every holder, but only through its guard, which holds
//!   the array's cross-process lock: reading or writing it without the lock is not something
//!   the API can do. A holder that dies mid-write leaves what it wrote; the lock is free again.
//! - Every element type is [`bytemuck::Pod`], so any bytes another process left are a valid
//!   value: scribbled memory gives wrong numbers, never undefined behaviour.
//! - A handle is checked when it is decoded: one that names no live object (forged bytes, an
//!   object already freed, another object's kind or element size) gives an error. The object
//!   is named by a random tag that is part of the handle, and on Linux the receiver checks
//!   the object's name and seals before it maps it.

mod array;
mod bytes;
mod cache;
mod value;

pub use array::{SharedArray, SharedArrayGuard};
pub use bytes::{SharedBytes, SharedSlice};
pub use value::{Value, ValueType};

use offspring_transport::shm::{Locator, MAX_SHARED, Mapping};
use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::prims::handle::{Handle, adopt, lease_token, unexpected};
use crate::{Error, Result};

/// What a handle is a handle to, checked when it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    ReadOnly = 0,
    Array = 1,
    Value = 2,
}

/// One process's hold on a shared object: its lease (the handle) and where it lives.
struct Core {
    handle: Handle,
    locator: Locator,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} ({} bytes)", self.handle.id(), self.locator.len)
    }
}

fn shared_error(reason: impl std::fmt::Display) -> Error {
    Error::SharedMemory {
        reason: reason.to_string(),
    }
}

/// The byte length of `n` elements of `T`, checked.
fn byte_len<T>(n: usize) -> Result<u64> {
    let size = std::mem::size_of::<T>();
    if size == 0 {
        return Err(shared_error(
            "shared memory cannot hold zero-sized elements",
        ));
    }
    if std::mem::align_of::<T>() > 4096 {
        return Err(shared_error("the element type is aligned beyond a page"));
    }
    n.checked_mul(size)
        .and_then(|len| u64::try_from(len).ok())
        .filter(|len| *len <= MAX_SHARED)
        .ok_or_else(|| {
            shared_error(format!(
                "{n} elements of {size} bytes are more than a shared object holds ({MAX_SHARED} bytes)"
            ))
        })
}

impl Core {
    /// A new object of `len` bytes, owned by the registry at the top of the tree.
    fn create(len: u64, writable: bool) -> Result<Self> {
        let (handle, reply) =
            Handle::create_with(PrimOp::SharedCreate { len, writable }, Kind::Shared).map_err(
                |e| match e {
                    Error::Primitive { reason } => shared_error(reason),
                    other => other,
                },
            )?;
        let PrimReply::Shared {
            pid,
            handle: fd,
            tag,
            ..
        } = reply
        else {
            return Err(unexpected(reply));
        };
        let locator = Locator {
            pid,
            handle: fd,
            tag,
            len,
            writable,
        };
        Ok(Self { handle, locator })
    }

    /// A new read-only object holding `bytes`: filled by this process, then sealed.
    fn read_only(bytes: &[u8]) -> Result<(Self, std::sync::Arc<Mapping>)> {
        let core = Self::create(bytes.len() as u64, false)?;
        offspring_transport::shm::fill(&core.locator, bytes).map_err(shared_error)?;
        match core.handle.call(PrimOp::SharedSeal {
            id: core.handle.id(),
        }) {
            PrimReply::Unit => {}
            other => return Err(unexpected(other)),
        }
        let map = cache::read_only(&core.locator).map_err(shared_error)?;
        Ok((core, map))
    }

    fn map(&self) -> Result<Mapping> {
        Mapping::open(&self.locator).map_err(shared_error)
    }

    fn serialize<S: Serializer>(
        &self,
        flavor: Flavor,
        elem: usize,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let token = lease_token(&self.handle).map_err(serde::ser::Error::custom)?;
        let l = &self.locator;
        (
            self.handle.id(),
            token,
            flavor as u8,
            elem as u64,
            (l.pid, l.handle, l.tag, l.len, l.writable),
        )
            .serialize(serializer)
    }

    /// A handle decoded: checked against what the receiver expects, adopted, and mapped
    /// (read-only mappings through the cache).
    fn deserialize<'de, D: Deserializer<'de>, M>(
        deserializer: D,
        flavor: Flavor,
        elem: usize,
        open: impl FnOnce(&Locator) -> std::io::Result<M>,
    ) -> Result<(Self, M), D::Error> {
        type Wire = (u64, u64, u8, u64, (u32, u64, u64, u64, bool));
        let (id, token, got_flavor, got_elem, (pid, fd, tag, len, writable)) =
            Wire::deserialize(deserializer)?;
        let fail = |reason: String| {
            serde::de::Error::custom(crate::leases::undecodable(format!(
                "a shared-memory handle {reason}"
            )))
        };
        if got_flavor != flavor as u8
            || got_elem != elem as u64
            || writable != (flavor != Flavor::ReadOnly)
        {
            return Err(fail(format!(
                "is not one of a {flavor:?} of {elem}-byte elements"
            )));
        }
        if len % elem as u64 != 0 || (flavor == Flavor::Value && len != elem as u64) {
            return Err(fail(format!("has a bad length ({len} bytes)")));
        }
        // Adopt first, so the lease this handle holds is given back if mapping fails.
        let handle = adopt(Kind::Shared, id, token).map_err(|e| fail(e.to_string()))?;
        if offspring_worker::is_remote() {
            return Err(fail(format!(
                "reached a worker on another machine ({}): shared memory is local to the parent's machine; send the data itself",
                offspring_transport::sys::hostname()
            )));
        }
        let locator = Locator {
            pid,
            handle: fd,
            tag,
            len,
            writable,
        };
        let map = open(&locator).map_err(|e| fail(format!("names no live object: {e}")))?;
        Ok((Self { handle, locator }, map))
    }
}
