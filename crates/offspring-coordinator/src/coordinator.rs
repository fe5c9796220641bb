//! The coordinator's runtime, its listener, and starting a worker:
//!
//! 1. **spawn**: pick a worker id and a one-time secret, register them as pending, start the
//!    child from the coordinator's thread with both in its environment;
//! 2. **connect**: the child dials the listener; the accept loop runs the handshake (bounded by
//!    [`HANDSHAKE_TIMEOUT`]) against the pending entry, checking the peer pid where the OS
//!    reports it;
//! 3. **ready**: the authenticated connection is handed to the waiting spawn, which builds the
//!    worker's actor ([`crate::worker`]). A child that exits or does not connect within the
//!    deadline makes the spawn fail instead: never a hang.
//!
//! Strangers (no secret, garbage, silence) are dropped after at most [`HANDSHAKE_TIMEOUT`]
//! each, in tasks of their own, so they never delay a real worker. At most
//! [`MAX_STRANGERS`] of them are handled at once: beyond that, a new connection is closed as
//! soon as it is accepted, so no crowd can take the parent's descriptors or memory. A real
//! worker is never counted among them: the coordinator knows the pid of every child it is
//! waiting for, and the OS reports the pid of the peer (where it does not, a connection is
//! let past a full cap while a spawn is waiting, since it may be that worker).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use offspring_transport::{
    Authed, BuildIdentity, Expected, HandshakeError, Listener, Secret, Segment, SpawnSpec,
    WorkerEnv, accept_handshake, spawn_worker,
};
use offspring_wire::ring::RingReader;
use offspring_wire::{SegmentRef, WorkerConfig};
use tokio::sync::oneshot;

use crate::logs::LogCounts;
use crate::trace::{Timeline, Timelines};
use crate::worker::Observers;
use crate::{Registry, SpawnError, WorkerHandle, worker};

/// How long an accepted connection may take to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many connections from unknown peers may be in their handshake at once. Each holds a
/// descriptor and a read buffer for at most [`HANDSHAKE_TIMEOUT`].
pub const MAX_STRANGERS: usize = 256;

/// Rejections of strangers are logged at most this often; the rest are counted into the next
/// warning, so a crowd cannot flood the parent's logs either.
const REJECT_LOG_PERIOD: Duration = Duration::from_secs(1);

/// How long a started child may take to connect, unless configured otherwise. Generous: a
/// process start under Wine or on a loaded machine takes a while.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the coordinator needs to know once, at start.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// This build's identity, compared with every worker's.
    pub identity: BuildIdentity,
    /// The log filter handed to workers (`RUST_LOG` syntax). `None`: the most verbose level
    /// the parent's subscriber wants, read at each worker's start, so a worker never sends
    /// what the parent would discard.
    pub log_filter: Option<String>,
}

/// Selects TCP on the loopback for the workers this process starts as its own children
/// (`OFFSPRING_TRANSPORT=tcp`): the path remote workers take (sealed frames, heartbeats, no
/// peer pid), exercised on one machine. Shared memory is still used: they are local.
pub const ENV_TRANSPORT: &str = "OFFSPRING_TRANSPORT";

/// Where the parent listens for workers on other machines (`host:port`, `[v6]:port`; port 0
/// for any free one), unless a pool's `listen` option says. The host is also what workers
/// are told to dial, unless it is unspecified (`0.0.0.0`, `::`): then they dial this host's
/// name. Default `0.0.0.0:0`.
pub const ENV_LISTEN: &str = "OFFSPRING_LISTEN";

/// How a worker that is not this process's own child is started (for example as a Slurm
/// step on another node). Implemented by the facade's launchers.
pub trait Launch: Send + Sync + std::fmt::Debug {
    /// A short name for messages (`slurm`).
    fn name(&self) -> &str;

