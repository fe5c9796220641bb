//! Forwarded worker log records, re-emitted in the parent's subscriber as if they were local.
//!
//! A record keeps its original target, level, name, file and line: the parent builds a call
//! site for it at run time (tracing needs `'static` metadata, so each distinct call site is
//! leaked once and reused; at most [`MAX_CALLSITES`] of them), registers it, and asks the
//! parent's subscriber whether it is enabled, so `RUST_LOG` / `EnvFilter` directives filter
//! forwarded records exactly like local ones. The record is emitted as a child of the task's
//! span in the parent, inside re-created copies of the worker-side spans it was recorded in,
//! with the worker's pid as a field.
//!
//! Once the call-site table is full, records are emitted under the fixed target
//! `offspring::worker` with their original target in the field `origin`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use offspring_wire::{Level, LogField, LogRecord};
use tracing::Span;
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::{Field, FieldSet, Value};
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Metadata, dispatcher};

/// Distinct forwarded call sites the parent creates before it falls back to a fixed one.
pub(crate) const MAX_CALLSITES: usize = 4096;

/// Fields per forwarded record or span; the rest are folded into one field `more`.
const MAX_FIELDS: usize = 32;

/// Log records of a set of workers (a pool's), as the parent counted them.
#[derive(Debug, Default)]
pub struct LogCounts {
    /// Records the workers sent and the parent received.
    pub forwarded: AtomicU64,
    /// Records the workers dropped because their forwarding queue was full.
    pub dropped: AtomicU64,
}

/// A call site made at run time for records from one place in a worker's code.
struct DynCallsite {
    meta: OnceLock<Metadata<'static>>,
    /// 0: never, 1: sometimes, 2: always, as the subscriber last said.
    interest: AtomicU8,
}

impl Callsite for DynCallsite {
    fn set_interest(&self, interest: Interest) {
        let value = if interest.is_never() {
            0
        } else if interest.is_always() {
            2
        } else {
            1
        };
        self.interest.store(value, Ordering::Relaxed);
    }

    fn metadata(&self) -> &Metadata<'_> {
        self.meta.get().unwrap_or(&UNSET_META)
    }
}

/// The metadata a [`DynCallsite`] reports in the instant between its creation and its
/// metadata being set (it is registered only after).
struct Unset;

impl Callsite for Unset {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &UNSET_META
    }
}

static UNSET: Unset = Unset;
static UNSET_META: Metadata<'static> = Metadata::new(
    "forwarded",
    "offspring::worker",
    tracing_core::Level::TRACE,
    None,
    None,
    None,
    FieldSet::new(&[], Identifier(&UNSET)),
    Kind::EVENT,
);

#[derive(Hash, PartialEq, Eq)]
struct Key {
    span: bool,
    level: Level,
    name: String,
    target: String,
    file: Option<String>,
    line: Option<u32>,
    fields: Vec<String>,
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

/// The call site for `key`, made and registered on first use; `None` once the table is full.
fn callsite(key: Key) -> Option<&'static DynCallsite> {
    static TABLE: OnceLock<Mutex<HashMap<Key, &'static DynCallsite>>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    let mut table = crate::coordinator::lock(table);
    if let Some(site) = table.get(&key) {
        return Some(site);
    }
    if table.len() >= MAX_CALLSITES {
        return None;
    }
    let names: Vec<&'static str> = key.fields.iter().map(|f| leak(f)).collect();
    let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    let site: &'static DynCallsite = Box::leak(Box::new(DynCallsite {
        meta: OnceLock::new(),
        interest: AtomicU8::new(1),
    }));
    let target = leak(&key.target);
    let meta = Metadata::new(
        leak(&key.name),
        target,
        tracing_level(key.level),
        key.file.as_deref().map(leak),
        key.line,
        Some(target),
        FieldSet::new(names, Identifier(site)),
        if key.span { Kind::SPAN } else { Kind::EVENT },
    );
    let _ = site.meta.set(meta);
    tracing_core::callsite::register(site);
    table.insert(key, site);
    Some(site)
}

impl DynCallsite {
    fn meta(&'static self) -> Option<&'static Metadata<'static>> {
        self.meta.get()
    }

    fn enabled(&'static self) -> Option<&'static Metadata<'static>> {
        if self.interest.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let meta = self.meta()?;
        dispatcher::get_default(|d| d.enabled(meta)).then_some(meta)
    }
}

