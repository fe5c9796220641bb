//! The [`Task`] trait: what `Pool` and `Process` methods accept, and how they find the task's
//! stable name.
//!
//! `#[offspring::task]` leaves the function a plain function (so its name can be shadowed by
//! a local, and `f(5)` runs the body in-process) and registers it in the task table together
//! with the [`TypeId`] of its function item type. Every function item has a type of its own,
//! even when the compiler merges two identical bodies into one piece of machine code, so the
//! parent finds a task's name by that type, never by a code address, and sends only the name.

use std::any::TypeId;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// A function that can run in a worker: any function marked `#[offspring::task]`.
///
/// `Sig` is the function's signature as a function pointer type (`fn(u64) -> u64`); it exists
/// only so that functions of every arity are covered, and is always inferred. The trait is
/// implemented for every function and closure of up to 12 parameters with owned serde types;
/// whether it is a registered task is checked when it is submitted: a function without the
/// attribute fails with [`Error::NotATask`] before anything is sent to a worker.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an offspring task",
    label = "not a task with owned serde arguments and result",
    note = "a task takes at most 12 parameters, and its parameters and result are owned serde types: `Serialize + DeserializeOwned + Send + 'static`"
)]
pub trait Task<Sig>: Copy + Send + Sync + 'static + sealed::Sealed<Sig> {
    /// The argument: the single parameter's type, a tuple of several, or `()`.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The value the task returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Runs the task's body in this process.
    fn run(self, args: Self::Args) -> Self::Output;
}

mod sealed {
    /// Keeps [`Task`](super::Task) to the impls below.
    pub trait Sealed<Sig> {}
}

macro_rules! task_impls {
    ($( ( $($arg:ident),* ) ),* $(,)?) => {$(
        impl<F, R, $($arg),*> sealed::Sealed<fn($($arg),*) -> R> for F where F: Fn($($arg),*) -> R {}

        #[allow(non_snake_case, unused_parens)]
        impl<F, R, $($arg),*> Task<fn($($arg),*) -> R> for F
        where
            F: Fn($($arg),*) -> R + Copy + Send + Sync + 'static,
            R: Serialize + DeserializeOwned + Send + 'static,
            $($arg: Serialize + DeserializeOwned + Send + 'static,)*
        {
            type Args = task_impls!(@args $($arg),*);
            type Output = R;
            fn run(self, args: Self::Args) -> R {
                let task_impls!(@args $($arg),*) = args;
                self($($arg),*)
            }
        }
    )*};
    (@args) => { () };
    (@args $only:ident) => { $only };
    (@args $($arg:ident),+) => { ($($arg),+) };
}

/// The marker of an async task's signature in [`Task`]: `Async<fn(A) -> Fut>` for an
/// `async fn(A) -> R`, whose future `Fut` gives `R`. Always inferred, never written.
#[doc(hidden)]
#[derive(Debug)]
pub struct Async<Sig>(std::marker::PhantomData<Sig>);

/// An async task's call as a future, for a worker that runs several at once.
#[doc(hidden)]
pub trait AsyncTask<Sig>: Task<Sig> {
    /// The call's future.
    fn start(
        self,
        args: Self::Args,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output>>>;
}

macro_rules! async_task_impls {
    ($( ( $($arg:ident),* ) ),* $(,)?) => {$(
        impl<F, Fut, $($arg),*> sealed::Sealed<Async<fn($($arg),*) -> Fut>> for F
        where
            F: Fn($($arg),*) -> Fut,
        {
        }

        #[allow(non_snake_case, unused_parens)]
        impl<F, Fut, $($arg),*> AsyncTask<Async<fn($($arg),*) -> Fut>> for F
        where
            F: Fn($($arg),*) -> Fut + Copy + Send + Sync + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: Serialize + DeserializeOwned + Send + 'static,
            $($arg: Serialize + DeserializeOwned + Send + 'static,)*
        {
            fn start(
                self,
                args: Self::Args,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output>>> {
                let task_impls!(@args $($arg),*) = args;
                Box::pin(self($($arg),*))
            }
        }

        /// An `async fn` task: in a worker it runs on the worker's own current-thread
        /// runtime, started on first use (see `offspring_worker::block_on`).
        #[allow(non_snake_case, unused_parens)]
        impl<F, Fut, $($arg),*> Task<Async<fn($($arg),*) -> Fut>> for F
        where
            F: Fn($($arg),*) -> Fut + Copy + Send + Sync + 'static,
            Fut: std::future::Future,
            Fut::Output: Serialize + DeserializeOwned + Send + 'static,
            $($arg: Serialize + DeserializeOwned + Send + 'static,)*
        {
            type Args = task_impls!(@args $($arg),*);
            type Output = Fut::Output;
            fn run(self, args: Self::Args) -> Self::Output {
                let task_impls!(@args $($arg),*) = args;
                offspring_worker::block_on(self($($arg),*))
            }
        }
    )*};
}

async_task_impls! {
    (),
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, G),
    (A, B, C, D, E, G, H),
    (A, B, C, D, E, G, H, I),
    (A, B, C, D, E, G, H, I, J),
    (A, B, C, D, E, G, H, I, J, K),
    (A, B, C, D, E, G, H, I, J, K, L),
    (A, B, C, D, E, G, H, I, J, K, L, M),
}

task_impls! {
    (),
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, G),
    (A, B, C, D, E, G, H),
    (A, B, C, D, E, G, H, I),
    (A, B, C, D, E, G, H, I, J),
    (A, B, C, D, E, G, H, I, J, K),
    (A, B, C, D, E, G, H, I, J, K, L),
    (A, B, C, D, E, G, H, I, J, K, L, M),
}

/// The stable name of task `T`, found by its function item type in this executable's task
/// table.
///
/// # Errors
///
/// [`Error::NotATask`], naming the function, when `T` was not registered by
/// `#[offspring::task]` (a plain function, a closure, a function pointer); [`Error::Spawn`]
/// when the task table itself is invalid (two tasks under one name).
pub(crate) fn task_name<T: 'static>() -> Result<&'static str, Error> {
    let table = offspring_worker::task_table().map_err(|reason| Error::Spawn { reason })?;
    table
        .by_type(TypeId::of::<T>())
        .map(offspring_worker::TaskEntry::name)
        .ok_or_else(|| Error::NotATask {
            function: std::any::type_name::<T>().to_owned(),
        })
}

/// What a job is called in spans and errors: the task's name, or the function's type name
/// when it is no task (then the job fails before anything is sent).
pub(crate) fn label<T: 'static>(name: &Result<&'static str, Error>) -> &'static str {
    match name {
        Ok(name) => name,
        Err(_) => std::any::type_name::<T>(),
    }
}
