//! postcard in and out of the facade: a call's arguments (with the leases their handles
//! take), a task's value, and a primitive's items, each failure an [`Error`] that says what
//! did not (de)serialize.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Direction, Error, Result};

/// One call's encoded arguments and the in-flight leases taken while encoding them.
pub(crate) type EncodedCall = (Vec<u8>, Vec<u64>);

/// Encodes `value`; the message says why not, a handle's own reason included.
pub(crate) fn encode<V: Serialize + ?Sized>(value: &V) -> std::result::Result<Vec<u8>, String> {
    postcard::to_allocvec(value)
        .map_err(|e| crate::leases::take_refusal().map_or_else(|| e.to_string(), str::to_owned))
}

/// Encodes the arguments of a call of `task` (the `index`th input, for `map` and friends).
pub(crate) fn encode_args<A: Serialize + ?Sized>(
    task: &str,
    index: Option<usize>,
    args: &A,
) -> Result<Vec<u8>> {
    encode(args).map_err(|message| Error::Serialization {
        task: task.to_owned(),
        direction: Direction::EncodeArgs,
        message,
        index,
    })
}

/// Encodes one call's arguments, with the in-flight leases of the handles among them (to end
/// when the call ends; see `leases`).
pub(crate) fn encode_call<A: Serialize + ?Sized>(
    task: &str,
    index: Option<usize>,
    args: &A,
) -> Result<EncodedCall> {
    let (bytes, tokens) = crate::leases::collect(|| encode_args(task, index, args));
    match bytes {
        Ok(bytes) => Ok((bytes, tokens)),
        Err(e) => {
            crate::leases::end(&tokens);
            Err(e)
        }
    }
}

/// Decodes the value of a call of `task`.
pub(crate) fn decode_value<R: DeserializeOwned>(
    task: &str,
    index: Option<usize>,
    bytes: &[u8],
) -> Result<R> {
    postcard::from_bytes(bytes).map_err(|e| Error::Serialization {
        task: task.to_owned(),
        direction: Direction::DecodeResult,
        message: e.to_string(),
        index,
    })
}

/// Encodes an item for a queue or a pipe.
pub(crate) fn encode_item<T: Serialize>(item: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(item).map_err(|e| Error::Primitive {
        reason: format!("cannot encode the item: {e}"),
    })
}

/// Decodes an item taken from a queue or a pipe.
pub(crate) fn decode_item<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Primitive {
        reason: format!("cannot decode the item: {e}"),
    })
}
