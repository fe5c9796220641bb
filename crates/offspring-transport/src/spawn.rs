//! Starting a copy of the running executable as a worker.

use std::process::Stdio;

use crate::{TransportError, WorkerEnv, sys};

/// How to start one worker.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// Where it must connect and how it proves itself.
    pub env: WorkerEnv,
    /// Run this program instead of the running executable (tests use it to start a
    /// genuinely different binary with a real secret).
    pub program: Option<std::path::PathBuf>,
    /// Arguments for the worker. Empty for a normal program (its `main` calls
    /// `offspring::init()` first); a test binary gets the arguments that make its harness run
    /// only the worker entry test.
    pub args: Vec<std::ffi::OsString>,
    /// Descriptors (close-on-exec in the parent) that this child alone inherits, under the
    /// same numbers: its outcome segment (see [`Segment`](crate::Segment)) and, on Linux,
    /// its side channel (see [`ENV_SIDE`](crate::ENV_SIDE)).
    #[cfg(unix)]
    pub inherit_fds: Vec<i32>,
    /// Extra environment variables for the worker (tests use them to switch on test-only
    /// behaviour in one pool's workers).
    pub extra_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

/// Starts the worker process: the running executable (see [`sys::self_exe`]) with the
/// given arguments, the worker variables in its environment, a null stdin, and the parent's stdout
/// and stderr (as in Python). The child is not killed when the returned handle drops: the
/// caller owns its lifetime.
///
/// # Errors
///
/// [`TransportError::Io`] when the OS cannot start it.
pub fn spawn_worker(spec: &SpawnSpec) -> Result<tokio::process::Child, TransportError> {
    let program = match &spec.program {
        Some(path) => path.clone(),
        None => sys::self_exe().map_err(TransportError::io("find the running executable"))?,
    };
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&spec.args)
        .envs(spec.env.vars())
        .envs(spec.extra_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    #[cfg(unix)]
    if let Some(arg0) = std::env::args_os().next() {
        // Show the program's own name in `ps` rather than /proc/self/exe.
        command.arg0(arg0);
    }
    #[cfg(unix)]
    if !spec.inherit_fds.is_empty() {
        let fds = spec.inherit_fds.clone();
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: `fcntl` is one, and the closure only reads the
        // vector it owns (no allocation). It clears close-on-exec on these descriptors, in
        // this child only, so no other child started meanwhile inherits them.
        unsafe {
            command.pre_exec(move || {
                for fd in &fds {
                    if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let child = command
        .spawn()
        .map_err(TransportError::io("start a worker process"))?;
    #[cfg(windows)]
    if std::env::var_os(crate::ENV_NO_PDEATHSIG).is_none()
        && let Some(handle) = child.raw_handle()
        && let Err(error) = sys::kill_with_parent(handle)
    {
        // The socket lifeline still ends the worker when the parent goes; the job object only
        // makes that immediate, so a failure here is worth a note, not a refusal.
        eprintln!("offspring: cannot put worker in the parent's job object: {error}");
    }
    Ok(child)
}
