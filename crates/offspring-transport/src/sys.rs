//! Platform specifics: which executable to re-run, its fingerprint, private directories,
//! signals, and the OS's help for killing workers whose parent died.

use std::io;
use std::path::PathBuf;

/// The executable a worker is started from. On Linux `/proc/self/exe`, so that a binary
/// rebuilt or deleted on disk since the parent started cannot be run by mistake.
pub fn self_exe() -> io::Result<PathBuf> {
    if cfg!(target_os = "linux") {
        Ok(PathBuf::from("/proc/self/exe"))
    } else {
        std::env::current_exe()
    }
}

/// A string identifying the running executable's file (see `build_identity`).
pub fn executable_fingerprint() -> String {
    let Ok(path) = self_exe() else {
        return String::from("unknown executable");
    };
    match std::fs::metadata(&path) {
        Ok(meta) => fingerprint_of(&path, &meta),
        Err(_) => format!("unreadable {}", path.display()),
    }
}

#[cfg(unix)]
fn fingerprint_of(_path: &std::path::Path, meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "dev={} ino={} size={} mtime={}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

#[cfg(not(unix))]
fn fingerprint_of(path: &std::path::Path, meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "path={} size={} mtime={modified}",
        path.display(),
        meta.len()
    )
}

/// Creates a fresh directory only this user can enter, for a socket file, keeping the socket
/// path well under `sun_path`'s 104 bytes (macOS' limit).
pub fn private_dir(token: &str) -> io::Result<PathBuf> {
    let mut base = std::env::temp_dir();
    // macOS' per-user temp dir is long; fall back to /tmp when the path would not fit.
    if base.as_os_str().len() > 70 {
        base = PathBuf::from("/tmp");
    }
    let dir = base.join(format!("ofs-{token}"));
    create_private(&dir)?;
    Ok(dir)
}

#[cfg(unix)]
fn create_private(dir: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private(dir: &std::path::Path) -> io::Result<()> {
    std::fs::create_dir(dir)
}

/// Asks the OS to kill this process when its parent dies, where the OS offers that (Linux
/// `PR_SET_PDEATHSIG`), then checks the parent did not already die before it was armed.
/// Returns `false` when the parent is already gone.
///
/// The signal fires when the *thread* that started this process exits, so the parent starts
/// workers from a thread that lives as long as it does (the coordinator's).
pub fn arm_parent_death(parent_pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
        // A failure leaves the lifeline as the only way out; the check below still runs.
        let _ = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    #[cfg(unix)]
    {
        std::os::unix::process::parent_id() == parent_pid
    }
    #[cfg(not(unix))]
    {
        let _ = parent_pid;
        true
    }
}

/// Waits until `fd` can take more bytes (or reports an error or a hang-up, which the next
/// write tells apart), at most until `deadline`.
///
/// # Errors
///
/// [`io::ErrorKind::TimedOut`] when `deadline` passed first; the OS error of `poll`.
#[cfg(unix)]
pub fn wait_writable(
    fd: std::os::fd::BorrowedFd<'_>,
    deadline: Option<std::time::Instant>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                // Rounded up, so a wait shorter than a millisecond does not spin.
                libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
            }
        };
        let mut poll_fd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: `poll_fd` is one valid `pollfd`, borrowed exclusively for the call, which is
        // told its length is 1; the descriptor stays open for the call because `fd` borrows it.
        let ready = unsafe { libc::poll(&raw mut poll_fd, 1, timeout_ms) };
        match ready {
            0 => {}
            n if n > 0 => return Ok(()),
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

/// Makes Ctrl-C the parent's decision: a worker ignores SIGINT and leaves through the
/// lifeline when the parent goes.
pub fn ignore_interrupt() {
    #[cfg(unix)]
    // SAFETY: installing SIG_IGN runs no handler code in signal context; the call has no
    // memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

/// Sends the polite stop signal (SIGTERM) to a child that has not been reaped yet.
///
/// # Errors
///
/// The OS error, or `Unsupported` where there is no such signal (Windows terminates instead).
pub fn terminate(pid: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        // SAFETY: kill takes plain integers. The caller holds the child unreaped, so the pid
        // cannot have been reused by another process.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Removes `dir` when the process exits normally (returning from `main` or
/// `std::process::exit`): the parent's listener lives in a static that is never dropped, and
/// its private socket directory must not be left behind. A process killed by a signal cannot
/// clean up; its directory is empty but for the dead socket and readable by nobody else.
pub fn remove_at_exit(dir: PathBuf) {
    use std::sync::Mutex;
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let first = {
        let mut dirs = DIRS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        dirs.push(dir);
        dirs.len() == 1
    };
    if first {
        at_exit(|| {
            let dirs = DIRS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for dir in dirs.iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
        });
    }
}

/// Runs `hook` when the process exits normally (`main` returns or `std::process::exit`), in
/// the order registered. Hooks must not panic. Not run on a signal or `abort`. On platforms
/// without `atexit` the hook is never run.
pub fn at_exit(hook: fn()) {
    use std::sync::Mutex;
    static HOOKS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());
    let first = {
        let mut hooks = HOOKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hooks.push(hook);
        hooks.len() == 1
    };
    #[cfg(unix)]
    if first {
        extern "C" fn run_hooks() {
            // Taken out of the lock, so a hook that registers another cannot deadlock.
            let hooks = std::mem::take(
                &mut *HOOKS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            for hook in hooks {
                // A panic must not unwind into C.
                let _ = std::panic::catch_unwind(hook);
            }
        }
        // SAFETY: atexit only records a function pointer; `run_hooks` is a plain `extern "C"`
        // function that does not unwind (it catches panics) and touches only a static.
        unsafe {
            libc::atexit(run_hooks);
        }
    }
    #[cfg(not(unix))]
    let _ = first;
}
