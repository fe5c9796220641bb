//! The task table: every registered task, by its stable name.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Why a task's bytes could not be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The arguments did not decode as the task's argument type.
    BadArgs(String),
    /// The value could not be encoded.
    BadResult(String),
}

/// One registered task. Built in a `const` context by the `#[task]` attribute's expansion.
#[derive(Debug)]
pub struct TaskEntry {
    name: &'static str,
    signature: fn() -> String,
    run: fn(Vec<u8>) -> Result<Vec<u8>, RunError>,
    start: Option<StartFn>,
    type_id: fn() -> TypeId,
}

/// An async task's call, started: its arguments decoded, its value encoded when it ends.
pub type CallFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, RunError>>>>;

/// Starts an async task's call on encoded arguments (see [`TaskEntry::start`]).
pub type StartFn = fn(&[u8]) -> Result<CallFuture, RunError>;

impl TaskEntry {
    /// An entry: the stable name, a function describing the signature (for the table's
    /// identity), the type-erased runner (decode arguments, call, encode the value), and the
    /// type id of the task's function item, by which the parent finds the name.
    pub const fn new(
        name: &'static str,
        signature: fn() -> String,
        run: fn(Vec<u8>) -> Result<Vec<u8>, RunError>,
        type_id: fn() -> TypeId,
    ) -> Self {
        Self {
            name,
            signature,
            run,
            start: None,
            type_id,
        }
    }

    /// An entry for an async task: as [`TaskEntry::new`], plus `start`, which gives the
    /// call's future instead of running it, so a worker can run several calls at once.
    pub const fn new_async(
        name: &'static str,
        signature: fn() -> String,
        run: fn(Vec<u8>) -> Result<Vec<u8>, RunError>,
        start: StartFn,
        type_id: fn() -> TypeId,
    ) -> Self {
        Self {
            name,
            signature,
            run,
            start: Some(start),
            type_id,
        }
    }

    /// Whether the task is an `async fn`.
    pub fn is_async(&self) -> bool {
        self.start.is_some()
    }

    /// Starts an async task's call on encoded arguments: the future that runs it and
    /// encodes its value; `None` for a sync task.
    ///
    /// # Errors
    ///
    /// [`RunError::BadArgs`] when the arguments do not decode.
    pub fn start(&self, args: &[u8]) -> Option<Result<CallFuture, RunError>> {
        self.start.map(|start| start(args))
    }

    /// The task's stable name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the task on encoded arguments, which it may take apart (a byte vector becomes
    /// the task's argument in place). Panics in the task propagate: the caller catches.
    ///
    /// # Errors
    ///
    /// [`RunError`] when the arguments or the value do not (de)serialize.
    pub fn run(&self, args: Vec<u8>) -> Result<Vec<u8>, RunError> {
        (self.run)(args)
    }
}

inventory::collect!(TaskEntry);

/// All tasks registered in this executable.
#[derive(Debug)]
pub struct TaskTable {
    by_name: HashMap<&'static str, &'static TaskEntry>,
    by_type: HashMap<TypeId, &'static TaskEntry>,
    descriptions: Vec<String>,
}

impl TaskTable {
    /// The task registered under `name`.
    pub fn get(&self, name: &str) -> Option<&'static TaskEntry> {
        self.by_name.get(name).copied()
    }

    /// The task whose function item has type id `id`. Each function item has a type of its
    /// own, so two tasks whose bodies compile to the same code are still told apart.
    pub fn by_type(&self, id: TypeId) -> Option<&'static TaskEntry> {
        self.by_type.get(&id).copied()
    }

    /// One `name:signature` line per task, for the build identity.
    pub fn descriptions(&self) -> impl Iterator<Item = &str> {
        self.descriptions.iter().map(String::as_str)
    }

    /// How many tasks are registered.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no task is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The executable's task table, built once.
///
/// # Errors
///
/// A message naming the duplicate when two tasks are registered under one name (possible with
/// `#[task(name = "...")]`): a worker could not know which one the parent meant.
pub fn task_table() -> Result<&'static TaskTable, String> {
    static TABLE: OnceLock<Result<TaskTable, String>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let mut by_name = HashMap::new();
            let mut by_type = HashMap::new();
            let mut descriptions = Vec::new();
            for entry in inventory::iter::<TaskEntry> {
                if by_name.insert(entry.name, entry).is_some() {
                    return Err(format!(
                        "two tasks are registered under the name `{}`; give one of them another \
                         name with #[offspring::task(name = \"...\")]",
                        entry.name
                    ));
                }
                by_type.insert((entry.type_id)(), entry);
                descriptions.push(format!("{}:{}", entry.name, (entry.signature)()));
            }
            Ok(TaskTable {
                by_name,
                by_type,
                descriptions,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}
