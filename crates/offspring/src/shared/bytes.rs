//! [`SharedBytes`] and [`SharedSlice`]: read-only memory shared by handle.

use std::marker::PhantomData;
use std::sync::Arc;

use bytemuck::Pod;
use offspring_transport::shm::Mapping;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Core, Flavor, byte_len};
use crate::Result;

#[derive(Debug)]
struct ReadOnly {
    core: Core,
    map: Arc<Mapping>,
}

impl ReadOnly {
    fn new(bytes: &[u8]) -> Result<Arc<Self>> {
        let (core, map) = Core::read_only(bytes)?;
        Ok(Arc::new(Self { core, map }))
    }
}

/// Bytes shared by handle, read-only from the moment they are created, in every process.
///
/// Passing one to a worker (in task arguments, `Process` arguments, a queue or a pipe) sends a
/// handle: the worker maps the same pages, and nothing is copied. The memory is freed when
/// the last handle in any process is gone. See [the module docs](crate::shared) for
/// where it lives and what keeps it read-only.
///
/// ```no_run
/// # fn main() -> offspring::Result<()> {
/// # offspring::init();
/// let data = offspring::SharedBytes::from_vec(vec![7u8; 1 << 20])?;
/// assert_eq!(data.len(), 1 << 20);
/// assert_eq!(data[12], 7);
/// # Ok(())
/// # }
/// ```
///
/// Decoding a handle that names no live object (forged bytes, or an object already freed)
/// fails with an error, in the decoder (a task's argument decoding, a queue's `get`).
#[derive(Clone)]
pub struct SharedBytes {
    inner: Arc<ReadOnly>,
}

impl SharedBytes {
    /// Shares `bytes`: copies them once into shared memory, which is read-only from then on.
    ///
    /// # Errors
    ///
    /// `Error::SharedMemory` when the OS cannot make or map the object; the errors of
    /// `init()`'s checks in a parent.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self> {
        Self::copy_from_slice(&bytes)
    }

    /// Shares a copy of `bytes`.
    ///
    /// # Errors
    ///
    /// As [`SharedBytes::from_vec`].
    pub fn copy_from_slice(bytes: &[u8]) -> Result<Self> {
        ReadOnly::new(bytes).map(|inner| Self { inner })
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.inner.map.bytes().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.inner.map.bytes()
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes{:?}", self.inner.core)
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.core.serialize(Flavor::ReadOnly, 1, serializer)
    }
}

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (core, map) =
            Core::deserialize(deserializer, Flavor::ReadOnly, 1, super::cache::read_only)?;
        Ok(Self {
            inner: Arc::new(ReadOnly { core, map }),
        })
    }
}

/// A slice of plain-old-data values shared by handle, read-only in every process: what
/// [`SharedBytes`] is for bytes, for any [`bytemuck::Pod`] type.
///
/// ```no_run
/// # fn main() -> offspring::Result<()> {
/// # offspring::init();
/// let table = offspring::SharedSlice::<f32>::copy_from_slice(&[1.0, 2.0, 3.0])?;
/// assert_eq!(&table[..], &[1.0, 2.0, 3.0]);
/// # Ok(())
/// # }
/// ```
pub struct SharedSlice<T> {
    inner: Arc<ReadOnly>,
    _element: PhantomData<T>,
}

impl<T> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _element: PhantomData,
        }
    }
}

impl<T: Pod> SharedSlice<T> {
    /// Shares a copy of `values`.
    ///
    /// # Errors
    ///
    /// `Error::SharedMemory` for a zero-sized `T`, more bytes than an object holds, or when
    /// the OS cannot make or map the object; the errors of `init()`'s checks in a parent.
    pub fn copy_from_slice(values: &[T]) -> Result<Self> {
        byte_len::<T>(values.len())?;
        ReadOnly::new(bytemuck::cast_slice(values)).map(|inner| Self {
            inner,
            _element: PhantomData,
        })
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_slice(&self) -> &[T] {
        // The mapping is page-aligned and its length a multiple of `T`'s size (both checked
        // when the handle was made or decoded), so the cast holds; an empty slice otherwise.
        bytemuck::try_cast_slice(self.inner.map.bytes()).unwrap_or(&[])
    }
}

impl<T: Pod> std::ops::Deref for SharedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> std::fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedSlice{:?}", self.inner.core)
    }
}

impl<T: Pod> Serialize for SharedSlice<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner
            .core
            .serialize(Flavor::ReadOnly, std::mem::size_of::<T>(), serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedSlice<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        byte_len::<T>(0).map_err(serde::de::Error::custom)?;
        let (core, map) = Core::deserialize(
            deserializer,
            Flavor::ReadOnly,
            std::mem::size_of::<T>(),
            super::cache::read_only,
        )?;
        Ok(Self {
            inner: Arc::new(ReadOnly { core, map }),
            _element: PhantomData,
        })
    }
}
