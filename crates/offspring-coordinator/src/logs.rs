//! Forwarded worker log records, re-emitted as events of the parent's subscriber.

use offspring_wire::{Level, LogRecord};

/// Emits one forwarded record under the target `offspring::worker`, carrying the worker pid,
/// the task's name and id, and the record's original target, fields and span names.
pub(crate) fn emit(pid: u32, task: Option<&str>, record: &LogRecord) {
    let task = task.unwrap_or("-");
    let task_id = record.task_id.unwrap_or_default();
    let fields = record
        .fields
        .iter()
        .map(|f| format!("{}={}", f.name, f.value))
        .collect::<Vec<_>>()
        .join(" ");
    let spans = record
        .spans
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(":");
    let target = record.target.as_str();
    let message = record.message.as_str();
    // tracing needs a static level per call site, hence one arm per level.
    macro_rules! forward {
        ($level:expr) => {
            tracing::event!(
                target: "offspring::worker",
                $level,
                worker_pid = pid,
                task,
                task_id = task_id,
                origin = target,
                spans,
                fields,
                "{message}"
            )
        };
    }
    match record.level {
        Level::Trace => forward!(tracing::Level::TRACE),
        Level::Debug => forward!(tracing::Level::DEBUG),
        Level::Info => forward!(tracing::Level::INFO),
        Level::Warn => forward!(tracing::Level::WARN),
        Level::Error => forward!(tracing::Level::ERROR),
    }
}
