//! The trace model: Chrome trace events grouped by process, in lane order, ready to draw.
//!
//! Phases read: `X` (complete), `B`/`E` (begin and end, paired per thread), `i`/`I`
//! (instant), `C` (counter) and `M` (metadata: `process_name`, `process_sort_index`,
//! `thread_name`). Every other phase, and every field not named here, is ignored, as are
//! entries that are not objects or lack a usable timestamp.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::TimelineError;
use crate::json::Value;

/// A process or thread id. Chrome traces use integers; strings are accepted too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Id {
    Num(i64),
    Text(String),
}

impl Id {
    /// Reads an id field; a missing or unusable one is 0, as in Chrome's viewer.
    fn of(value: Option<&Value>) -> Self {
        match value {
            // Ids are integers well inside the range where an `f64` is exact.
            Some(Value::Number(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Self::Num(*n as i64),
            Some(Value::Number(n)) => Self::Text(n.to_string()),
            Some(Value::String(s)) => s.parse().map_or_else(|_| Self::Text(s.clone()), Self::Num),
            _ => Self::Num(0),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

/// How a slice ended, from its `outcome` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The outcome starts with `ok`.
    Ok,
    /// There is an outcome, and it does not start with `ok`.
    Failed,
    /// The slice has no outcome: it is not a task.
    None,
}

/// Event arguments, in the order they were written.
pub(crate) type Args<'a> = Vec<(&'a str, &'a Value)>;

/// A span of time on one thread: an `X` event, or a `B` matched with its `E`.
#[derive(Debug, Clone)]
pub(crate) struct Slice<'a> {
    pub(crate) name: &'a str,
    pub(crate) tid: Id,
    /// Start, in microseconds on the trace's clock.
    pub(crate) start: f64,
    /// Duration in microseconds, never negative.
    pub(crate) dur: f64,
    pub(crate) args: Args<'a>,
    /// A `B` with no `E`: it is drawn up to the end of the trace.
    pub(crate) unfinished: bool,
}

impl Slice<'_> {
    pub(crate) fn end(&self) -> f64 {
        self.start + self.dur
    }

    pub(crate) fn outcome(&self) -> Outcome {
        match arg(&self.args, "outcome") {
            None | Some(Value::Null) => Outcome::None,
            Some(Value::String(s)) if s.starts_with("ok") => Outcome::Ok,
            Some(_) => Outcome::Failed,
        }
    }
}

/// A point event (`i` or `I`).
#[derive(Debug, Clone)]
pub(crate) struct Instant<'a> {
    pub(crate) name: &'a str,
    pub(crate) ts: f64,
    pub(crate) args: Args<'a>,
}

/// One series of a counter: the value holds from each point until the next.
#[derive(Debug, Clone)]
pub(crate) struct Counter {
    pub(crate) label: String,
    /// `(timestamp, value)`, sorted by timestamp.
    pub(crate) points: Vec<(f64, f64)>,
}

/// One process track: a lane of the timeline.
#[derive(Debug, Clone)]
pub(crate) struct Process<'a> {
    pub(crate) pid: Id,
    pub(crate) name: Option<&'a str>,
    sort_index: Option<f64>,
    pub(crate) is_parent: bool,
    pub(crate) threads: BTreeMap<Id, &'a str>,
    /// Slices of category `worker`: a worker's whole life, drawn behind its tasks.
    pub(crate) lifetimes: Vec<Slice<'a>>,
    /// Every other slice, sorted by start, longer first on ties (so parents precede children).
    pub(crate) slices: Vec<Slice<'a>>,
    /// Sorted by timestamp.
    pub(crate) instants: Vec<Instant<'a>>,
    pub(crate) counters: Vec<Counter>,
}

impl<'a> Process<'a> {
    fn new(pid: Id) -> Self {
        Self {
            pid,
            name: None,
            sort_index: None,
            is_parent: false,
            threads: BTreeMap::new(),
            lifetimes: Vec::new(),
            slices: Vec::new(),
            instants: Vec::new(),
            counters: Vec::new(),
        }
    }
}

/// A whole trace, its processes in lane order.
#[derive(Debug, Clone)]
pub(crate) struct Trace<'a> {
    pub(crate) program: Option<&'a str>,
    /// `otherData.dropped_events`: events the writer left out, past its cap.
    pub(crate) dropped_events: f64,
    /// Parent first (named by `otherData.parent_pid`), then by sort index (processes without
    /// one after those with one), then by pid.
    pub(crate) processes: Vec<Process<'a>>,
    /// The earliest timestamp of any drawn event, in microseconds.
    pub(crate) start: f64,
    /// The latest end of any drawn event; never before `start`.
    pub(crate) end: f64,
}

