//! postcard in and out of the facade: a call's arguments (with the leases their handles
//! take), a task's value, and a primitive's items, each failure an [`Error`] that says what
//! did not (de)serialize.
//!
//! # Byte vectors
//!
//! serde sees a `Vec<u8>` as a sequence of `u8`, so postcard writes and reads it one byte at
//! a time, while `serde_bytes::ByteBuf` goes as one copy. Both are the same bytes on the wire
//! (a varint length, then the bytes), so a top-level `Vec<u8>` (a task's single argument or
//! its value) takes the fast way here, found by its type id, and a user who writes
//! `fn f(v: Vec<u8>) -> Vec<u8>` need not know the trick.

use std::any::Any;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Direction, Error, Result};

/// One call's encoded arguments and the in-flight leases taken while encoding them.
pub(crate) type EncodedCall = (Vec<u8>, Vec<u64>);

/// Encodes `value`; the message says why not, a handle's own reason included.
pub(crate) fn encode<V: Serialize + Any>(value: &V) -> std::result::Result<Vec<u8>, String> {
    if let Some(bytes) = (value as &dyn Any).downcast_ref::<Vec<u8>>() {
        return Ok(encode_byte_vec(bytes));
    }
    postcard::to_allocvec(value)
        .map_err(|e| crate::leases::take_refusal().map_or_else(|| e.to_string(), str::to_owned))
}

/// As [`encode`], taking the value: a byte vector becomes its own encoding in place (its
/// length is put in front of its bytes), with no second buffer of its size.
pub(crate) fn encode_owned<V: Serialize + Any>(value: V) -> std::result::Result<Vec<u8>, String> {
    if is_byte_vec::<V>() {
        let boxed: Box<dyn Any> = Box::new(value);
        let bytes = match boxed.downcast::<Vec<u8>>() {
            Ok(bytes) => *bytes,
            Err(boxed) => match boxed.downcast::<serde_bytes::ByteBuf>() {
                Ok(buf) => buf.into_vec(),
                Err(_) => return Err("a byte vector is not the type it claims".to_owned()),
            },
        };
        return Ok(prefix_in_place(bytes));
    }
    encode(&value)
}

/// Whether `T` is a byte vector postcard writes as a length and the bytes: `Vec<u8>` or
/// `serde_bytes::ByteBuf` (the same bytes on the wire).
fn is_byte_vec<T: Any>() -> bool {
    let id = std::any::TypeId::of::<T>();
    id == std::any::TypeId::of::<Vec<u8>>() || id == std::any::TypeId::of::<serde_bytes::ByteBuf>()
}

/// As [`decode`], taking the bytes: a byte vector is decoded in place (its length taken off
/// the front), with no second buffer of its size.
pub(crate) fn decode_owned<T: DeserializeOwned + Any>(
    bytes: Vec<u8>,
) -> std::result::Result<T, String> {
    if is_byte_vec::<T>() {
        let vec = unprefix_in_place(bytes)?;
        let boxed: Box<dyn Any> =
            if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Vec<u8>>() {
                Box::new(vec)
            } else {
                Box::new(serde_bytes::ByteBuf::from(vec))
            };
        return boxed
            .downcast::<T>()
            .map(|boxed| *boxed)
            .map_err(|_| "a byte vector is not the type asked for".to_owned());
    }
    decode(&bytes)
}

/// `bytes` as postcard writes them, built in the vector itself: the bytes move up by the
/// length's size (one pass over them, with no second buffer: a large vector's growth by a
/// few bytes remaps its pages rather than copying them).
fn prefix_in_place(mut bytes: Vec<u8>) -> Vec<u8> {
    let mut head = [0u8; 10];
    let n = offspring_wire::varint::write(bytes.len() as u64, &mut head);
    bytes.reserve_exact(n);
    bytes.splice(0..0, head[..n].iter().copied());
    bytes
}

/// The inverse of [`prefix_in_place`], with the checks of [`decode_byte_vec`].
fn unprefix_in_place(mut bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let (len, head) = read_varint(&bytes)?;
    let body = bytes.len() - head;
    match usize::try_from(len) {
        Ok(len) if len <= body => {
            bytes.truncate(head + len);
            bytes.drain(..head);
            // The vector becomes the caller's value: it must not pin much more memory than
            // it holds (a buffer reused for a smaller value).
            if bytes.capacity() / 2 > bytes.len() {
                bytes.shrink_to_fit();
            }
            Ok(bytes)
        }
        _ => Err(format!(
            "a byte vector of {len} bytes is announced, {body} are there"
        )),
    }
}

