//! A one-shot result slot shared between the coordinator's thread (which fills it) and the
//! user's threads (which wait on it), handing its value out once.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use offspring_coordinator::wait_for;

enum Fill<T> {
    Empty,
    Ready(T),
    Taken,
}

/// Why [`Slot::take`] gave nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Not filled within the timeout; it may still be filled later.
    Timeout,
    /// The value was handed out before.
    Taken,
}

pub(crate) struct Slot<T> {
    state: Mutex<Fill<T>>,
    filled: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(Fill::Empty),
            filled: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Fill<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fills the slot; a second fill is ignored (the first report wins).
    pub(crate) fn fill(&self, value: T) {
        let mut state = self.lock();
        if matches!(*state, Fill::Empty) {
            *state = Fill::Ready(value);
            drop(state);
            self.filled.notify_all();
        }
    }

    /// Whether a value is waiting to be taken.
    #[cfg(test)]
    pub(crate) fn is_ready(&self) -> bool {
        matches!(*self.lock(), Fill::Ready(_))
    }

    /// Waits until the slot is filled (forever when `timeout` is `None`) and takes the value.
    pub(crate) fn take(&self, timeout: Option<Duration>) -> Result<T, Missing> {
        let mut state = wait_for(&self.filled, self.lock(), timeout, |state| {
            matches!(state, Fill::Empty)
        });
        match std::mem::replace(&mut *state, Fill::Taken) {
            Fill::Ready(value) => Ok(value),
            Fill::Taken => Err(Missing::Taken),
            Fill::Empty => {
                *state = Fill::Empty;
                Err(Missing::Timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_once() {
        let slot = Slot::new();
        assert_eq!(slot.take(Some(Duration::ZERO)), Err(Missing::Timeout));
        slot.fill(5);
        slot.fill(6);
        assert!(slot.is_ready());
        assert_eq!(slot.take(None), Ok(5));
        assert_eq!(slot.take(None), Err(Missing::Taken));
    }
}