/// The value of argument `key`, if any.
pub(crate) fn arg<'v>(args: &[(&str, &'v Value)], key: &str) -> Option<&'v Value> {
    args.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Reads the trace out of a parsed JSON document.
pub(crate) fn build(root: &Value) -> Result<Trace<'_>, TimelineError> {
    let (events, other_data) = match root {
        Value::Array(events) => (events.as_slice(), None),
        Value::Object(_) => {
            let events = root.get("traceEvents").ok_or_else(|| {
                TimelineError::NotATrace("the top-level object has no `traceEvents` member".into())
            })?;
            let events = events
                .as_array()
                .ok_or_else(|| TimelineError::NotATrace("`traceEvents` is not an array".into()))?;
            (events, root.get("otherData"))
        }
        _ => {
            return Err(TimelineError::NotATrace(
                "the top level is neither an object nor an array of events".into(),
            ));
        }
    };
    let mut builder = Builder::default();
    for event in events {
        builder.event(event);
    }
    builder.finish(other_data)
}

/// A `B` or `E` event waiting to be paired.
struct Edge<'a> {
    pid: Id,
    tid: Id,
    ts: f64,
    begin: bool,
    lifetime: bool,
    name: &'a str,
    args: Args<'a>,
}

#[derive(Default)]
struct Builder<'a> {
    processes: BTreeMap<Id, Process<'a>>,
    edges: Vec<Edge<'a>>,
    counters: BTreeMap<(Id, String), Vec<(f64, f64)>>,
}

