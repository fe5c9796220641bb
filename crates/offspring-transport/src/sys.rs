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

/// This host's name as the OS gives it (`gethostname`; `COMPUTERNAME` on Windows), or
/// `localhost` when it gives none.
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the pointer and length describe `buf`, which outlives the call; the OS
        // writes at most `len` bytes into it.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            if let Ok(name) = std::str::from_utf8(&buf[..end])
                && !name.is_empty()
            {
                return name.to_owned();
            }
        }
        "localhost".to_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_else(|_| "localhost".to_owned())
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

/// Ends this process when its parent dies, by the fastest means the OS has, besides the
/// socket lifeline: Linux `PR_SET_PDEATHSIG` (SIGKILL), a macOS kqueue `NOTE_EXIT` watch, a
/// Windows wait on the parent's process handle (`exit_code` is the status for the last two).
/// Then checks the parent did not already die before it was armed; returns `false` when it
/// is already gone.
///
/// Linux's signal fires when the *thread* that started this process exits, so the parent
/// starts workers from a thread that lives as long as it does (the coordinator's).
pub fn arm_parent_death(parent_pid: u32, exit_code: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let _ = exit_code;
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
        // A failure leaves the lifeline as the only way out; the check below still runs.
        let _ = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    #[cfg(target_vendor = "apple")]
    watch_parent_apple(parent_pid, exit_code);
    #[cfg(windows)]
    return watch_parent_windows(parent_pid, exit_code);
    #[cfg(unix)]
    {
        std::os::unix::process::parent_id() == parent_pid
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (parent_pid, exit_code);
        true
    }
}

/// A thread that waits on a kqueue for the parent's exit (`EVFILT_PROC`, `NOTE_EXIT`) and then
/// exits this process with `exit_code`, without running exit hooks (nobody is left to read).
#[cfg(target_vendor = "apple")]
fn watch_parent_apple(parent_pid: u32, exit_code: i32) {
    let Ok(ident) = usize::try_from(parent_pid) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("offspring-parent-watch".into())
        .spawn(move || {
            // SAFETY: kqueue takes no arguments; the descriptor is checked before use.
            let kq = unsafe { libc::kqueue() };
            if kq < 0 {
                return;
            }
            let change = libc::kevent {
                ident,
                filter: libc::EVFILT_PROC,
                flags: libc::EV_ADD | libc::EV_ONESHOT,
                fflags: libc::NOTE_EXIT,
                data: 0,
                udata: std::ptr::null_mut(),
            };
            // SAFETY: all-zero is a valid `kevent` (integers and a null pointer).
            let mut event: libc::kevent = unsafe { std::mem::zeroed() };
            loop {
                // SAFETY: one change and room for one event, both pointing at live locals; a
                // null timeout blocks until the event (or a signal).
                let n = unsafe { libc::kevent(kq, &change, 1, &mut event, 1, std::ptr::null()) };
                if n > 0
                    || (n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH))
                {
                    // SAFETY: _exit ends the process at once; it has no preconditions.
                    unsafe { libc::_exit(exit_code) };
                }
                if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    return;
                }
            }
        });
    drop(spawned);
}

/// A thread that waits on the parent's process handle and exits this process with
/// `exit_code` when the parent is gone (the parent's job object normally kills the worker
/// first). Returns `false` when the parent is already gone.
#[cfg(windows)]
fn watch_parent_windows(parent_pid: u32, exit_code: i32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, WAIT_OBJECT_0};
    use windows_sys::Win32::System::Threading::{
        INFINITE, OpenProcess, PROCESS_SYNCHRONIZE, WaitForSingleObject,
    };
    // SAFETY: OpenProcess takes plain integers; the handle is checked before use.
    let handle = unsafe { OpenProcess(PROCESS_SYNCHRONIZE, 0, parent_pid) };
    if handle.is_null() {
        // Gone already (or not ours to watch): the socket lifeline decides.
        return io::Error::last_os_error().raw_os_error() != Some(87);
    }
    let handle = handle as usize;
    let spawned = std::thread::Builder::new()
        .name("offspring-parent-watch".into())
        .spawn(move || {
            let handle = handle as windows_sys::Win32::Foundation::HANDLE;
            // SAFETY: `handle` is the open process handle from above, owned by this thread.
            let waited = unsafe { WaitForSingleObject(handle, INFINITE) };
            // SAFETY: closing the handle this thread owns, once.
            unsafe { CloseHandle(handle) };
            if waited == WAIT_OBJECT_0 {
                std::process::exit(exit_code);
            }
        });
    drop(spawned);
    true
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
    match poll_one(fd, libc::POLLOUT, deadline)? {
        Some(_) => Ok(()),
        None => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Waits until `fd` has one of `events` (or an error or a hang-up), at most until `deadline`
/// (a deadline already past looks once): what it has, or `None` when the deadline came first.
///
/// # Errors
///
/// The OS error of `poll`.
#[cfg(unix)]
pub fn poll_one(
    fd: std::os::fd::BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<std::time::Instant>,
) -> io::Result<Option<libc::c_short>> {
    use std::os::fd::AsRawFd as _;
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                // Rounded up, so a wait shorter than a millisecond does not spin.
                libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
            }
        };
        let mut poll_fd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: `poll_fd` is one valid `pollfd`, borrowed exclusively for the call, which is
        // told its length is 1; the descriptor stays open for the call because `fd` borrows it.
        let ready = unsafe { libc::poll(&raw mut poll_fd, 1, timeout_ms) };
        match ready {
            0 if timeout_ms == 0 => return Ok(None),
            // Rounded up to whole milliseconds: look at the clock again.
            0 => {}
            n if n > 0 => return Ok(Some(poll_fd.revents)),
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
    #[cfg(windows)]
    // SAFETY: a null handler with TRUE makes this process ignore Ctrl-C; no memory is passed.
    unsafe {
        windows_sys::Win32::System::Console::SetConsoleCtrlHandler(None, 1);
    }
}

