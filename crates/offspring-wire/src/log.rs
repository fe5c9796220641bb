//! Structured log records forwarded from a worker to the parent's subscriber.

use serde::{Deserialize, Serialize};

/// A log level. Its derived order runs from the most verbose (`Trace`) to the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// `TRACE`
    Trace,
    /// `DEBUG`
    Debug,
    /// `INFO`
    Info,
    /// `WARN`
    Warn,
    /// `ERROR`
    Error,
}

/// One recorded field: its name and its value rendered as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogField {
    /// The field's name.
    pub name: String,
    /// The field's value, rendered with `Debug` (or as the string itself).
    pub value: String,
}

/// One span of the context an event was recorded in, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// The span's level.
    pub level: Level,
    /// The span's name.
    pub name: String,
    /// The span's target.
    pub target: String,
    /// The span's recorded fields.
    pub fields: Vec<LogField>,
}

/// One event recorded in a worker. Flat on purpose: no wire type is recursive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The event's level.
    pub level: Level,
    /// The event's original target (module path unless set).
    pub target: String,
    /// The `message` field, if the event had one.
    pub message: String,
    /// The other fields.
    pub fields: Vec<LogField>,
    /// The spans the event was recorded in, outermost first.
    pub spans: Vec<SpanRecord>,
    /// The batch that was running on the worker, if any.
    pub task_id: Option<u64>,
    /// The running call's position in that batch ([`RunTask::items`](crate::RunTask::items)):
    /// a batch may hold calls of several jobs, and each record is told under its own job.
    pub call: u32,
    /// Source file, where known.
    pub file: Option<String>,
    /// Source line, where known.
    pub line: Option<u32>,
    /// Microseconds since the Unix epoch when the worker recorded the event.
    pub time_us: u64,
}
