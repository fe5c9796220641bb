//! The live view: one small web page per process, showing every pool that was started with a
//! live board, served from the program itself by `hyper` on the coordinator's runtime.
//!
//! # What it serves
//!
//! - `GET /?token=T`: the page (HTML, CSS and script in one document, no outside resource).
//!   It polls `/data` every [`POLL_MS`] ms and draws what it gets.
//! - `GET /data?token=T`: a JSON document ([`Dashboard::data`]): the process, and each
//!   pool's [`PoolSnapshot`], with the field names of the snapshot types.
//!
//! Every request without the right token gets 403, whatever its path. The token is 128
//! random bits, made when the view starts and printed once, in the page's URL, through
//! `tracing` at INFO (target `offspring::dashboard`).
//!
//! # Why a client cannot slow a pool
//!
//! The scheduler writes to its board under a short lock and never waits on the view. A
//! request copies each board's snapshot under that lock and lets go before it encodes or
//! writes anything, so the network never holds the lock. At most [`MAX_CONNECTIONS`]
//! connections are served at once (more are closed at once); a connection must send its
//! request head within [`HEADER_TIMEOUT`] and is closed after [`CONNECTION_LIFETIME`]
//! whatever it does, so idle or trickling clients hold nothing for long. The server lives as
//! long as the process and is never waited for: a pool's `join` or drop does not involve it.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use offspring_coordinator::live::{LiveBoard, PoolSnapshot};
use serde::Serialize;
use tokio::sync::Semaphore;

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection has to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long any one connection is kept, busy or not.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// How often the page asks for new data, in milliseconds.
pub const POLL_MS: u64 = 1000;

/// Ended pools still shown; older ones are let go.
const ENDED_KEPT: usize = 4;

const PAGE: &str = include_str!("page.html");

/// The process's live view.
pub struct Dashboard {
    addr: SocketAddr,
    token: String,
    boards: Mutex<Vec<Arc<LiveBoard>>>,
}

/// What `/data` answers: the process, and every pool shown, oldest first (the fields of
/// [`PoolSnapshot`] and its parts, and each worker's `host`).
#[derive(Serialize)]
struct DocumentOut<'a> {
    program: &'a str,
    pid: u32,
    host: &'a str,
    poll_ms: u64,
    pools: Vec<PoolOut<'a>>,
}

static DASHBOARD: OnceLock<Arc<Dashboard>> = OnceLock::new();
static STARTING: Mutex<()> = Mutex::new(());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process's view, serving at `addr` on `runtime`: started by the first call, the same
/// one for every later call (whatever address it names: one view shows every pool).
///
/// `addr` is `host:port`; an empty host (`":8787"`, `":0"`) means the loopback, port 0 any
/// free port.
///
/// # Errors
///
/// The address does not resolve, or cannot be bound.
pub fn serve(runtime: &tokio::runtime::Handle, addr: &str) -> std::io::Result<Arc<Dashboard>> {
    let _starting = lock(&STARTING);
    if let Some(dashboard) = DASHBOARD.get() {
        if addr_of(addr).ok() != Some(dashboard.addr) && !addr.ends_with(":0") {
            tracing::warn!(target: "offspring::dashboard", asked = addr, serving = %dashboard.addr, "the live view already serves at another address; the pool is shown there");
        }
        return Ok(Arc::clone(dashboard));
    }
    let listener = StdListener::bind(addr_of(addr)?)?;
    listener.set_nonblocking(true)?;
    let dashboard = Arc::new(Dashboard {
        addr: listener.local_addr()?,
        token: token()?,
        boards: Mutex::new(Vec::new()),
    });
    let serving = Arc::clone(&dashboard);
    runtime.spawn(async move {
        if let Err(error) = serving.accept(listener).await {
            tracing::error!(target: "offspring::dashboard", %error, "the live view stopped");
        }
    });
    tracing::info!(target: "offspring::dashboard", url = %dashboard.url(), "live view at {}", dashboard.url());
    let _ = DASHBOARD.set(Arc::clone(&dashboard));
    Ok(dashboard)
}

