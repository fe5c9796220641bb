//! The runtime async tasks run on: a tokio current-thread runtime of the thread that runs
//! them (in a worker, the task thread), started when the first async call arrives and kept
//! for the next. Sync tasks never run inside it: they run on the plain task thread, so they
//! may block or start a runtime of their own.

use std::cell::OnceCell;
use std::future::Future;

thread_local! {
    static RUNTIME: OnceCell<tokio::runtime::Runtime> = const { OnceCell::new() };
}

/// Runs `future` to completion on this thread's task runtime, starting the runtime first if
/// this is the thread's first async call. Timers, and the I/O drivers the program's tokio
/// features provide, are enabled. A panic in the future propagates to the caller (the
/// worker catches it as the call's failure), and the runtime stays usable.
///
/// # Panics
///
/// When the runtime cannot be started (the OS refused a thread or a descriptor), or when
/// called from inside an async task (tokio refuses to block a thread that drives a runtime).
pub fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|cell| {
        let runtime = match cell.get() {
            Some(runtime) => runtime,
            None => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("cannot start the runtime for async tasks: {e}"));
                cell.get_or_init(|| runtime)
            }
        };
        runtime.block_on(future)
    })
}