fn tracing_level(level: Level) -> tracing_core::Level {
    match level {
        Level::Trace => tracing_core::Level::TRACE,
        Level::Debug => tracing_core::Level::DEBUG,
        Level::Info => tracing_core::Level::INFO,
        Level::Warn => tracing_core::Level::WARN,
        Level::Error => tracing_core::Level::ERROR,
    }
}

/// Field names and values of a record, with at most [`MAX_FIELDS`] in all.
fn fold(leading: &[(&str, String)], fields: &[LogField]) -> (Vec<String>, Vec<String>) {
    let room = MAX_FIELDS - leading.len() - 1;
    let mut names: Vec<String> = leading.iter().map(|(n, _)| (*n).to_owned()).collect();
    let mut values: Vec<String> = leading.iter().map(|(_, v)| v.clone()).collect();
    for field in fields.iter().take(room) {
        names.push(field.name.clone());
        values.push(field.value.clone());
    }
    if fields.len() > room {
        names.push("more".to_owned());
        values.push(
            fields[room..]
                .iter()
                .map(|f| format!("{}={}", f.name, f.value))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    (names, values)
}

/// Calls `f` with a value set of `meta`'s fields holding `values` (rendered as text, shown
/// without quotes, as they were in the worker).
fn with_values<R>(
    meta: &'static Metadata<'static>,
    values: &[String],
    f: impl FnOnce(&tracing_core::field::ValueSet<'_>) -> R,
) -> Option<R> {
    let fields: Vec<Field> = meta.fields().iter().collect();
    let first = fields.first()?;
    let shown: Vec<tracing_core::field::DisplayValue<&str>> = values
        .iter()
        .map(|v| tracing_core::field::display(v.as_str()))
        .collect();
    let mut pairs: [(&Field, Option<&dyn Value>); MAX_FIELDS] = [(first, None); MAX_FIELDS];
    for (slot, (field, value)) in pairs.iter_mut().zip(fields.iter().zip(&shown)) {
        *slot = (field, Some(value as &dyn Value));
    }
    Some(f(&meta.fields().value_set(&pairs)))
}

/// Emits one forwarded record from worker `pid`, under `parent` (the task's span) when given.
pub(crate) fn emit(pid: u32, task: Option<&str>, parent: Option<&Span>, record: &LogRecord) {
    let mut scope: Vec<Span> = Vec::with_capacity(record.spans.len());
    let mut current = parent.and_then(Span::id);
    for span in &record.spans {
        let (names, values) = fold(&[], &span.fields);
        let Some(site) = callsite(Key {
            span: true,
            level: span.level,
            name: span.name.clone(),
            target: span.target.clone(),
            file: None,
            line: None,
            fields: names,
        }) else {
            continue;
        };
        let Some(meta) = site.enabled() else {
            continue;
        };
        if let Some(made) = with_values(meta, &values, |set| {
            Span::child_of(current.clone(), meta, set)
        }) {
            current = made.id().or(current);
            scope.push(made);
        }
    }
    let (names, values) = fold(
        &[
            ("message", record.message.clone()),
            ("worker_pid", pid.to_string()),
        ],
        &record.fields,
    );
    let key = Key {
        span: false,
        level: record.level,
        name: format!(
            "event {}:{}",
            record.file.as_deref().unwrap_or("?"),
            record.line.unwrap_or(0)
        ),
        target: record.target.clone(),
        file: record.file.clone(),
        line: record.line,
        fields: names,
    };
    let Some(site) = callsite(key) else {
        emit_fixed(pid, task, record);
        return;
    };
    if let Some(meta) = site.enabled() {
        with_values(meta, &values, |set| {
            tracing_core::Event::child_of(current, meta, set);
        });
    }
    drop(scope);
}

/// Emits a record under the fixed target `offspring::worker`, for when no call site of its
/// own can be made.
fn emit_fixed(pid: u32, task: Option<&str>, record: &LogRecord) {
    let task = task.unwrap_or("-");
    let task_id = record.task_id.unwrap_or_default();
    let fields = record
        .fields
        .iter()
        .map(|f| format!("{}={}", f.name, f.value))
        .collect::<Vec<_>>()
        .join(" ");
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
