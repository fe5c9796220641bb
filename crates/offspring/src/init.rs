//! `init()`: the entry point that makes the binary a worker when it was started as one, and
//! the guard that refuses to start workers before it ran.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use offspring_coordinator::{Coordinator, CoordinatorConfig};
use offspring_transport::{WorkerEnv, build_identity, worker_env_present};

use crate::{Error, Result};

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Set by `test_support!()`: the libtest name of the worker entry test.
static TEST_ENTRY: OnceLock<String> = OnceLock::new();

/// Makes this program an offspring program. Call it as the first line of `main` (or put
/// [`#[offspring::main]`](crate::main) on `main`).
///
/// - In a process started as a worker, it takes the worker variables out of the environment,
///   runs the worker, and never returns.
/// - In any other process it returns at once, and from then on workers may be started.
///
/// It must run before the program starts any thread, since it edits the environment (so that
/// nothing the worker runs inherits its secret). Calling it again is harmless.
///
/// # Panics
///
/// Never. A worker whose environment is malformed prints one line to stderr and exits with
/// status 70.
pub fn init() {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return;
    }
    // `init` is documented to run first in `main`, before any thread exists, which is what
    // `take` needs to remove the worker variables.
    match WorkerEnv::take() {
        None => {}
        Some(Ok(env)) => offspring_worker::run(env),
        Some(Err(e)) => {
            eprintln!("offspring worker {}: {e}", std::process::id());
            std::process::exit(offspring_worker::EXIT_BAD_ENV);
        }
    }
}

pub(crate) fn register_test_entry(module_path: &str) {
    // libtest names tests by their path without the crate name.
    let path = module_path
        .split_once("::")
        .map_or("", |(_, rest)| rest)
        .to_owned();
    let name = if path.is_empty() {
        "__offspring_worker_entry".to_owned()
    } else {
        format!("{path}::__offspring_worker_entry")
    };
    let _ = TEST_ENTRY.set(name);
    // A test binary's harness owns `main`; starting workers is allowed once registered,
    // unless this process is itself a worker, which the entry test turns into one.
    if !worker_env_present() {
        INITIALIZED.store(true, Ordering::SeqCst);
    }
}

/// The arguments a worker is started with: none for a program, a filter selecting only the
/// worker entry test for a test binary.
pub(crate) fn worker_args() -> Vec<std::ffi::OsString> {
    match TEST_ENTRY.get() {
        None => Vec::new(),
        Some(name) => [
            name.as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ]
        .into_iter()
        .map(Into::into)
        .collect(),
    }
}

/// The process's coordinator, after the checks that keep a program that forgot `init()` from
/// starting copies of itself without end.
pub(crate) fn coordinator() -> Result<&'static Coordinator> {
    if worker_env_present() {
        return Err(Error::NotInitialized(
            "this process was started as an offspring worker but offspring::init() did not run \
             first in main, so it refuses to start workers (each would start more)",
        ));
    }
    if !INITIALIZED.load(Ordering::SeqCst) {
        return Err(Error::NotInitialized(
            "offspring::init() must run first in main (or put #[offspring::main] on main) \
             before workers are started",
        ));
    }
    let table = offspring_worker::task_table().map_err(|reason| Error::Spawn { reason })?;
    let coordinator = Coordinator::global(|| CoordinatorConfig {
        identity: build_identity(table.descriptions()),
        log_filter: std::env::var("RUST_LOG").ok().filter(|f| !f.is_empty()),
    })
    .map_err(Error::spawn)?;
    // A worker that starts workers of its own holds no primitives: its parent does, and its
    // workers' operations go on there.
    if let Some(client) = offspring_worker::client() {
        coordinator
            .registry()
            .set_upstream(std::sync::Arc::new(ToParent(client)));
    }
    Ok(coordinator)
}

/// A worker's registry passes its workers' operations on to its own parent.
struct ToParent(&'static offspring_worker::Client);

impl offspring_coordinator::Upstream for ToParent {
    fn forward(
        &self,
        origin: Vec<u32>,
        op: offspring_wire::PrimOp,
        reply: Option<offspring_coordinator::ReplyFn>,
    ) {
        self.0.forward(origin, op, reply);
    }
}