    /// The command that starts `program` with `args` as one worker, wherever the launcher
    /// puts it. The caller adds the worker's variables (its secret included) to the
    /// command's environment; a launcher must carry them to the worker through its
    /// environment, never on a command line. The process the command starts stands for the
    /// worker here: it is killed to kill the worker, and its exit is taken as the worker's.
    ///
    /// # Errors
    ///
    /// Why no worker can be started this way (for example no allocation could be had).
    fn command(
        &self,
        program: &std::path::Path,
        args: &[std::ffi::OsString],
    ) -> std::io::Result<std::process::Command>;

    /// What it usually means that the launcher's process ended with `status` before the
    /// worker connected, for the error.
    fn early_exit_hint(
        &self,
        program: &std::path::Path,
        status: std::process::ExitStatus,
    ) -> String;
}

/// Per-spawn options.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// Start the worker through this launcher, over TCP, instead of as a local child.
    pub launch: Option<Arc<dyn Launch>>,
    /// Where to listen for TCP workers (see [`ENV_LISTEN`]); used by the first spawn that
    /// needs the TCP listener.
    pub listen: Option<String>,
    /// Run this program instead of the running executable (for tests).
    pub program: Option<PathBuf>,
    /// Deadline for the child to connect; [`DEFAULT_CONNECT_TIMEOUT`] when `None`.
    pub connect_timeout: Option<Duration>,
    /// Arguments for the worker process (see `offspring_transport::SpawnSpec::args`).
    pub args: Vec<std::ffi::OsString>,
    /// A timeline to record the worker in, besides the process's (`OFFSPRING_TRACE`).
    pub timeline: Option<Arc<Timeline>>,
    /// Where to count the worker's forwarded and dropped log records.
    pub logs: Option<Arc<LogCounts>>,
    /// Give the worker no outcome segment (see `offspring_wire::ring`): its calls report in
    /// frames, the path workers on other machines take (tests keep it exercised).
    pub frames_only: bool,
    /// Extra environment variables for the worker (test-only switches).
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// How many calls of an async task the worker runs at once; 0 means 1.
    pub async_concurrency: u32,
    /// The pool's task timeout, after which the worker cancels an async call.
    pub task_timeout: Option<Duration>,
}

/// The size of a worker's segment: its outcome ring (a header page and about 64 KiB) and, on
/// Linux, the two arenas of large payloads (`offspring_wire::arena`). Its pages cost nothing
/// until written. Windows and macOS have no arenas: neither can give the pages of a shared
/// mapping back while it is mapped (a pagefile-backed view; an `shm_open` object, which
/// `MADV_DONTNEED` does not free), so a worker that once moved 64 MiB would keep 130 MiB for
/// its life (`docs/platforms.md`).
pub const SEGMENT_BYTES: usize = if cfg!(target_os = "linux") {
    offspring_wire::arena::SEGMENT_WORDS * 8
} else {
    offspring_wire::arena::RING_WORDS * 8
};

/// A fresh outcome segment and its reader, or `None` (the worker then reports in frames)
/// when the OS will not make one.
fn make_ring(wanted: bool) -> Option<(Segment, RingReader)> {
    if !wanted {
        return None;
    }
    let segment = Segment::create(SEGMENT_BYTES)
        .map_err(|e| tracing::debug!(target: "offspring", error = %e, "no outcome segment; the worker reports in frames"))
        .ok()?;
    let reader = RingReader::init(offspring_wire::arena::parts(segment.words()).ring)?;
    Some((segment, reader))
}

/// How the child finds its segment: the descriptor it inherited, or a handle duplicated
/// into it.
fn segment_ref(segment: &Segment, child: &tokio::process::Child) -> Option<SegmentRef> {
    let len = segment.len() as u64;
    #[cfg(unix)]
    {
        let _ = child;
        segment
            .inheritable_fd()
            .and_then(|fd| u64::try_from(fd).ok())
            .map(|handle| SegmentRef { handle, len })
    }
    #[cfg(windows)]
    {
        let process = child.raw_handle()?;
        segment
            .duplicate_into(process)
            .map_err(|e| tracing::debug!(target: "offspring", error = %e, "cannot hand the outcome segment to the worker"))
            .ok()
            .map(|handle| SegmentRef { handle, len })
    }
}

