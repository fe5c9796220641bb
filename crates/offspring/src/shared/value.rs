//! [`Value`]: an atomic integer in shared memory.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use offspring_transport::shm::Mapping;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Core, Flavor};
use crate::Result;

mod sealed {
    pub trait Sealed {}
}

/// The integer types a [`Value`] holds: `u32`, `u64`, `i32`, `i64` and `usize`.
pub trait ValueType: bytemuck::Pod + sealed::Sealed + std::fmt::Debug {
    #[doc(hidden)]
    fn load(map: &Mapping) -> Self;
    #[doc(hidden)]
    fn store(map: &Mapping, value: Self);
    #[doc(hidden)]
    fn fetch_add(map: &Mapping, value: Self) -> Self;
    #[doc(hidden)]
    fn fetch_sub(map: &Mapping, value: Self) -> Self;
    #[doc(hidden)]
    fn compare_exchange(map: &Mapping, current: Self, new: Self) -> Result<Self, Self>;
}

/// A value's word when its mapping has none (never, for a handle that was made or decoded:
/// both check its size): operations then act on this, and never fault.
static NO_WORD_64: AtomicU64 = AtomicU64::new(0);
static NO_WORD_32: AtomicU32 = AtomicU32::new(0);

macro_rules! value_type {
    ($t:ty, $bits:ty, $word:ident, $fallback:ident) => {
        impl sealed::Sealed for $t {}

        impl ValueType for $t {
            fn load(map: &Mapping) -> Self {
                map.$word().unwrap_or(&$fallback).load(Ordering::SeqCst) as Self
            }
            fn store(map: &Mapping, value: Self) {
                map.$word()
                    .unwrap_or(&$fallback)
                    .store(value as $bits, Ordering::SeqCst);
            }
            fn fetch_add(map: &Mapping, value: Self) -> Self {
                map.$word()
                    .unwrap_or(&$fallback)
                    .fetch_add(value as $bits, Ordering::SeqCst) as Self
            }
            fn fetch_sub(map: &Mapping, value: Self) -> Self {
                map.$word()
                    .unwrap_or(&$fallback)
                    .fetch_sub(value as $bits, Ordering::SeqCst) as Self
            }
            fn compare_exchange(map: &Mapping, current: Self, new: Self) -> Result<Self, Self> {
                map.$word()
                    .unwrap_or(&$fallback)
                    .compare_exchange(
                        current as $bits,
                        new as $bits,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .map(|v| v as Self)
                    .map_err(|v| v as Self)
            }
        }
    };
}

value_type!(u32, u32, atomic_u32, NO_WORD_32);
value_type!(i32, u32, atomic_u32, NO_WORD_32);
value_type!(u64, u64, atomic_u64, NO_WORD_64);
value_type!(i64, u64, atomic_u64, NO_WORD_64);
#[cfg(target_pointer_width = "64")]
value_type!(usize, u64, atomic_u64, NO_WORD_64);

#[derive(Debug)]
struct Inner {
    core: Core,
    map: Mapping,
}

/// An integer that processes share, changed by atomic instructions on a shared page (no
/// message to any other process), like Python's `multiprocessing.Value` without its lock.
/// Every operation is `SeqCst`, as the std atomics with that ordering.
///
/// ```no_run
/// # fn main() -> offspring::Result<()> {
/// # offspring::init();
/// let hits = offspring::Value::<u64>::new(0)?;
/// hits.fetch_add(2);
/// assert_eq!(hits.load(), 2);
/// assert_eq!(hits.compare_exchange(2, 5), Ok(2));
/// # Ok(())
/// # }
/// ```
pub struct Value<T> {
    inner: Arc<Inner>,
    _type: PhantomData<T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _type: PhantomData,
        }
    }
}

impl<T: ValueType> Value<T> {
    /// A new value, starting at `value`.
    ///
    /// # Errors
    ///
    /// `Error::SharedMemory` when the OS cannot make or map the object; the errors of
    /// `init()`'s checks in a parent.
    pub fn new(value: T) -> Result<Self> {
        let core = Core::create(std::mem::size_of::<T>() as u64, true)?;
        let map = core.map()?;
        T::store(&map, value);
        Ok(Self {
            inner: Arc::new(Inner { core, map }),
            _type: PhantomData,
        })
    }

    /// The value now.
    pub fn load(&self) -> T {
        T::load(&self.inner.map)
    }

    /// Sets the value.
    pub fn store(&self, value: T) {
        T::store(&self.inner.map, value);
    }

    /// Adds `value` (wrapping), giving the previous value.
    pub fn fetch_add(&self, value: T) -> T {
        T::fetch_add(&self.inner.map, value)
    }

    /// Subtracts `value` (wrapping), giving the previous value.
    pub fn fetch_sub(&self, value: T) -> T {
        T::fetch_sub(&self.inner.map, value)
    }

    /// Sets the value to `new` if it is `current`: `Ok(previous)` if it was, else
    /// `Err(actual)`.
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        T::compare_exchange(&self.inner.map, current, new)
    }
}

impl<T: ValueType> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value{:?} = {:?}", self.inner.core, self.load())
    }
}

impl<T: ValueType> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner
            .core
            .serialize(Flavor::Value, std::mem::size_of::<T>(), serializer)
    }
}

impl<'de, T: ValueType> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (core, map) = Core::deserialize(
            deserializer,
            Flavor::Value,
            std::mem::size_of::<T>(),
            Mapping::open,
        )?;
        Ok(Self {
            inner: Arc::new(Inner { core, map }),
            _type: PhantomData,
        })
    }
}
