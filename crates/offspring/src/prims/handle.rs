//! A handle: a primitive's id and kind, where its operations go (the parent's registry or
//! the worker's connection), and how it crosses a process boundary (with a lease). Handles
//! go down any number of levels: a worker passing one to its own workers takes the lease
//! from its parent, and its registry passes those workers' operations on (see
//! `offspring_coordinator::Upstream`), so the primitive's state and every lease stay in the
//! one process that created it, the top of the tree.

use std::sync::Arc;
use std::time::Duration;

use offspring_coordinator::Registry;
use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

const UPWARDS: &str = "a worker can pass offspring handles on only to workers of its own, in \
     their task arguments (not back to its parent, nor through a queue or a pipe)";

#[derive(Clone, Copy)]
pub(crate) enum Backend {
    Parent(&'static Registry),
    Worker(&'static offspring_worker::Client),
}

pub(crate) fn backend() -> Result<Backend> {
    if let Some(client) = offspring_worker::client() {
        return Ok(Backend::Worker(client));
    }
    Ok(Backend::Parent(crate::init::coordinator()?.registry()))
}

impl Backend {
    pub(super) fn call(self, op: PrimOp) -> PrimReply {
        match self {
            Self::Parent(registry) => registry.local(op),
            Self::Worker(client) => client.call(op),
        }
    }

    pub(super) fn notify(self, op: PrimOp) {
        match self {
            Self::Parent(registry) => {
                registry.local(op);
            }
            Self::Worker(client) => client.notify(op),
        }
    }
}

pub(crate) fn millis(timeout: Duration) -> u64 {
    // Round up, so a positive timeout never becomes a mere try.
    let ms = timeout.as_micros().div_ceil(1000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

pub(crate) struct HandleCore {
    pub(super) id: u64,
    pub(super) kind: Kind,
    pub(super) backend: Backend,
}

impl Drop for HandleCore {
    fn drop(&mut self) {
        self.backend.notify(PrimOp::Release { id: self.id });
    }
}

/// A reference to a primitive: its id, kind, and where operations go.
#[derive(Clone)]
pub(crate) struct Handle(pub(super) Arc<HandleCore>);

impl Handle {
    /// A handle to a primitive just created by `op`, whose reply is `Id`, or for a
    /// shared-memory object `Shared` (also returned).
    pub(crate) fn create_with(op: PrimOp, kind: Kind) -> Result<(Self, PrimReply)> {
        let backend = backend()?;
        match backend.call(op) {
            reply @ (PrimReply::Id(id) | PrimReply::Shared { id, .. }) => {
                Ok((Self(Arc::new(HandleCore { id, kind, backend })), reply))
            }
            other => Err(unexpected(other)),
        }
    }

    pub(super) fn create(kind: Kind, param: u64) -> Result<Self> {
        let backend = backend()?;
        match backend.call(PrimOp::Create { kind, param }) {
            PrimReply::Id(id) => Ok(Self(Arc::new(HandleCore { id, kind, backend }))),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    pub(crate) fn call(&self, op: PrimOp) -> PrimReply {
        self.0.backend.call(op)
    }

    /// The registry, in the parent.
    #[cfg(any(target_os = "linux", windows))]
    pub(super) fn registry(&self) -> Option<&'static Registry> {
        match self.0.backend {
            Backend::Parent(registry) => Some(registry),
            Backend::Worker(_) => None,
        }
    }

    /// The connection to the parent, in a worker.
    pub(super) fn client(&self) -> Option<&'static offspring_worker::Client> {
        match self.0.backend {
            Backend::Worker(client) => Some(client),
            Backend::Parent(_) => None,
        }
    }

    pub(super) fn notify(&self, op: PrimOp) {
        self.0.backend.notify(op);
    }

    /// Runs an operation whose caller needs no answer (an event's `set`, a queue's
    /// `task_done`): in a worker it is sent without waiting, and the parent applies it in
    /// the order this process sent its messages (so a `set` then a `put` from one thread are
    /// seen in that order), logging a failure; in the parent it runs at once and a failure
    /// is logged here.
    pub(super) fn one_way(&self, what: &str, op: PrimOp) {
        match self.0.backend {
            Backend::Parent(registry) => {
                let reply = registry.local(op);
                if reply != PrimReply::Unit {
                    log_failure(what, &reply);
                }
            }
            Backend::Worker(client) => client.notify(op),
        }
    }
}

pub(crate) fn unexpected(reply: PrimReply) -> Error {
    match reply {
        PrimReply::Error(reason) => Error::Primitive { reason },
        PrimReply::Timeout => Error::Timeout,
        PrimReply::ShutDown => Error::ShutDown,
        other => Error::Primitive {
            reason: format!("unexpected reply from the coordinator: {other:?}"),
        },
    }
}

/// Reports a failure of an operation whose signature cannot return it (a handle that names
/// nothing): the caller gets the neutral value, the log gets the reason.
pub(crate) fn log_failure(what: &str, reply: &PrimReply) {
    tracing::error!(target: "offspring", operation = what, ?reply, "a primitive operation failed");
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}#{}", self.0.kind, self.0.id)
    }
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Event => 0,
        Kind::Semaphore => 1,
        Kind::Barrier => 2,
        Kind::Queue => 3,
        Kind::PipeEnd => 4,
        Kind::Condition => 5,
        Kind::Shared => 6,
    }
}

pub(crate) fn serialize_handle<S: Serializer>(
    handle: &Handle,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let token = lease_token(handle).map_err(serde::ser::Error::custom)?;
    (kind_code(handle.0.kind), handle.id(), token).serialize(serializer)
}

/// Takes the in-flight lease a handle being serialized travels under, and records it for the
/// call being encoded; refuses where a handle cannot go.
pub(crate) fn lease_token(handle: &Handle) -> Result<u64, &'static str> {
    let token = match handle.0.backend {
        Backend::Parent(registry) => registry.lease_in_flight(handle.id()).unwrap_or_default(),
        // A worker passing a handle on to a worker of its own takes the lease from its
        // parent, which holds the primitive; its registry passes that worker's operations on.
        Backend::Worker(client) if crate::leases::collecting() => {
            match client.call(PrimOp::LeaseInFlight { id: handle.id() }) {
                PrimReply::Count(token) => token,
                // A handle that names nothing reports that on use, as in the parent.
                _ => 0,
            }
        }
        Backend::Worker(_) => return Err(crate::leases::refuse(UPWARDS)),
    };
    crate::leases::record(token);
    Ok(token)
}