/// A postcard varint at the start of `bytes`: its value and its length in bytes.
fn read_varint(bytes: &[u8]) -> std::result::Result<(u64, usize), String> {
    offspring_wire::varint::read(bytes)
        .ok_or_else(|| "a byte vector's length is malformed".to_owned())
}

/// Decodes a `T` from all of `bytes` (trailing bytes are ignored, as postcard's `from_bytes`
/// does).
pub(crate) fn decode<T: DeserializeOwned + Any>(bytes: &[u8]) -> std::result::Result<T, String> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Vec<u8>>() {
        let vec: Box<dyn Any> = Box::new(decode_byte_vec(bytes)?);
        return vec
            .downcast::<T>()
            .map(|boxed| *boxed)
            .map_err(|_| "a byte vector is not the type asked for".to_owned());
    }
    postcard::from_bytes(bytes).map_err(|e| crate::leases::decode_message(&e))
}

/// `bytes` as postcard writes a byte sequence: its length as a varint, then the bytes.
fn encode_byte_vec(bytes: &[u8]) -> Vec<u8> {
    let mut head = [0u8; 10];
    let n = offspring_wire::varint::write(bytes.len() as u64, &mut head);
    let mut out = Vec::with_capacity(bytes.len() + n);
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(bytes);
    out
}

/// The inverse of [`encode_byte_vec`]: the length is checked against the bytes there are
/// before anything is allocated.
fn decode_byte_vec(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let (len, head) = read_varint(bytes)?;
    let body = &bytes[head..];
    match usize::try_from(len) {
        Ok(len) if len <= body.len() => Ok(body[..len].to_vec()),
        _ => Err(format!(
            "a byte vector of {len} bytes is announced, {} are there",
            body.len()
        )),
    }
}

/// Encodes the arguments of a call of `task` (the `index`th input, for `map` and friends).
pub(crate) fn encode_args<A: Serialize + Any>(
    task: &str,
    index: Option<usize>,
    args: &A,
) -> Result<Vec<u8>> {
    encode(args).map_err(|message| unencodable(task, index, message))
}

/// Encodes one call's arguments, with the in-flight leases of the handles among them (to end
/// when the call ends; see `leases`). A byte vector (which holds no handle) becomes its own
/// encoding in place.
pub(crate) fn encode_call<A: Serialize + Any>(
    task: &str,
    index: Option<usize>,
    args: A,
) -> Result<EncodedCall> {
    if is_byte_vec::<A>() {
        return encode_owned(args)
            .map(|bytes| (bytes, Vec::new()))
            .map_err(|message| unencodable(task, index, message));
    }
    // Only the bytes or the message come out of the scope (see `encode_calls`).
    let (bytes, tokens) = crate::leases::collect(|| encode(&args));
    match bytes {
        Ok(bytes) => Ok((bytes, tokens)),
        Err(message) => {
            crate::leases::end(&tokens);
            Err(unencodable(task, index, message))
        }
    }
}

/// The encoded arguments of many calls, each with its index, and the in-flight leases of
/// those that took any.
pub(crate) type EncodedCalls = (Vec<(usize, Vec<u8>)>, Vec<(usize, Vec<u64>)>);

