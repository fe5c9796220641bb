//! Timeline files: what the parent saw of its workers and tasks, as Chrome trace-event JSON
//! (readable by Perfetto and `chrome://tracing`, and by `cargo xtask timeline`).
//!
//! One process track per worker, under the worker's real pid, with a slice for its lifetime
//! and one per call it ran; the parent's track shows its jobs and each dispatch. Every
//! timestamp is on the parent's monotonic clock, in microseconds since the timeline began. A
//! call's slice ends when its report arrives and starts the call's own measured duration
//! earlier (clamped so it never starts before its worker or overlaps the call before it).
//!
//! The file is written whole (to a temporary name, then renamed) when the process exits
//! normally, and again whenever a pool that records into it ends, so a program that is
//! killed still leaves the file as of its last finished pool. At most [`MAX_EVENTS`] events
//! are kept; later ones are counted in `otherData.dropped_events`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::coordinator::lock;

/// The environment variable naming the timeline file of the whole process.
pub const TRACE_ENV: &str = "OFFSPRING_TRACE";

/// Events kept per timeline.
pub const MAX_EVENTS: usize = 1_000_000;

/// A timeline being recorded, to be written to one file.
pub struct Timeline {
    path: PathBuf,
    epoch: Instant,
    parent_pid: u32,
    inner: Mutex<Recording>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Recording {
    events: Vec<String>,
    dropped: u64,
    workers: HashMap<u32, Track>,
    order: Vec<u32>,
}

struct Track {
    label: String,
    start: f64,
    end: Option<f64>,
    exit: String,
    /// Where the last call slice on this track ended.
    last_end: f64,
}

/// One call of a batch, as a worker reported it.
#[derive(Debug)]
pub(crate) struct CallSlice<'a> {
    pub(crate) pid: u32,
    pub(crate) name: &'a str,
    pub(crate) job: u64,
    pub(crate) task_id: u64,
    pub(crate) index: usize,
    pub(crate) elapsed_us: u64,
    pub(crate) outcome: &'a str,
}

impl Timeline {
    /// A timeline to be written to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            path: path.into(),
            epoch: Instant::now(),
            parent_pid: std::process::id(),
            inner: Mutex::new(Recording::default()),
        })
    }

    /// The file this timeline is written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn now(&self) -> f64 {
        self.at(Instant::now())
    }

    fn at(&self, instant: Instant) -> f64 {
        instant.saturating_duration_since(self.epoch).as_secs_f64() * 1e6
    }

    fn push(inner: &mut Recording, event: String) {
        if inner.events.len() < MAX_EVENTS {
            inner.events.push(event);
        } else {
            inner.dropped += 1;
        }
    }

    /// A worker began starting at `began` and now runs as `pid`.
    pub(crate) fn worker_started(&self, pid: u32, worker_id: u64, began: Instant) {
        let start = self.at(began);
        let mut inner = lock(&self.inner);
        inner.order.push(pid);
        inner.workers.insert(
            pid,
            Track {
                label: format!("worker {worker_id} (pid {pid})"),
                start,
                end: None,
                exit: "running".to_owned(),
                last_end: start,
            },
        );
    }

    /// Worker `pid` runs on `host` (a remote worker said so): its track says where.
    pub(crate) fn worker_host(&self, pid: u32, host: &str) {
        let mut inner = lock(&self.inner);
        if let Some(track) = inner.workers.get_mut(&pid) {
            track.label = format!("{} on {host}", track.label);
        }
    }

    /// Worker `pid` exited (or was found dead), as `exit` describes.
    pub(crate) fn worker_exited(&self, pid: u32, exit: &str) {
        let now = self.now();
        let mut inner = lock(&self.inner);
        if let Some(track) = inner.workers.get_mut(&pid) {
            track.end = Some(now);
            exit.clone_into(&mut track.exit);
        }
    }

    /// A call's report arrived now.
    pub(crate) fn call(&self, slice: &CallSlice<'_>) {
        let end = self.now();
        let mut inner = lock(&self.inner);
        let Some(track) = inner.workers.get_mut(&slice.pid) else {
            return;
        };
        let start = (end - slice.elapsed_us as f64).max(track.last_end).min(end);
        track.last_end = end;
        let mut event = String::with_capacity(192);
        let _ = write!(
            event,
            r#"{{"ph":"X","cat":"task","name":{},"pid":{},"tid":{},"ts":{:.1},"dur":{:.1},"args":{{"job":{},"task_id":{},"index":{},"outcome":{}}}}}"#,
            json_string(slice.name),
            slice.pid,
            slice.pid,
            start,
            end - start,
            slice.job,
            slice.task_id,
            slice.index,
            json_string(slice.outcome),
        );
        Self::push(&mut inner, event);
    }

    /// The parent sent a batch of `calls` calls of `job` to worker `pid`.
    pub(crate) fn dispatched(&self, job: u64, task_id: u64, pid: u32, calls: usize) {
        let now = self.now();
        let event = format!(
            r#"{{"ph":"i","cat":"scheduler","name":"dispatch","s":"t","pid":{p},"tid":{p},"ts":{now:.1},"args":{{"job":{job},"task_id":{task_id},"worker_pid":{pid},"calls":{calls}}}}}"#,
            p = self.parent_pid,
        );
        Self::push(&mut lock(&self.inner), event);
    }

    /// A job of `calls` calls of task `name` ran from `submitted` until now.
    pub(crate) fn job(&self, name: &str, job: u64, pool: u64, calls: usize, submitted: Instant) {
        let start = self.at(submitted);
        let end = self.now();
        let event = format!(
            r#"{{"ph":"X","cat":"job","name":{},"pid":{p},"tid":{p},"ts":{start:.1},"dur":{:.1},"args":{{"job":{job},"pool":{pool},"calls":{calls}}}}}"#,
            json_string(&format!("pool {pool} job {job}: {name} ({calls} calls)")),
            end - start,
            p = self.parent_pid,
        );
        Self::push(&mut lock(&self.inner), event);
    }

    /// The whole file as it stands now.
    pub fn render(&self) -> String {
        let now = self.now();
        let inner = lock(&self.inner);
        let program = program_name();
        let p = self.parent_pid;
        let mut out = String::with_capacity(inner.events.len() * 160 + 1024);
        let _ = write!(
            out,
            r#"{{"displayTimeUnit":"ms","otherData":{{"program":{},"parent_pid":{p},"dropped_events":{}}},"traceEvents":["#,
            json_string(program),
            inner.dropped,
        );
        let _ = write!(
            out,
            "\n{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{p},\"tid\":{p},\"args\":{{\"name\":{}}}}}",
            json_string(&format!("parent (pid {p})")),
        );
        let _ = write!(
            out,
            ",\n{{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":{p},\"tid\":{p},\"args\":{{\"sort_index\":0}}}}"
        );
        let _ = write!(
            out,
            ",\n{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{p},\"tid\":{p},\"args\":{{\"name\":\"scheduler\"}}}}"
        );
        for (rank, pid) in inner.order.iter().enumerate() {
            let Some(track) = inner.workers.get(pid) else {
                continue;
            };
            let end = track.end.unwrap_or(now).max(track.last_end);
            let _ = write!(
                out,
                ",\n{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"tid\":{pid},\"args\":{{\"name\":{}}}}}",
                json_string(&track.label),
            );
            let _ = write!(
                out,
                ",\n{{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":{pid},\"tid\":{pid},\"args\":{{\"sort_index\":{}}}}}",
                rank + 1,
            );
            let _ = write!(
                out,
                ",\n{{\"ph\":\"X\",\"cat\":\"worker\",\"name\":{},\"pid\":{pid},\"tid\":{pid},\"ts\":{:.1},\"dur\":{:.1},\"args\":{{\"exit\":{}}}}}",
                json_string(&track.label),
                track.start,
                end - track.start,
                json_string(&track.exit),
            );
        }
        for event in &inner.events {
            out.push_str(",\n");
            out.push_str(event);
        }
        out.push_str("\n]}\n");
        out
    }

    /// Writes the file (whole, through a temporary file renamed over it).
    ///
    /// # Errors
    ///
    /// The I/O error of writing or renaming.
    pub fn write(&self) -> std::io::Result<()> {
        let text = self.render();
        let mut temp = self.path.clone().into_os_string();
        temp.push(format!(".{}.tmp", std::process::id()));
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, &self.path)
    }

    /// Writes the file, logging (not returning) a failure.
    pub(crate) fn write_logged(&self) {
        if let Err(error) = self.write() {
            tracing::warn!(target: "offspring", path = %self.path.display(), %error, "cannot write the timeline file");
        }
    }
}

