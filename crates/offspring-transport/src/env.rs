//! The environment a re-executed worker is started with, and taking it out of the environment.

use crate::{Endpoint, Secret, TransportError};

/// Set to `worker` in a process started as an offspring worker.
pub const ENV_ROLE: &str = "OFFSPRING_ROLE";
/// The parent's endpoint, as [`Endpoint::to_env`].
pub const ENV_ENDPOINT: &str = "OFFSPRING_ENDPOINT";
/// The worker id the parent gave this worker.
pub const ENV_WORKER_ID: &str = "OFFSPRING_WORKER_ID";
/// The one-time secret, hex.
pub const ENV_SECRET: &str = "OFFSPRING_SECRET";
/// The parent's pid, to check `getppid()` against after arming the parent-death signal.
pub const ENV_PARENT_PID: &str = "OFFSPRING_PARENT_PID";
/// Set to `1` for a worker its launcher started on another machine (or as another's child,
/// such as a Slurm step): it arms no parent-death signal (its parent is the launcher's
/// process), uses no shared memory, and lives by its connection and heartbeats alone.
pub const ENV_REMOTE: &str = "OFFSPRING_REMOTE";
/// The descriptor of the worker's side channel (Linux): one end of a socket pair its parent
/// made for it, inherited under this number, on which the parent passes it the descriptors
/// of direct pipes (see [`channel`](crate::channel)).
pub const ENV_SIDE: &str = "OFFSPRING_SIDE";
/// Testing switch: when set (in the parent's environment, which workers inherit), workers do
/// not arm the OS's parent-death help (and a Windows parent puts them in no job object), so
/// tests can prove the socket lifeline alone.
pub const ENV_NO_PDEATHSIG: &str = "OFFSPRING_NO_PDEATHSIG";

/// A worker's exit status when the worker variables are malformed.
pub const EXIT_BAD_ENV: i32 = 70;
/// A worker's exit status when the task table has a duplicate name.
pub const EXIT_BAD_TABLE: i32 = 71;
/// A worker's exit status when the connection or handshake with the parent failed.
pub const EXIT_HANDSHAKE: i32 = 72;
/// A worker's exit status when the parent was gone before the worker was armed, or went away.
pub const EXIT_PARENT_GONE: i32 = 73;

/// What a worker's exit status before it connected says about why, for error messages.
pub fn early_exit_hint(code: Option<i32>) -> &'static str {
    match code {
        Some(EXIT_BAD_ENV) => "the worker found its environment variables malformed",
        Some(EXIT_BAD_TABLE) => "two tasks share a name in the worker's task table",
        Some(EXIT_HANDSHAKE) => {
            "the worker could not connect or authenticate (see the worker's stderr)"
        }
        Some(EXIT_PARENT_GONE) => "the worker saw its parent gone",
        _ => "does main call offspring::init() first?",
    }
}

const SECRET_VARS: [&str; 7] = [
    ENV_ROLE,
    ENV_SIDE,
    ENV_REMOTE,
    ENV_ENDPOINT,
    ENV_WORKER_ID,
    ENV_SECRET,
    ENV_PARENT_PID,
];

/// Everything a worker needs to reach and prove itself to its parent.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    /// Where the parent listens.
    pub endpoint: Endpoint,
    /// This worker's id.
    pub worker_id: u64,
    /// This worker's one-time secret.
    pub secret: Secret,
    /// The parent's pid.
    pub parent_pid: u32,
    /// Started by a launcher on another machine (see [`ENV_REMOTE`]).
    pub remote: bool,
    /// The inherited descriptor of its side channel, if it has one (see [`ENV_SIDE`]).
    pub side: Option<i32>,
}

impl WorkerEnv {
    /// The variables to set on the child's command.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (ENV_ROLE, "worker".to_owned()),
            (ENV_ENDPOINT, self.endpoint.to_env()),
            (ENV_WORKER_ID, self.worker_id.to_string()),
            (ENV_SECRET, self.secret.to_hex()),
            (ENV_PARENT_PID, self.parent_pid.to_string()),
        ];
        if self.remote {
            vars.push((ENV_REMOTE, "1".to_owned()));
        }
        if let Some(side) = self.side {
            vars.push((ENV_SIDE, side.to_string()));
        }
        vars
    }

    /// Reads the worker environment and removes it, so that nothing the worker runs (its own
    /// children included) inherits the secret, and a worker may start workers of its own.
    /// `None` when this process was not started as a worker.
    ///
    /// # Errors
    ///
    /// [`TransportError::BadEnv`] when the variables are present but malformed.
    ///
    /// Call it before the process starts any thread that reads or writes the environment:
    /// its one caller is `offspring::init()`, which is documented to run first in `main`.
    /// In a process that is not a worker it only reads one variable and removes nothing.
    pub fn take() -> Option<Result<Self, TransportError>> {
        std::env::var_os(ENV_ROLE)?;
        let read = |key: &str| {
            std::env::var(key).map_err(|_| TransportError::BadEnv(format!("{key} is missing")))
        };
        let parsed = (|| {
            let role = read(ENV_ROLE)?;
            if role != "worker" {
                return Err(TransportError::BadEnv(format!("unknown role {role:?}")));
            }
            let endpoint = Endpoint::from_env(&read(ENV_ENDPOINT)?)?;
            let worker_id = read(ENV_WORKER_ID)?
                .parse()
                .map_err(|_| TransportError::BadEnv(format!("{ENV_WORKER_ID} is not a number")))?;
            let secret = Secret::from_hex(&read(ENV_SECRET)?)
                .ok_or_else(|| TransportError::BadEnv(format!("{ENV_SECRET} is malformed")))?;
            let parent_pid = read(ENV_PARENT_PID)?
                .parse()
                .map_err(|_| TransportError::BadEnv(format!("{ENV_PARENT_PID} is not a number")))?;
            let remote = std::env::var(ENV_REMOTE).is_ok_and(|v| v == "1");
            let side = match std::env::var(ENV_SIDE) {
                Ok(fd) => Some(fd.parse().map_err(|_| {
                    TransportError::BadEnv(format!("{ENV_SIDE} is not a descriptor"))
                })?),
                Err(_) => None,
            };
            Ok(Self {
                endpoint,
                worker_id,
                secret,
                parent_pid,
                remote,
                side,
            })
        })();
        for key in SECRET_VARS {
            // SAFETY: removing a variable races with other threads reading the environment.
            // This runs only in a process offspring started as a worker, from `init()`, the
            // first call in `main`: no thread of the program exists yet. In a test binary the
            // harness has started its threads, but they only wait for this test to end.
            unsafe { std::env::remove_var(key) };
        }
        Some(parsed)
    }
}

/// Whether this process was started as a worker and has not yet taken its environment, i.e.
/// `offspring::init()` did not run first. Such a process must not start workers itself.
pub fn worker_env_present() -> bool {
    std::env::var_os(ENV_ROLE).is_some()
}