/// The exit code a Windows worker ends with when its parent kills it (`kill`, a task
/// timeout), so it cannot be told apart from a task's own `exit(1)` no longer: Windows has no
/// signals, and `TerminateProcess` takes the code to leave. Chosen far from codes programs
/// use; its low byte is SIGKILL's number.
pub const EXIT_KILLED: u32 = 0x0FF5_0009;

/// As [`EXIT_KILLED`], for `terminate` (its low byte is SIGTERM's number).
pub const EXIT_TERMINATED: u32 = 0x0FF5_000F;

/// Ends a Windows child with `code` (see [`EXIT_KILLED`]).
///
/// # Errors
///
/// The OS error of `TerminateProcess`.
#[cfg(windows)]
pub fn terminate_with(process: std::os::windows::io::RawHandle, code: u32) -> io::Result<()> {
    use windows_sys::Win32::System::Threading::TerminateProcess;
    // SAFETY: `process` is the handle of a child the caller owns and has not reaped (tokio
    // keeps it open until the child is waited for), so it names that process; the call only
    // reads the handle and the code.
    let done = unsafe { TerminateProcess(process as _, code) };
    if done == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Ends this process the way a C program's `exit` does, so the handlers registered with
/// `atexit` run (a task's own, and [`at_exit`]'s). On Unix that is what
/// `std::process::exit` does already; on Windows `std::process::exit` is `ExitProcess`, which
/// skips them, so this calls the C runtime's `exit`.
pub fn exit(code: i32) -> ! {
    #[cfg(windows)]
    {
        // SAFETY: the C runtime's `exit` runs the `atexit` handlers (offspring's catch every
        // panic, so nothing unwinds into C), flushes C streams and ends the process; it never
        // returns. The worker calls it once, from its task thread, after its last report.
        unsafe { libc::exit(code) }
    }
    #[cfg(not(windows))]
    std::process::exit(code)
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
    at_exit(move || {
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A hook run at exit.
type ExitHook = Box<dyn FnOnce() + Send>;

/// Runs `hook` when the process exits normally (`main` returns or `std::process::exit`), in
/// the order registered. Not run on a signal or `abort`, nor on Windows by
/// `std::process::exit` (`ExitProcess` runs no exit hooks there); on platforms without
/// `atexit`, never. A hook that panics is caught and the rest still run.
pub fn at_exit(hook: impl FnOnce() + Send + 'static) {
    use std::sync::Mutex;
    static HOOKS: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());
    let first = {
        let mut hooks = HOOKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hooks.push(Box::new(hook));
        hooks.len() == 1
    };
    #[cfg(any(unix, windows))]
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
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
            }
        }
        // SAFETY: atexit only records a function pointer; `run_hooks` is a plain `extern "C"`
        // function that does not unwind (it catches panics) and touches only a static.
        unsafe {
            libc::atexit(run_hooks);
        }
    }
    #[cfg(not(any(unix, windows)))]
    let _ = first;
}

/// Puts a worker process in the parent's job object, created on first use with
/// `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`: when the parent exits or is killed, Windows closes its
/// last handle to the job and kills every worker in it at once.
///
/// # Errors
///
/// The OS error of creating, configuring or assigning the job.
#[cfg(windows)]
pub fn kill_with_parent(process: std::os::windows::io::RawHandle) -> io::Result<()> {
    use std::sync::OnceLock;

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject,
    };

    /// The job's handle, kept open for the life of the process (closing it would kill the
    /// workers); stored as an integer because raw handles are not `Sync`.
    static JOB: OnceLock<Result<usize, i32>> = OnceLock::new();
    let job = JOB.get_or_init(|| {
        // SAFETY: null attributes and a null name ask for an unnamed job with default
        // security; the returned handle is checked before use.
        let job: HANDLE = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if job.is_null() {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1));
        }
        // SAFETY: all-zero is a valid JOBOBJECT_EXTENDED_LIMIT_INFORMATION (plain integers).
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: `job` is a valid job handle; the pointer and length describe `info`, which
        // outlives the call.
        let ok = unsafe {
            SetInformationJobObject(
                job,
                JobObjectExtendedLimitInformation,
                std::ptr::from_ref(&info).cast(),
                u32::try_from(std::mem::size_of_val(&info)).unwrap_or(u32::MAX),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1));
        }
        Ok(job as usize)
    });
    let job = match job {
        Ok(job) => *job as HANDLE,
        Err(code) => return Err(io::Error::from_raw_os_error(*code)),
    };
    // SAFETY: `job` stays open for the process's life and `process` is the live handle of a
    // child the caller just started (it owns it and has not closed it).
    if unsafe { AssignProcessToJobObject(job, process.cast()) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
