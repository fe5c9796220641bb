//! What the macros' expansions call. Not public API: names here may change at any time.

pub use crate::task_trait::Async;
pub use ctor;
pub use inventory;
pub use offspring_worker::{
    ENV_TEST_CLOSED_CLIENT, ENV_TEST_CORRUPT_SEALED, ENV_TEST_SCRIBBLE, TaskEntry,
};

use crate::Task;

/// The parts of a table entry for task `T`, called from the closures `#[offspring::task]`
/// registers: its signature (for the table's identity), its runner (decode the arguments, run,
/// encode the value) and its function item's type id (how the parent finds its name).
pub fn signature_of<S, T: Task<S>>(_task: &T) -> String {
    format!(
        "fn({}) -> {}",
        std::any::type_name::<T::Args>(),
        std::any::type_name::<T::Output>()
    )
}

/// See [`signature_of`].
///
/// # Errors
///
/// The arguments do not decode, or the value does not encode.
pub fn run_erased<S, T: Task<S>>(
    task: T,
    args: Vec<u8>,
) -> Result<Vec<u8>, offspring_worker::RunError> {
    let args: T::Args =
        crate::codec::decode_owned(args).map_err(offspring_worker::RunError::BadArgs)?;
    let value = task.run(args);
    crate::codec::encode_owned(value).map_err(offspring_worker::RunError::BadResult)
}

/// The runner of an async task's calls that run several at a time: decodes the arguments
/// now and gives the future that runs the call and encodes its value. See [`signature_of`].
///
/// # Errors
///
/// The arguments do not decode.
pub fn start_erased<S, T: crate::task_trait::AsyncTask<S>>(
    task: T,
    args: &[u8],
) -> Result<offspring_worker::CallFuture, offspring_worker::RunError> {
    let args: T::Args = crate::codec::decode(args).map_err(offspring_worker::RunError::BadArgs)?;
    let call = task.start(args);
    Ok(Box::pin(async move {
        let value = call.await;
        crate::codec::encode_owned(value).map_err(offspring_worker::RunError::BadResult)
    }))
}

/// See [`signature_of`].
pub fn type_id_of<T: 'static>(_task: &T) -> std::any::TypeId {
    std::any::TypeId::of::<T>()
}

/// Called by `test_support!()` before `main`: remembers the worker entry test's path.
pub fn register_test_harness(module_path: &str) {
    crate::init::register_test_entry(module_path);
}

/// The endpoint this parent's workers connect to, starting the coordinator if needed (for
/// tests that play a stranger on it).
///
/// # Errors
///
/// The errors of starting the coordinator.
pub fn coordinator_endpoint() -> crate::Result<offspring_transport::Endpoint> {
    Ok(crate::init::coordinator()?.endpoint().clone())
}

/// Starts `task` in a child running `program` instead of this executable. Tests use it to
/// show that a different binary holding a real secret is refused.
///
/// # Errors
///
/// As [`Process::spawn`](crate::Process::spawn).
pub fn spawn_with_program<S, T: Task<S>>(
    program: std::path::PathBuf,
    task: T,
    args: T::Args,
) -> crate::Result<crate::ProcessHandle<T::Output>> {
    crate::process::spawn_with(Some(program), task, args)
}

/// A pool builder whose workers run `program` instead of this executable. Tests use it to
/// show what a pool does when its workers cannot start.
pub fn pool_with_program(program: std::path::PathBuf) -> crate::PoolBuilder {
    crate::Pool::builder().with_program(program)
}

/// `builder` with an environment variable set in its workers only (tests use it for
/// test-only switches such as `OFFSPRING_TEST_SCRIBBLE`).
pub fn with_worker_env(builder: crate::PoolBuilder, key: &str, value: &str) -> crate::PoolBuilder {
    builder.with_worker_env(key, value)
}

/// `builder` whose workers report every call in a frame, without a shared outcome segment:
/// the path workers on other machines take, kept tested.
pub fn frames_only(builder: crate::PoolBuilder) -> crate::PoolBuilder {
    builder.with_frames_only()
}