type Ready = oneshot::Sender<Result<Authed, HandshakeError>>;

struct Pending {
    secret: Secret,
    pid: Option<u32>,
    /// The outcome segment made for the worker, as its config names it.
    segment: Option<SegmentRef>,
    /// Whether the worker times its calls (for a timeline).
    time_calls: bool,
    /// How many async calls the worker runs at once.
    async_concurrency: u32,
    /// After how long the worker cancels an async call, in milliseconds.
    task_timeout_ms: Option<u64>,
    ready: Option<Ready>,
}

struct CoordinatorState {
    config: CoordinatorConfig,
    /// The TCP listener's endpoint, once bound (by the first spawn that needs one), and
    /// the address it was asked for.
    tcp: tokio::sync::Mutex<Option<(String, offspring_transport::Endpoint)>>,
    /// Local children dial TCP on the loopback (`OFFSPRING_TRANSPORT=tcp`).
    local_tcp: bool,
    timeline: Option<Arc<Timeline>>,
    registry: Arc<Registry>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_worker: AtomicU64,
    next_task: AtomicU64,
    /// Connections from unknown peers in their handshake now (at most [`MAX_STRANGERS`]).
    strangers: AtomicUsize,
    rejections: Mutex<Rejections>,
    /// Pids of the workers started and not yet reaped (`active_children`).
    live: Mutex<Vec<u32>>,
}

/// Strangers refused since the last warning, and when that was.
#[derive(Default)]
struct Rejections {
    unlogged: u64,
    last_warning: Option<std::time::Instant>,
}

/// One of the [`MAX_STRANGERS`] places of local connections, given back when the handshake
/// ends either way. (TCP handshakes are bounded by `tcp_accept_loop`'s own list.)
struct StrangerPlace(Arc<CoordinatorState>);