/// As [`encode_call`] of each of `calls` (the `i`th with index `i`), in one pass: all of
/// them, or the first failure, with the leases of the calls before it ended.
pub(crate) fn encode_calls<A: Serialize + Any>(
    task: &str,
    calls: impl Iterator<Item = A>,
) -> Result<EncodedCalls> {
    let mut encoded = Vec::with_capacity(calls.size_hint().0);
    let mut leases: Vec<(usize, Vec<u64>)> = Vec::new();
    let result = if is_byte_vec::<A>() {
        calls.enumerate().try_for_each(|(i, args)| {
            let bytes =
                encode_owned(args).map_err(|message| unencodable(task, Some(i), message))?;
            encoded.push((i, bytes));
            Ok(())
        })
    } else {
        // The scope is around each call's encoding alone: the input's iterator runs outside
        // it, so a handle it serializes (into a queue, say) is not taken for a call.
        calls.enumerate().try_for_each(|(i, args)| {
            // What comes out of the scope is kept small (the error is built after it): this
            // runs per call, and moving a large `Result` cost more than the encoding.
            let (bytes, tokens) = crate::leases::collect(|| encode(&args));
            if !tokens.is_empty() {
                leases.push((i, tokens));
            }
            let bytes = bytes.map_err(|message| unencodable(task, Some(i), message))?;
            encoded.push((i, bytes));
            Ok(())
        })
    };
    match result {
        Ok(()) => Ok((encoded, leases)),
        Err(e) => {
            // The calls encoded before the failing one never reach the pool.
            for (_, tokens) in &leases {
                crate::leases::end(tokens);
            }
            Err(e)
        }
    }
}

/// Decodes the value of a call of `task` (a byte vector in place).
pub(crate) fn decode_value<R: DeserializeOwned + Any>(
    task: &str,
    index: Option<usize>,
    bytes: Vec<u8>,
) -> Result<R> {
    decode_owned(bytes).map_err(|message| undecodable_value(task, index, message))
}

/// As [`decode_value`], from bytes borrowed where they were read.
pub(crate) fn decode_value_in<R: DeserializeOwned + Any>(
    task: &str,
    index: Option<usize>,
    bytes: &[u8],
) -> Result<R> {
    decode(bytes).map_err(|message| undecodable_value(task, index, message))
}

/// Why the arguments of a call of `task` did not encode.
fn unencodable(task: &str, index: Option<usize>, message: String) -> Error {
    Error::Serialization {
        task: task.to_owned(),
        direction: Direction::EncodeArgs,
        message,
        index,
    }
}

/// Why the value of a call of `task` did not decode.
fn undecodable_value(task: &str, index: Option<usize>, message: String) -> Error {
    Error::Serialization {
        task: task.to_owned(),
        direction: Direction::DecodeResult,
        message,
        index,
    }
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
        reason: format!(
            "cannot decode the item: {}",
            crate::leases::decode_message(&e)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_vector_is_written_as_postcard_writes_bytes_and_read_back() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let fast = encode(&bytes).expect("encodes");
            let slow = postcard::to_allocvec(&serde_bytes::Bytes::new(&bytes)).expect("encodes");
            let seq = postcard::to_allocvec(&bytes.iter().collect::<Vec<_>>()).expect("encodes");
            assert_eq!(fast, slow, "{len}");
            assert_eq!(fast, seq, "{len}");
            let back: Vec<u8> = decode(&fast).expect("decodes");
            assert_eq!(back, bytes);
            let by_postcard: Vec<u8> = postcard::from_bytes(&fast).expect("decodes");
            assert_eq!(by_postcard, bytes);
            let owned = encode_owned(bytes.clone()).expect("encodes");
            assert_eq!(owned, fast, "{len}");
            let back: Vec<u8> = decode_owned(owned).expect("decodes");
            assert_eq!(back, bytes);
            let mut longer = fast.clone();
            longer.extend_from_slice(&[1, 2, 3]);
            assert_eq!(decode_owned::<Vec<u8>>(longer), Ok(bytes.clone()));
        }
    }

    #[test]
    fn a_byte_vector_longer_than_its_bytes_is_an_error_not_an_allocation() {
        let mut frame = encode(&vec![1u8; 10]).expect("encodes");
        frame.truncate(5);
        assert!(decode::<Vec<u8>>(&frame).is_err());
        assert!(decode::<Vec<u8>>(&[0xff; 11]).is_err());
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(decode::<Vec<u8>>(&huge).is_err());
        assert!(decode_owned::<Vec<u8>>(frame.clone()).is_err());
        assert!(decode_owned::<Vec<u8>>(vec![0xff; 11]).is_err());
        assert!(decode_owned::<Vec<u8>>(huge.to_vec()).is_err());
        assert_eq!(
            decode_owned::<u32>(encode_owned(7u32).expect("encodes")),
            Ok(7)
        );
        // Other types take postcard's own way.
        assert_eq!(decode::<u32>(&encode(&7u32).expect("encodes")), Ok(7));
    }
}
