//! [`SharedArray`]: mutable shared memory behind its own cross-process lock.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytemuck::Pod;
use offspring_transport::shm::Mapping;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Core, Flavor, byte_len, shared_error};
use crate::{Lock, LockGuard, Result};

#[derive(Debug)]
struct Inner {
    core: Core,
    /// Taken after `lock`, so it is never contended: it is what makes a guard's `&mut [T]`
    /// the only borrow of the memory in this process.
    map: Mutex<Mapping>,
    lock: Lock,
    len: usize,
}

/// An array of plain-old-data values that every holder can change, behind a lock of its own
/// that processes share, like Python's `multiprocessing.Array`.
///
/// The lock is the coordinator's: when a process dies holding it, it is free again, and what
/// that process wrote stays. Values are read and written only through [`SharedArray::lock`]'s
/// guard (or [`SharedArray::to_vec`], which takes it).
///
/// ```no_run
/// # fn main() -> offspring::Result<()> {
/// # offspring::init();
/// let arr = offspring::SharedArray::<f64>::zeroed(4)?;
/// {
///     let mut g = arr.lock();
///     g[3] = 1.5;
/// }
/// assert_eq!(arr.to_vec(), vec![0.0, 0.0, 0.0, 1.5]);
/// # Ok(())
/// # }
/// ```
pub struct SharedArray<T> {
    inner: Arc<Inner>,
    _element: PhantomData<T>,
}

/// The guard of a locked [`SharedArray`]: the values, to read and write. The array's lock is
/// released when it drops.
pub struct SharedArrayGuard<'a, T> {
    map: MutexGuard<'a, Mapping>,
    _lock: LockGuard,
    _element: PhantomData<&'a mut [T]>,
}

impl<T> Clone for SharedArray<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _element: PhantomData,
        }
    }
}

impl<T: Pod> SharedArray<T> {
    /// An array of `n` zeroes.
    ///
    /// # Errors
    ///
    /// `Error::SharedMemory` for a zero-sized `T`, more bytes than an object holds, or when
    /// the OS cannot make or map the object; the errors of `init()`'s checks in a parent.
    pub fn zeroed(n: usize) -> Result<Self> {
        let len = byte_len::<T>(n)?;
        let core = Core::create(len, true)?;
        let map = core.map()?;
        Self::assemble(core, map, Lock::new()?)
    }

    /// An array holding a copy of `values`.
    ///
    /// # Errors
    ///
    /// As [`SharedArray::zeroed`].
    pub fn copy_from_slice(values: &[T]) -> Result<Self> {
        let array = Self::zeroed(values.len())?;
        array.lock().copy_from_slice(values);
        Ok(array)
    }

    fn assemble(core: Core, map: Mapping, lock: Lock) -> Result<Self> {
        let len = bytemuck::try_cast_slice::<u8, T>(map.bytes())
            .map_err(|e| shared_error(format!("the shared array's memory does not fit: {e}")))?
            .len();
        Ok(Self {
            inner: Arc::new(Inner {
                core,
                map: Mutex::new(map),
                lock,
                len,
            }),
            _element: PhantomData,
        })
    }

    /// Waits for the array's lock; the guard gives the values.
    pub fn lock(&self) -> SharedArrayGuard<'_, T> {
        self.guard(self.inner.lock.lock())
    }

    /// The guard if the lock is free now.
    pub fn try_lock(&self) -> Option<SharedArrayGuard<'_, T>> {
        self.inner.lock.try_lock().map(|lock| self.guard(lock))
    }

    /// The guard if the lock frees up within `timeout`.
    pub fn lock_timeout(&self, timeout: std::time::Duration) -> Option<SharedArrayGuard<'_, T>> {
        self.inner
            .lock
            .lock_timeout(timeout)
            .map(|lock| self.guard(lock))
    }

    fn guard(&self, lock: LockGuard) -> SharedArrayGuard<'_, T> {
        let map = self
            .inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        SharedArrayGuard {
            map,
            _lock: lock,
            _element: PhantomData,
        }
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// A copy of the values, taken under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().to_vec()
    }
}

impl<T: Pod> std::ops::Deref for SharedArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        bytemuck::try_cast_slice(self.map.bytes()).unwrap_or(&[])
    }
}

impl<T: Pod> std::ops::DerefMut for SharedArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self.map.bytes_mut() {
            Some(bytes) => bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut []),
            None => &mut [],
        }
    }
}

impl<T> std::fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedArray{:?}", self.inner.core)
    }
}

impl<T> std::fmt::Debug for SharedArrayGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedArrayGuard").finish_non_exhaustive()
    }
}

impl<T: Pod> Serialize for SharedArray<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (
            ArrayCore::<T>(&self.inner.core, PhantomData),
            &self.inner.lock,
        )
            .serialize(serializer)
    }
}

struct ArrayCore<'a, T>(&'a Core, PhantomData<T>);

impl<T> Serialize for ArrayCore<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0
            .serialize(Flavor::Array, std::mem::size_of::<T>(), serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Decoded(Core, Mapping);
        struct Seed<T>(PhantomData<T>);
        impl<'de, T: Pod> serde::de::DeserializeSeed<'de> for Seed<T> {
            type Value = Decoded;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Decoded, D::Error> {
                byte_len::<T>(0).map_err(serde::de::Error::custom)?;
                let (core, map) =
                    Core::deserialize(d, Flavor::Array, std::mem::size_of::<T>(), Mapping::open)?;
                Ok(Decoded(core, map))
            }
        }
        struct Pair<T>(PhantomData<T>);
        impl<'de, T: Pod> serde::de::Visitor<'de> for Pair<T> {
            type Value = (Decoded, Lock);
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a shared array's handle")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let missing = || serde::de::Error::custom("a shared array's handle is cut short");
                let decoded = seq
                    .next_element_seed(Seed::<T>(PhantomData))?
                    .ok_or_else(missing)?;
                let lock = seq.next_element::<Lock>()?.ok_or_else(missing)?;
                Ok((decoded, lock))
            }
        }
        let (Decoded(core, map), lock) =
            deserializer.deserialize_tuple(2, Pair::<T>(PhantomData))?;
        Self::assemble(core, map, lock).map_err(serde::de::Error::custom)
    }
}