impl Drop for StrangerPlace {
    fn drop(&mut self) {
        self.0.strangers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The parent's coordinator. One per process, started on first use and never stopped: its
/// thread and runtime end with the process.
pub struct Coordinator {
    runtime: tokio::runtime::Runtime,
    shared: Arc<CoordinatorState>,
    endpoint: offspring_transport::Endpoint,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Result<Coordinator, SpawnError>> = OnceLock::new();

impl Coordinator {
    /// The process's coordinator, started with `config()` on first use.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Coordinator`] when the runtime or listener could not be created; the
    /// error is remembered and returned to every later caller.
    pub fn global(config: impl FnOnce() -> CoordinatorConfig) -> Result<&'static Self, SpawnError> {
        GLOBAL
            .get_or_init(|| Self::start(config()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The process's coordinator if it has been started (none until a first worker or
    /// primitive needs it).
    pub fn started() -> Option<&'static Self> {
        GLOBAL.get().and_then(|started| started.as_ref().ok())
    }

    fn start(config: CoordinatorConfig) -> Result<Self, SpawnError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("offspring-coordinator")
            .enable_all()
            .build()
            .map_err(|e| SpawnError::Coordinator(e.to_string()))?;
        let listener = {
            let _entered = runtime.enter();
            Listener::bind().map_err(|e| SpawnError::Coordinator(e.to_string()))?
        };
        let endpoint = listener.endpoint().clone();
        let shared = Arc::new(CoordinatorState {
            config,
            tcp: tokio::sync::Mutex::new(None),
            local_tcp: std::env::var(ENV_TRANSPORT).is_ok_and(|v| v == "tcp"),
            timeline: crate::trace::from_env(),
            registry: Arc::new(Registry::new(runtime.handle().clone())),
            pending: Mutex::new(HashMap::new()),
            next_worker: AtomicU64::new(1),
            next_task: AtomicU64::new(1),
            strangers: AtomicUsize::new(0),
            rejections: Mutex::new(Rejections::default()),
            live: Mutex::new(Vec::new()),
        });
        runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(target: "offspring", endpoint = ?endpoint, "coordinator started");
        Ok(Self {
            runtime,
            shared,
            endpoint,
        })
    }

    /// The table of cross-process primitives.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.shared.registry
    }

    /// The endpoint local workers connect to.
    pub fn endpoint(&self) -> &offspring_transport::Endpoint {
        &self.endpoint
    }

    /// The TCP endpoint remote workers connect to, binding it on first use at `listen` (or
    /// [`ENV_LISTEN`], or `0.0.0.0:0`).
    ///
    /// # Errors
    ///
    /// [`SpawnError::Coordinator`] when the address cannot be bound, or differs from the
    /// one this process already listens on.
    pub fn tcp_endpoint(
        &self,
        listen: Option<&str>,
    ) -> Result<offspring_transport::Endpoint, SpawnError> {
        let shared = Arc::clone(&self.shared);
        let listen = listen.map(str::to_owned);
        self.runtime
            .block_on(async move { tcp_endpoint(&shared, listen.as_deref()).await })
    }

    /// The process's timeline (`OFFSPRING_TRACE`), if one is being recorded.
    pub fn timeline(&self) -> Option<&Arc<Timeline>> {
        self.shared.timeline.as_ref()
    }

    /// A fresh task id, unique in this parent.
    pub fn next_task_id(&self) -> u64 {
        self.shared.next_task.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts one worker from inside the coordinator's runtime (for the pool's actor).
    pub fn spawn_worker_async(
        &self,
        options: SpawnOptions,
    ) -> impl std::future::Future<Output = Result<WorkerHandle, SpawnError>> + Send + 'static {
        spawn_async(
            Arc::clone(&self.shared),
            self.endpoint.clone(),
            options,
            self.runtime.handle().clone(),
        )
    }

    /// Pids of the workers this process started that have not been reaped yet (pool workers
    /// and processes alike), oldest first.
    pub fn live_workers(&self) -> Vec<u32> {
        lock(&self.shared.live).clone()
    }

    /// The coordinator's runtime, for actors that live on it.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// Starts one worker and waits until it has authenticated, or failed to. Blocks the
    /// calling thread (never a runtime's: the wait is a plain channel).
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] saying why no worker could be had.
    pub fn spawn_worker(&self, options: SpawnOptions) -> Result<WorkerHandle, SpawnError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = Arc::clone(&self.shared);
        let endpoint = self.endpoint.clone();
        let handle = self.runtime.handle().clone();
        self.runtime.spawn(async move {
            let result = spawn_async(shared, endpoint, options, handle).await;
            // The caller may have gone (it cannot, it blocks below); ignore a closed channel.
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(SpawnError::Coordinator(
                "the coordinator stopped while starting a worker".into(),
            ))
        })
    }
}