/// Pids of `pool`'s workers that have run a batch and are not known to have exited (tests
/// pick victims among them: killing one is a death, never a failed start).
pub fn serving_pids(pool: &crate::Pool) -> Vec<u32> {
    pool.serving_pids()
}

/// Makes `cargo test` and `cargo nextest run` work with workers: put it once in a test crate
/// (at any module level). It adds an ignored test, `__offspring_worker_entry`, which a worker
/// started from the test binary runs (and only it), becoming the worker; and it allows the
/// tests themselves to start workers without calling [`init`](crate::init).
#[macro_export]
macro_rules! test_support {
    () => {
        $crate::__private::ctor::declarative::ctor! {
            #[ctor(unsafe, anonymous)]
            fn __offspring_register_test_harness() {
                $crate::__private::register_test_harness(::core::module_path!());
            }
        }

        #[test]
        #[ignore = "offspring's worker entry: runs only inside worker processes"]
        fn __offspring_worker_entry() {
            $crate::init();
        }
    };
}

/// A launcher that starts workers on this machine as if they were on another: as plain
/// commands, dialling back over TCP (sealed, with heartbeats), with no shared memory. Tests
/// use it to run the remote path without a cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loopback;

impl crate::Launcher for Loopback {
    fn name(&self) -> &str {
        "loopback"
    }

    fn command(
        &self,
        program: &std::path::Path,
        args: &[std::ffi::OsString],
    ) -> std::io::Result<std::process::Command> {
        let mut command = std::process::Command::new(program);
        command.args(args);
        Ok(command)
    }
}

/// The TCP endpoint workers on other machines dial, bound at `listen` on first use.
///
/// # Errors
///
/// The errors of starting the coordinator or binding the address.
pub fn coordinator_tcp_endpoint(
    listen: Option<&str>,
) -> crate::Result<offspring_transport::Endpoint> {
    crate::init::coordinator()?
        .tcp_endpoint(listen)
        .map_err(crate::Error::spawn)
}

/// Seals `payload` in records and opens them again with a pair of fresh keys, as a sealed
/// connection's two ends do: bytes per second of the whole (for the benchmark).
pub fn seal_throughput(payload: &[u8]) -> f64 {
    use offspring_transport::seal::{Opener, RECORD_HEADER, Role, derive};
    let Ok(secret) = offspring_transport::Secret::generate() else {
        return 0.0;
    };
    let shared = [9u8; 32];
    let (Ok((mut sealer, _)), Ok((_, mut opener))) = (
        derive(&secret, &shared, &[b"bench"], Role::Parent),
        derive(&secret, &shared, &[b"bench"], Role::Worker),
    ) else {
        return 0.0;
    };
    let started = std::time::Instant::now();
    let mut sealed = Vec::new();
    if sealer.seal_into(payload, &mut sealed).is_err() {
        return 0.0;
    }
    let mut rest = sealed.as_mut_slice();
    let mut opened = 0;
    while rest.len() >= RECORD_HEADER {
        let (header, tail) = rest.split_at_mut(RECORD_HEADER);
        let mut head = [0u8; RECORD_HEADER];
        head.copy_from_slice(header);
        let Ok(len) = Opener::body_len(head) else {
            return 0.0;
        };
        let (body, tail) = tail.split_at_mut(len.min(tail.len()));
        match opener.open(head, body) {
            Ok(n) => opened += n,
            Err(_) => return 0.0,
        }
        rest = tail;
    }
    let took = started.elapsed().as_secs_f64();
    if opened == payload.len() && took > 0.0 {
        payload.len() as f64 / took
    } else {
        0.0
    }
}

/// How many sends and receives the parent's registry made on pipe end `end` for processes
/// that do not hold it themselves; `None` when the end is not direct (another OS, or freed).
/// Call it in the parent.
pub fn pipe_relayed<T>(end: &crate::Connection<T>) -> Option<u64> {
    #[cfg(any(target_os = "linux", windows))]
    {
        crate::init::coordinator()
            .ok()
            .and_then(|coordinator| coordinator.registry().relayed(end.id()))
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = end.id();
        None
    }
}