pub(crate) fn deserialize_handle<'de, D: Deserializer<'de>>(
    deserializer: D,
    kind: Kind,
) -> Result<Handle, D::Error> {
    let (code, id, token) = <(u8, u64, u64)>::deserialize(deserializer)?;
    if code != kind_code(kind) {
        return Err(serde::de::Error::custom(format!(
            "expected a handle to a {kind:?}, found another kind"
        )));
    }
    adopt(kind, id, token).map_err(serde::de::Error::custom)
}

/// The handle of a process that received one: it takes the lease the sender's took.
pub(crate) fn adopt(kind: Kind, id: u64, token: u64) -> Result<Handle> {
    let backend = backend()?;
    // Taking the lease cannot fail in a way that matters here: a handle that names nothing
    // reports that on use.
    backend.notify(PrimOp::Adopt { id, token });
    Ok(Handle(Arc::new(HandleCore { id, kind, backend })))
}

/// Serializes and deserializes a handle type `$ty` (with a `handle` field and a
/// `from_handle` constructor) as a handle of `$kind`.
macro_rules! handle_serde {
    ($ty:ident $(<$g:ident>)?, $kind:expr) => {
        impl$(<$g>)? serde::Serialize for $ty$(<$g>)? {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $crate::prims::handle::serialize_handle(&self.handle, serializer)
            }
        }

        impl<'de $(, $g)?> serde::Deserialize<'de> for $ty$(<$g>)? {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(Self::from_handle(
                    $crate::prims::handle::deserialize_handle(deserializer, $kind)?,
                ))
            }
        }
    };
}
pub(crate) use handle_serde;

/// Runs a taking operation (a queue's `Get`, a pipe end's `Recv`): the decoded item, `None`
/// when it timed out, or the error.
pub(super) fn take_item<T: DeserializeOwned>(handle: &Handle, op: PrimOp) -> Result<Option<T>> {
    match handle.call(op) {
        PrimReply::Item(bytes) => crate::codec::decode_item(&bytes).map(Some),
        PrimReply::Timeout => Ok(None),
        other => Err(unexpected(other)),
    }
}