/// How often a start the OS refused for a transient reason is tried again, and the first
/// pause (doubled each time: 10 ms to 160 ms, 310 ms in all).
const SPAWN_RETRIES: u32 = 5;
const SPAWN_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Starts the process, trying again a few times when the OS refuses for want of a resource
/// that may be back in a moment (see [`offspring_transport::TransportError::is_transient`]):
/// a hundred `Process::spawn` at once can briefly fill the process table.
async fn spawn_retrying(
    spec: &SpawnSpec,
) -> Result<tokio::process::Child, offspring_transport::TransportError> {
    let mut pause = SPAWN_RETRY_PAUSE;
    let mut tries = 0;
    loop {
        match spawn_worker(spec) {
            Err(error) if error.is_transient() && tries < SPAWN_RETRIES => {
                tries += 1;
                tracing::warn!(%error, tries, "the OS refused to start a worker for now; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            other => return other,
        }
    }
}

/// The TCP listener's endpoint, bound (and its accept loop started) on first use.
async fn tcp_endpoint(
    shared: &Arc<CoordinatorState>,
    listen: Option<&str>,
) -> Result<offspring_transport::Endpoint, SpawnError> {
    let mut tcp = shared.tcp.lock().await;
    if let Some((bound, endpoint)) = &*tcp {
        return match listen {
            Some(wanted) if wanted != bound => Err(SpawnError::Coordinator(format!(
                "this process already listens for workers on {bound}, not {wanted}: one address per process"
            ))),
            _ => Ok(endpoint.clone()),
        };
    }
    let from_env = std::env::var(ENV_LISTEN).ok();
    let wanted = listen
        .map(str::to_owned)
        .or(from_env)
        .unwrap_or_else(|| "0.0.0.0:0".to_owned());
    let (bind, advertise) = listen_address(&wanted).await?;
    let listener = Listener::bind_tcp(bind, &advertise)
        .await
        .map_err(|e| SpawnError::Coordinator(format!("listen on {wanted}: {e}")))?;
    let endpoint = listener.endpoint().clone();
    // The digest remote workers prove (the executable's bytes), once, off the runtime's
    // thread and before any handshake needs it.
    let identity = shared.config.identity;
    let _ = tokio::task::spawn_blocking(move || identity.portable()).await;
    tracing::info!(target: "offspring", listen = %wanted, endpoint = ?endpoint, "listening for workers over TCP");
    tokio::spawn(tcp_accept_loop(listener, Arc::clone(shared)));
    *tcp = Some((wanted, endpoint.clone()));
    Ok(endpoint)
}

/// The address to bind for `wanted` (`host:port`) and the host name workers should dial.
async fn listen_address(wanted: &str) -> Result<(std::net::SocketAddr, String), SpawnError> {
    let bad = |why: String| SpawnError::Coordinator(format!("listen address {wanted:?}: {why}"));
    let (host, _) = wanted
        .rsplit_once(':')
        .ok_or_else(|| bad("not host:port".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let bind = tokio::net::lookup_host(wanted)
        .await
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address".into()))?;
    let advertise = if bind.ip().is_unspecified() {
        offspring_transport::sys::hostname()
    } else {
        host.to_owned()
    };
    Ok((bind, advertise))
}

async fn spawn_async(
    shared: Arc<CoordinatorState>,
    endpoint: offspring_transport::Endpoint,
    mut options: SpawnOptions,
    handle: tokio::runtime::Handle,
) -> Result<WorkerHandle, SpawnError> {
    let launch = options.launch.take();
    let endpoint = if launch.is_some() {
        tcp_endpoint(&shared, options.listen.as_deref()).await?
    } else if shared.local_tcp {
        tcp_endpoint(&shared, Some("127.0.0.1:0")).await?
    } else {
        endpoint
    };
    if launch.is_some() {
        // Its outcome ring and arenas would live in this machine's memory.
        options.frames_only = true;
    }
    let began = std::time::Instant::now();
    let worker_id = shared.next_worker.fetch_add(1, Ordering::Relaxed);
    let secret = Secret::generate().map_err(|e| SpawnError::Io(e.to_string()))?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let observers = Observers {
        worker_id,
        began,
        timelines: Timelines::new(shared.timeline.as_ref(), options.timeline.as_ref()),
        logs: options.logs,
    };
    lock(&shared.pending).insert(
        worker_id,
        Pending {
            secret: secret.clone(),
            pid: None,
            segment: None,
            // Only a timeline uses a call's times.
            time_calls: !observers.timelines.is_empty(),
            async_concurrency: options.async_concurrency.max(1),
            task_timeout_ms: options
                .task_timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)),
            ready: Some(ready_tx),
        },
    );
    let ring = make_ring(!options.frames_only);
    // The worker's side channel, on which direct pipes' ends go down to it: its end is
    // inherited, ours kept by the registry once it connected.
    #[cfg(target_os = "linux")]
    let side = if launch.is_none() {
        offspring_transport::channel::Channel::pair()
            .map_err(|e| tracing::debug!(target: "offspring", error = %e, "no side channel; the worker's pipes go through the parent"))
            .ok()
    } else {
        None
    };
    #[cfg(target_os = "linux")]
    let side_fd = side.as_ref().map(|(_, theirs)| theirs.raw_fd());
    #[cfg(not(target_os = "linux"))]
    let side_fd = None;
    let spec = SpawnSpec {
        env: WorkerEnv {
            endpoint,
            worker_id,
            secret,
            parent_pid: std::process::id(),
            remote: launch.is_some(),
            side: side_fd,
        },
        program: options.program,
        args: options.args,
        #[cfg(unix)]
        inherit_fds: ring
            .as_ref()
            .and_then(|(segment, _)| segment.inheritable_fd())
            .into_iter()
            .chain(side_fd)
            .collect(),
        extra_env: options.env,
    };
    let forget = |shared: &CoordinatorState| lock(&shared.pending).remove(&worker_id);
    let started = match &launch {
        Some(launch) => start_launched(launch.as_ref(), &spec),
        None => spawn_retrying(&spec).await,
    };
    let mut child = match started {
        Ok(child) => child,
        Err(e) => {
            forget(&shared);
            return Err(SpawnError::Io(e.to_string()));
        }
    };
    let pid = child.id().unwrap_or_default();
    // The child has its copy of its end; ours is kept until it connected.
    #[cfg(target_os = "linux")]
    let side = side.map(|(ours, _theirs)| ours);
    lock(&shared.live).push(pid);
    let gone = move |shared: &CoordinatorState| lock(&shared.live).retain(|p| *p != pid);
    let segment = ring
        .as_ref()
        .and_then(|(segment, _)| segment_ref(segment, &child));
    if let Some(entry) = lock(&shared.pending).get_mut(&worker_id) {
        // A launched worker's pid is not its launcher's process's: nothing to check.
        entry.pid = launch.is_none().then_some(pid);
        entry.segment = segment;
    }
    let deadline = options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let outcome = tokio::select! {
        ready = ready_rx => match ready {
            Ok(Ok(authed)) => Ok(authed),
            Ok(Err(e)) => Err(SpawnError::Refused { pid, reason: e.to_string() }),
            Err(_) => Err(SpawnError::Coordinator("the accept loop stopped".into())),
        },
        status = child.wait() => match status {
            Ok(status) => Err(match &launch {
                Some(launch) => SpawnError::LaunchEnded {
                    launcher: launch.name().to_owned(),
                    pid,
                    status,
                    hint: launch.early_exit_hint(&launch_program(&spec), status),
                },
                None => SpawnError::ExitedEarly { pid, status },
            }),
            Err(e) => Err(SpawnError::Io(e.to_string())),
        },
        () = tokio::time::sleep(deadline) => Err(SpawnError::ConnectTimedOut { pid, after: deadline }),
    };
    forget(&shared);
    match outcome {
        Ok(authed) => {
            tracing::debug!(target: "offspring", worker_pid = pid, worker_id = worker_id, "worker connected");
            #[cfg(target_os = "linux")]
            let side = match side {
                Some(side) => {
                    let kept = shared.registry.set_side(pid, side);
                    if kept.is_none() {
                        // The worker will send its operations there: it cannot be served.
                        tracing::warn!(target: "offspring", worker_pid = pid, "cannot keep the worker's side channel; killing the worker");
                        let _ = child.start_kill();
                    }
                    kept
                }
                None => None,
            };
            #[cfg(not(target_os = "linux"))]
            let side = None;
            // A local worker's direct pipe ends are duplicated into its process.
            #[cfg(windows)]
            if launch.is_none()
                && let Some(process) = child.raw_handle()
            {
                shared.registry.set_process(pid, process);
            }
            let worker = worker::start(
                pid,
                child,
                authed.conn,
                &handle,
                Arc::clone(&shared.registry),
                observers,
                worker::Local {
                    ring: ring.filter(|_| segment.is_some()),
                    side,
                },
            );
            let watched = worker.clone();
            handle.spawn(async move {
                watched.exited().await;
                gone(&shared);
            });
            Ok(worker)
        }
        Err(e) => {
            // A child that is refused or late must not linger: kill and reap it here.
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            gone(&shared);
            Err(e)
        }
    }
}

/// The program a launcher starts: the running executable's real path (a node resolves no
/// `/proc/self/exe` of ours), or the test's program.
fn launch_program(spec: &SpawnSpec) -> PathBuf {
    spec.program
        .clone()
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("offspring-worker"))
}

/// Starts a worker through `launch`: its command, with the worker's variables in the
/// environment (never on the command line), stdin closed, stdout and stderr inherited.
fn start_launched(
    launch: &dyn Launch,
    spec: &SpawnSpec,
) -> Result<tokio::process::Child, offspring_transport::TransportError> {
    let program = launch_program(spec);
    let mut command = launch.command(&program, &spec.args).map_err(|source| {
        offspring_transport::TransportError::Io {
            what: "prepare the launcher's command",
            source,
        }
    })?;
    command
        .envs(spec.env.vars())
        .envs(spec.extra_env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null());
    tokio::process::Command::from(command)
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| offspring_transport::TransportError::Io {
            what: "start the launcher's process",
            source,
        })
}