/// `addr` as a socket address; an empty host is the loopback.
fn addr_of(addr: &str) -> std::io::Result<SocketAddr> {
    let full = if addr.starts_with(':') {
        format!("127.0.0.1{addr}")
    } else {
        addr.to_owned()
    };
    full.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{addr}` names no address"),
        )
    })
}

fn token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token: a debug print is no place to hand it out.
        f.debug_struct("Dashboard")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// The page's URL, with its token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// The address it serves at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shows `board`'s pool from now on.
    pub fn show(&self, board: Arc<LiveBoard>) {
        let mut boards = lock(&self.boards);
        boards.push(board);
        prune(&mut boards);
    }

    /// The JSON document `/data` answers with.
    ///
    /// # Errors
    ///
    /// Encoding failed (it does not, for these types).
    pub fn data(&self) -> serde_json::Result<Vec<u8>> {
        let boards: Vec<Arc<LiveBoard>> = {
            let mut boards = lock(&self.boards);
            prune(&mut boards);
            boards.clone()
        };
        let snapshots: Vec<PoolSnapshot> = boards.iter().map(|board| board.snapshot()).collect();
        serde_json::to_vec(&DocumentOut {
            program: offspring_coordinator::program_name(),
            pid: std::process::id(),
            host: host(),
            poll_ms: POLL_MS,
            pools: snapshots.iter().map(PoolOut::from).collect(),
        })
    }

    async fn accept(self: Arc<Self>, listener: StdListener) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait
                    // a moment rather than spin, and go on.
                    tracing::debug!(target: "offspring::dashboard", %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let this = Arc::clone(&this);
                    async move { Ok::<_, Infallible>(this.answer(&request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                drop(permit);
            });
        }
    }

    async fn answer(self: &Arc<Self>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.token_matches(request.uri().query()) {
            return plain(
                StatusCode::FORBIDDEN,
                "this page needs its token: see the URL the program logged\n",
            );
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        }
        match request.uri().path() {
            "/" => respond(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
            "/data" => self.data_response().await,
            _ => plain(StatusCode::NOT_FOUND, "no such page\n"),
        }
    }

    /// The data, taken and encoded on a blocking thread: never on the runtime thread the pools'
    /// schedulers share.
    async fn data_response(self: &Arc<Self>) -> Response<Full<Bytes>> {
        let this = Arc::clone(self);
        match tokio::task::spawn_blocking(move || this.data()).await {
            Ok(Ok(body)) => respond(StatusCode::OK, "application/json", body.into()),
            Ok(Err(error)) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the data: {error}\n"),
            ),
            Err(error) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the data could not be taken: {error}\n"),
            ),
        }
    }

    /// Whether the query carries the token (compared in constant time).
    fn token_matches(&self, query: Option<&str>) -> bool {
        query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.strip_prefix("token="))
            .any(|given| {
                given.len() == self.token.len()
                    && given
                        .bytes()
                        .zip(self.token.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            })
    }
}

#[derive(Serialize)]
struct PoolOut<'a> {
    pool: u64,
    processes: usize,
    now: f64,
    state: &'a str,
    counters: CountersOut,
    calls_per_second: f64,
    per_second: &'a [u64],
    workers: Vec<WorkerOut<'a>>,
    failures: Vec<FailureOut<'a>>,
    failures_total: u64,
    slices: Vec<SliceOut<'a>>,
}

#[derive(Serialize)]
struct CountersOut {
    queued: u64,
    running: u64,
    done: u64,
    failed: u64,
    restarted: u64,
    spawned: u64,
    died_running: u64,
    batches: u64,
    logs_forwarded: u64,
    logs_dropped: u64,
}

#[derive(Serialize)]
struct WorkerOut<'a> {
    worker: u64,
    lane: usize,
    pid: u32,
    host: &'a str,
    state: &'a str,
    task: Option<&'a str>,
    job: Option<u64>,
    call: Option<usize>,
    running: usize,
    calls_done: u64,
    calls_failed: u64,
    deaths: u64,
    restarts: u64,
    started: f64,
    ended: Option<f64>,
    exit: Option<&'a str>,
}

#[derive(Serialize)]
struct FailureOut<'a> {
    at: f64,
    task: &'a str,
    job: u64,
    call: usize,
    pid: u32,
    error: &'a str,
}

#[derive(Serialize)]
struct SliceOut<'a> {
    pid: u32,
    lane: usize,
    start: f64,
    end: f64,
    task: &'a str,
    job: u64,
    calls: usize,
    failed: usize,
}

impl<'a> From<&'a PoolSnapshot> for PoolOut<'a> {
    fn from(pool: &'a PoolSnapshot) -> Self {
        let c = &pool.counters;
        Self {
            pool: pool.pool,
            processes: pool.processes,
            now: pool.now,
            state: pool.state,
            counters: CountersOut {
                queued: c.queued,
                running: c.running,
                done: c.done,
                failed: c.failed,
                restarted: c.restarted,
                spawned: c.spawned,
                died_running: c.died_running,
                batches: c.batches,
                logs_forwarded: c.logs_forwarded,
                logs_dropped: c.logs_dropped,
            },
            calls_per_second: pool.calls_per_second,
            per_second: &pool.per_second,
            workers: pool
                .workers
                .iter()
                .map(|w| WorkerOut {
                    worker: w.worker,
                    lane: w.lane,
                    pid: w.pid,
                    host: host(),
                    state: w.state,
                    task: w.task.as_deref(),
                    job: w.job,
                    call: w.call,
                    running: w.running,
                    calls_done: w.calls_done,
                    calls_failed: w.calls_failed,
                    deaths: w.deaths,
                    restarts: w.restarts,
                    started: w.started,
                    ended: w.ended,
                    exit: w.exit.as_deref(),
                })
                .collect(),
            failures: pool
                .failures
                .iter()
                .map(|f| FailureOut {
                    at: f.at,
                    task: &f.task,
                    job: f.job,
                    call: f.call,
                    pid: f.pid,
                    error: &f.error,
                })
                .collect(),
            failures_total: pool.failures_total,
            slices: pool
                .slices
                .iter()
                .map(|s| SliceOut {
                    pid: s.pid,
                    lane: s.lane,
                    start: s.start,
                    end: s.end,
                    task: &s.task,
                    job: s.job,
                    calls: s.calls,
                    failed: s.failed,
                })
                .collect(),
        }
    }
}

/// Lets go of the oldest ended pools beyond [`ENDED_KEPT`].
fn prune(boards: &mut Vec<Arc<LiveBoard>>) {
    let ended = boards.iter().filter(|b| b.has_ended()).count();
    let mut extra = ended.saturating_sub(ENDED_KEPT);
    boards.retain(|b| {
        let drop = extra > 0 && b.has_ended();
        extra -= usize::from(drop);
        !drop
    });
}

/// A refusal or an error: the connection closes after it, so a client without the token
/// holds no connection slot past its answer.
fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(text.to_owned()),
    );
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The token is in the URL: never hand it on, and run nothing the page did not bring.
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        ),
    );
    response
}

/// This machine's name.
pub fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let from_env = std::env::var("COMPUTERNAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok();
        let from_file = || {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|path| std::fs::read_to_string(path).ok())
                .map(|name| name.trim().to_owned())
        };
        from_env
            .or_else(from_file)
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_host_is_the_loopback() -> std::io::Result<()> {
        assert_eq!(
            addr_of(":0")?,
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?
        );
        assert_eq!(addr_of("127.0.0.1:8787")?.port(), 8787);
        assert!(addr_of("no port").is_err());
        Ok(())
    }

    #[test]
    fn only_the_exact_token_passes() -> std::io::Result<()> {
        let dashboard = Dashboard {
            addr: addr_of(":0")?,
            token: token()?,
            boards: Mutex::new(Vec::new()),
        };
        let t = dashboard.token.clone();
        assert_eq!(t.len(), 32);
        assert!(dashboard.token_matches(Some(&format!("token={t}"))));
        assert!(dashboard.token_matches(Some(&format!("a=1&token={t}"))));
        assert!(!dashboard.token_matches(None));
        assert!(!dashboard.token_matches(Some("token=")));
        assert!(!dashboard.token_matches(Some(&format!("token={}", &t[..31]))));
        assert!(!dashboard.token_matches(Some(&format!("token={t}0"))));
        assert!(!dashboard.token_matches(Some(&format!("xtoken={t}"))));
        Ok(())
    }
}