/// The running program's name (its executable's file stem), as timelines and the live view
/// show it.
pub fn program_name() -> &'static str {
    static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default()
    })
}

/// The timeline named by `OFFSPRING_TRACE`, if set; written when the process exits.
pub(crate) fn from_env() -> Option<Arc<Timeline>> {
    let path = std::env::var_os(TRACE_ENV).filter(|p| !p.is_empty())?;
    let timeline = Timeline::new(PathBuf::from(path));
    let at_exit = Arc::clone(&timeline);
    offspring_transport::sys::at_exit(move || at_exit.write_logged());
    Some(timeline)
}

/// The timelines one worker or pool records into: the process's and its pool's own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timelines(Vec<Arc<Timeline>>);

impl Timelines {
    pub(crate) fn new(global: Option<&Arc<Timeline>>, own: Option<&Arc<Timeline>>) -> Self {
        let mut all: Vec<Arc<Timeline>> = global.into_iter().cloned().collect();
        if let Some(own) = own
            && !all.iter().any(|t| Arc::ptr_eq(t, own))
        {
            all.push(Arc::clone(own));
        }
        Self(all)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn each(&self, f: impl Fn(&Timeline)) {
        for timeline in &self.0 {
            f(timeline);
        }
    }
}

/// `text` as a JSON string literal.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_controls_and_backslashes() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn a_call_slice_stays_inside_its_worker_and_after_the_previous_call() {
        let timeline = Timeline::new("unused.json");
        let began = Instant::now();
        timeline.worker_started(42, 1, began);
        let slice = |elapsed_us| CallSlice {
            pid: 42,
            name: "t",
            job: 1,
            task_id: 1,
            index: 0,
            elapsed_us,
            outcome: "ok",
        };
        // Claims to have run for an hour: clamped to the worker's start.
        timeline.call(&slice(3_600_000_000));
        timeline.call(&slice(3_600_000_000));
        timeline.worker_exited(42, "exit status: 0");
        let text = timeline.render();
        assert!(text.contains(r#""name":"worker 1 (pid 42)""#), "{text}");
        assert_eq!(text.matches(r#""cat":"task""#).count(), 2, "{text}");
        assert!(text.ends_with("]}\n"));
    }

    #[test]
    fn events_beyond_the_cap_are_counted_not_kept() {
        let timeline = Timeline::new("unused.json");
        {
            let mut inner = lock(&timeline.inner);
            inner.events = vec![String::new(); MAX_EVENTS];
        }
        timeline.dispatched(1, 1, 7, 1);
        assert_eq!(lock(&timeline.inner).dropped, 1);
    }
}