/// Accepts TCP connections. No peer pid tells an awaited worker from a stranger here, so
/// every connection takes one of [`MAX_STRANGERS`] places for its handshake; when all are
/// taken, the oldest handshake is ended to make room. A crowd holding every place is pushed
/// out by newcomers, so a real worker (whose handshake takes milliseconds) gets in unless
/// strangers arrive faster than it can finish; it also dials again until its deadline.
async fn tcp_accept_loop(listener: Listener, shared: Arc<CoordinatorState>) {
    let mut handshakes: std::collections::VecDeque<oneshot::Sender<()>> =
        std::collections::VecDeque::new();
    loop {
        match listener.accept().await {
            Ok(conn) => {
                handshakes.retain(|ended| !ended.is_closed());
                if handshakes.len() >= MAX_STRANGERS
                    && let Some(oldest) = handshakes.pop_front()
                {
                    drop(oldest);
                    log_rejection(
                        &shared,
                        None,
                        &format_args!(
                            "{MAX_STRANGERS} unauthenticated TCP connections are open: the oldest was closed"
                        ),
                    );
                }
                let (end, ended) = oneshot::channel::<()>();
                handshakes.push_back(end);
                let handshake = authenticate(conn, Arc::clone(&shared), None);
                tokio::spawn(async move {
                    tokio::select! {
                        () = handshake => {}
                        _ = ended => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!(target: "offspring", error = %e, "accepting a TCP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_loop(listener: Listener, shared: Arc<CoordinatorState>) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                if expected(&shared, conn.peer_pid) {
                    tokio::spawn(authenticate(conn, Arc::clone(&shared), None));
                } else if let Some(place) = stranger_place(&shared) {
                    tokio::spawn(authenticate(conn, Arc::clone(&shared), Some(place)));
                } else if conn.peer_pid.is_none() && awaiting_connection(&shared) {
                    // No peer pid to tell a stranger from the worker being waited for: let it
                    // past the full cap rather than refuse a real worker.
                    tokio::spawn(authenticate(conn, Arc::clone(&shared), None));
                } else {
                    // Closing it now is the point: the cap keeps a crowd from holding more.
                    let peer = conn.peer_pid;
                    drop(conn);
                    log_rejection(
                        &shared,
                        peer,
                        &format_args!("{MAX_STRANGERS} unauthenticated connections are open"),
                    );
                }
            }
            Err(e) => {
                // Accept errors are transient (for example out of descriptors); back off
                // briefly so a persistent one does not spin the coordinator's thread.
                tracing::warn!(target: "offspring", error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Whether `peer` is a child the coordinator started and is waiting for.
fn expected(shared: &CoordinatorState, peer: Option<u32>) -> bool {
    peer.is_some_and(|pid| {
        lock(&shared.pending)
            .values()
            .any(|p| p.pid == Some(pid) && p.ready.is_some())
    })
}

/// Whether any started child has yet to connect.
fn awaiting_connection(shared: &CoordinatorState) -> bool {
    lock(&shared.pending).values().any(|p| p.ready.is_some())
}

/// Takes a place for a stranger's handshake, if one of the [`MAX_STRANGERS`] is free.
fn stranger_place(shared: &Arc<CoordinatorState>) -> Option<StrangerPlace> {
    shared
        .strangers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_STRANGERS).then_some(n + 1)
        })
        .ok()
        .map(|_| StrangerPlace(Arc::clone(shared)))
}

/// Logs a refused connection: a warning at most once per [`REJECT_LOG_PERIOD`], counting the
/// refusals since the last one, and the rest at debug level.
fn log_rejection(shared: &CoordinatorState, peer: Option<u32>, reason: &dyn std::fmt::Display) {
    let mut rejections = lock(&shared.rejections);
    rejections.unlogged += 1;
    let due = rejections
        .last_warning
        .is_none_or(|last| last.elapsed() >= REJECT_LOG_PERIOD);
    if due {
        tracing::warn!(target: "offspring", peer_pid = ?peer, error = %reason, refused = rejections.unlogged, "rejected a connection (refused counts those since the last warning)");
        rejections.unlogged = 0;
        rejections.last_warning = Some(std::time::Instant::now());
    } else {
        tracing::debug!(target: "offspring", peer_pid = ?peer, error = %reason, "rejected a connection");
    }
}

/// Runs the parent's side of the handshake on an accepted connection. `_place` is the
/// stranger's place under the local cap, held until the handshake ends; `None` for a peer
/// whose pid is one the coordinator waits for, and for TCP (bounded by its accept loop).
async fn authenticate(
    conn: offspring_transport::Conn,
    shared: Arc<CoordinatorState>,
    _place: Option<StrangerPlace>,
) {
    let peer = conn.peer_pid;
    let lookup_shared = Arc::clone(&shared);
    let mut claimed = None;
    let lookup = |id: u64| {
        claimed = Some(id);
        // A worker's credentials serve one connection: once a connection proved them, the
        // entry no longer answers (it is gone once the spawn took the connection).
        lock(&lookup_shared.pending)
            .get(&id)
            .filter(|p| p.ready.is_some())
            .map(|p| Expected {
                secret: p.secret.clone(),
                pid: p.pid,
                segment: p.segment,
                time_calls: p.time_calls,
                async_concurrency: p.async_concurrency,
                task_timeout_ms: p.task_timeout_ms,
            })
    };
    let config = WorkerConfig {
        log_filter: shared
            .config
            .log_filter
            .clone()
            .unwrap_or_else(|| tracing::level_filters::LevelFilter::current().to_string()),
        segment: None,
        time_calls: false,
        async_concurrency: 1,
        task_timeout_ms: None,
    };
    let result = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept_handshake(conn, lookup, &shared.config.identity, config),
    )
    .await
    .unwrap_or(Err(HandshakeError::TimedOut));
    match result {
        Ok(authed) => {
            let ready = lock(&shared.pending)
                .get_mut(&authed.hello.worker_id)
                .and_then(|p| p.ready.take());
            if let Some(ready) = ready {
                let _ = ready.send(Ok(authed));
            }
        }
        Err(e) => {
            log_rejection(&shared, peer, &e);
            // Only a peer that proved the secret may fail its spawn with the reason; anyone
            // else could otherwise cancel a real worker's start by naming its id.
            if let (HandshakeError::Mismatch(_), Some(id)) = (&e, claimed) {
                let ready = lock(&shared.pending)
                    .get_mut(&id)
                    .and_then(|p| p.ready.take());
                if let Some(ready) = ready {
                    let _ = ready.send(Err(e));
                }
            }
        }
    }
}

/// Waits on `condvar` while `waiting` holds, for at most `timeout` (without limit when
/// `None`), recovering from poisoning as every lock here does. The caller re-checks the state.
pub fn wait_for<'a, T>(
    condvar: &Condvar,
    guard: std::sync::MutexGuard<'a, T>,
    timeout: Option<Duration>,
    waiting: impl FnMut(&mut T) -> bool,
) -> std::sync::MutexGuard<'a, T> {
    match timeout {
        None => condvar
            .wait_while(guard, waiting)
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        Some(timeout) => condvar
            .wait_timeout_while(guard, timeout, waiting)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0),
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves the maps consistent between statements.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