impl<'a> Builder<'a> {
    fn process(&mut self, pid: &Id) -> &mut Process<'a> {
        self.processes
            .entry(pid.clone())
            .or_insert_with(|| Process::new(pid.clone()))
    }

    fn event(&mut self, event: &'a Value) {
        let Some(phase) = event.get("ph").and_then(Value::as_str) else {
            return;
        };
        let pid = Id::of(event.get("pid"));
        let tid = Id::of(event.get("tid"));
        let name = event.get("name").and_then(Value::as_str).unwrap_or("");
        let args: Args<'a> = event
            .get("args")
            .and_then(Value::as_object)
            .map(|members| members.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default();
        if phase == "M" {
            self.metadata(&pid, tid, name, &args);
            return;
        }
        let Some(ts) = event
            .get("ts")
            .and_then(Value::as_f64)
            .filter(|ts| ts.is_finite())
        else {
            return;
        };
        // Slices of category `worker` are a worker's whole life, drawn behind its tasks.
        let lifetime = event.get("cat").and_then(Value::as_str) == Some("worker");
        match phase {
            "X" => {
                let dur = event
                    .get("dur")
                    .and_then(Value::as_f64)
                    .filter(|dur| dur.is_finite())
                    .unwrap_or(0.0)
                    .max(0.0);
                let slice = Slice {
                    name,
                    tid,
                    start: ts,
                    dur,
                    args,
                    unfinished: false,
                };
                self.push_slice(&pid, slice, lifetime);
            }
            "B" | "E" => self.edges.push(Edge {
                pid,
                tid,
                ts,
                begin: phase == "B",
                lifetime,
                name,
                args,
            }),
            "i" | "I" => self.process(&pid).instants.push(Instant { name, ts, args }),
            "C" => {
                self.process(&pid);
                let single = args.len() == 1;
                for (key, value) in &args {
                    let Some(value) = value.as_f64() else {
                        continue;
                    };
                    // A counter with one series is labelled by its name alone, as in Chrome.
                    let label = match (name, *key) {
                        ("", key) => key.to_string(),
                        (name, key) if single || key == name => name.to_string(),
                        (name, key) => format!("{name} {key}"),
                    };
                    self.counters
                        .entry((pid.clone(), label))
                        .or_default()
                        .push((ts, value));
                }
            }
            _ => {}
        }
    }

    fn metadata(&mut self, pid: &Id, tid: Id, name: &str, args: &Args<'a>) {
        match name {
            "process_name" => {
                if let Some(label) = arg(args, "name").and_then(Value::as_str) {
                    self.process(pid).name = Some(label);
                }
            }
            "process_sort_index" => {
                if let Some(index) = arg(args, "sort_index").and_then(Value::as_f64) {
                    self.process(pid).sort_index = Some(index);
                }
            }
            "thread_name" => {
                if let Some(label) = arg(args, "name").and_then(Value::as_str) {
                    self.process(pid).threads.insert(tid, label);
                }
            }
            _ => {}
        }
    }

    fn finish(mut self, other_data: Option<&'a Value>) -> Result<Trace<'a>, TimelineError> {
        let mut bounds = Bounds::default();
        for process in self.processes.values() {
            for slice in process.slices.iter().chain(&process.lifetimes) {
                bounds.add(slice.start);
                bounds.add(slice.end());
            }
            for instant in &process.instants {
                bounds.add(instant.ts);
            }
        }
        for points in self.counters.values() {
            for (ts, _) in points {
                bounds.add(*ts);
            }
        }
        for edge in &self.edges {
            bounds.add(edge.ts);
        }
        let Some((start, end)) = bounds.range() else {
            return Err(TimelineError::NoEvents);
        };

        self.pair_edges(end);
        for ((pid, label), mut points) in std::mem::take(&mut self.counters) {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            self.process(&pid).counters.push(Counter { label, points });
        }

        let parent = other_data
            .and_then(|data| data.get("parent_pid"))
            .map(|pid| Id::of(Some(pid)));
        let mut processes: Vec<Process<'a>> = self.processes.into_values().collect();
        for process in &mut processes {
            process.is_parent = parent.as_ref() == Some(&process.pid);
            process.slices.sort_by(|a, b| {
                a.start
                    .total_cmp(&b.start)
                    .then_with(|| b.dur.total_cmp(&a.dur))
            });
            process
                .lifetimes
                .sort_by(|a, b| a.start.total_cmp(&b.start));
            process.instants.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        }
        processes.sort_by(lane_order);
        Ok(Trace {
            program: other_data
                .and_then(|data| data.get("program"))
                .and_then(Value::as_str)
                .filter(|program| !program.is_empty()),
            dropped_events: other_data
                .and_then(|data| data.get("dropped_events"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            processes,
            start,
            end,
        })
    }

    /// Pairs each `E` with the latest open `B` on its thread, in timestamp order (file order
    /// among equal timestamps). An `E` with nothing open is dropped; a `B` never closed runs to
    /// `end`.
    fn pair_edges(&mut self, end: f64) {
        let mut edges = std::mem::take(&mut self.edges);
        // Stable: edges at the same timestamp keep their file order.
        edges.sort_by(|a, b| {
            (&a.pid, &a.tid)
                .cmp(&(&b.pid, &b.tid))
                .then(a.ts.total_cmp(&b.ts))
        });
        let mut open: Vec<Edge<'a>> = Vec::new();
        let mut thread: Option<(Id, Id)> = None;
        for edge in edges {
            let key = (edge.pid.clone(), edge.tid.clone());
            if thread.as_ref() != Some(&key) {
                self.close_unfinished(&mut open, end);
                thread = Some(key);
            }
            if edge.begin {
                open.push(edge);
            } else if let Some(mut begin) = open.pop() {
                // As in Chrome, the end event's arguments join the begin event's.
                begin.args.extend(edge.args);
                self.close(begin, edge.ts, false);
            }
        }
        self.close_unfinished(&mut open, end);
    }

    fn close_unfinished(&mut self, open: &mut Vec<Edge<'a>>, end: f64) {
        for begin in open.drain(..) {
            self.close(begin, end, true);
        }
    }

    /// Turns an open `B` into a slice ending at `end`.
    fn close(&mut self, begin: Edge<'a>, end: f64, unfinished: bool) {
        let slice = Slice {
            name: begin.name,
            tid: begin.tid,
            start: begin.ts,
            dur: (end - begin.ts).max(0.0),
            args: begin.args,
            unfinished,
        };
        self.push_slice(&begin.pid, slice, begin.lifetime);
    }

    fn push_slice(&mut self, pid: &Id, slice: Slice<'a>, lifetime: bool) {
        let process = self.process(pid);
        if lifetime {
            process.lifetimes.push(slice);
        } else {
            process.slices.push(slice);
        }
    }
}

/// The parent first, then processes with a sort index (ascending), then the rest, each group
/// by pid.
fn lane_order(a: &Process<'_>, b: &Process<'_>) -> Ordering {
    b.is_parent
        .cmp(&a.is_parent)
        .then_with(|| match (a.sort_index, b.sort_index) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.pid.cmp(&b.pid))
}

/// The earliest and latest timestamps seen.
#[derive(Default)]
struct Bounds(Option<(f64, f64)>);

impl Bounds {
    fn add(&mut self, t: f64) {
        self.0 = Some(match self.0 {
            None => (t, t),
            Some((lo, hi)) => (lo.min(t), hi.max(t)),
        });
    }

    fn range(&self) -> Option<(f64, f64)> {
        self.0
    }
}
