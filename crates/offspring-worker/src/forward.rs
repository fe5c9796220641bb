//! The tracing layer that turns a worker's events into [`LogRecord`]s for the parent.
//!
//! Forwarding never blocks a task: records go into the outbox's queue (never written by the
//! thread that logs them, only queued for the i/o thread), and once
//! [`MAX_PENDING`] of them are waiting the layer drops new ones and counts them. The worker
//! reports the running total of dropped records before a batch's `Finished` message, and the
//! parent counts the records it receives. Records keep their order relative to the task's
//! reports, so the last lines before a panic arrive before the panic does.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use offspring_wire::{FromWorker, Level, LogField, LogRecord, SpanRecord, encode};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::outbox::Outbox;

/// Records allowed to wait in the writer's queue before new ones are dropped.
pub(crate) const MAX_PENDING: usize = 16 * 1024;

thread_local! {
    /// The call running on this thread (its batch, and its position there), stamped on its
    /// records.
    pub(crate) static CURRENT_TASK: Cell<Option<(u64, u32)>> = const { Cell::new(None) };
}

pub(crate) struct ForwardLayer {
    out: Arc<Outbox>,
}

impl ForwardLayer {
    pub(crate) fn new(out: Arc<Outbox>) -> Self {
        Self { out }
    }
}

struct SpanFields(Vec<LogField>);

#[derive(Default)]
struct Collect {
    message: String,
    fields: Vec<LogField>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.push(LogField {
                name: field.name().to_owned(),
                value: value.to_owned(),
            });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields.push(LogField {
                name: field.name().to_owned(),
                value: format!("{value:?}"),
            });
        }
    }
}

fn level(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::TRACE => Level::Trace,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::ERROR => Level::Error,
    }
}

impl<S> Layer<S> for ForwardLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut collect = Collect::default();
        attrs.record(&mut collect);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(collect.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut collect = Collect::default();
        values.record(&mut collect);
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            fields.0.extend(collect.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.out.log_counters().pending.load(Ordering::Relaxed) >= MAX_PENDING {
            self.out
                .log_counters()
                .dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut collect = Collect::default();
        event.record(&mut collect);
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| SpanRecord {
                        level: level(span.metadata().level()),
                        name: span.name().to_owned(),
                        target: span.metadata().target().to_owned(),
                        fields: span
                            .extensions()
                            .get::<SpanFields>()
                            .map(|f| f.0.clone())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let meta = event.metadata();
        let running = CURRENT_TASK.with(Cell::get);
        let record = LogRecord {
            level: level(meta.level()),
            target: meta.target().to_owned(),
            message: collect.message,
            fields: collect.fields,
            spans,
            task_id: running.map(|(task_id, _)| task_id),
            call: running.map_or(0, |(_, call)| call),
            file: meta.file().map(str::to_owned),
            line: meta.line(),
            time_us: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or_default(),
        };
        if let Ok(frame) = encode(&FromWorker::Log(record)) {
            self.out
                .log_counters()
                .pending
                .fetch_add(1, Ordering::Relaxed);
            if self.out.post(frame, true).is_none() {
                self.out
                    .log_counters()
                    .pending
                    .fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}
