//! The [`Task`] trait that `#[offspring::task]` implements.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A function that can run in a worker, found there by its stable [`Task::NAME`].
///
/// Implemented by `#[offspring::task]`; there is no need to implement it by hand.
pub trait Task: Copy + Send + Sync + 'static {
    /// The argument: the single parameter's type, a tuple of several, or `()`.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The value the task returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The stable name the worker looks the task up by.
    const NAME: &'static str;
    /// Runs the task's body in this process.
    fn run(args: Self::Args) -> Self::Output;
}
