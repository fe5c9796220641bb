//! Turns a Chrome trace-event JSON file into a self-contained SVG timeline.
//!
//! An offspring parent started with `OFFSPRING_TRACE=path.json` records its scheduler and
//! every worker's tasks in the trace-event format that Perfetto and `chrome://tracing` read.
//! This crate draws such a file as one picture that needs no viewer: one lane per process
//! (the parent first, then the workers), each worker's lifetime behind its tasks, tasks
//! colored by outcome with a tooltip each, scheduler instants as ticks, counters as step
//! lines, a time axis and a legend. `cargo xtask timeline path.json` prints it.
//!
//! Any valid trace-event JSON is accepted, not only offspring's: the object form with
//! `traceEvents` or a bare array of events; phases `X`, `B`/`E`, `i`/`I`, `C` and `M`;
//! unknown phases and fields are ignored. See [`render_svg`].
//!
//! The crate has no dependencies, so that xtask, which links it, stays quick to build; its
//! JSON parser is a small strict one of its own, with a nesting limit.
//!
//! ```
//! let trace = r#"{"traceEvents": [
//!     {"ph": "M", "name": "process_name", "pid": 7, "args": {"name": "worker 1 (pid 7)"}},
//!     {"ph": "X", "name": "work", "pid": 7, "tid": 7, "ts": 0, "dur": 1500,
//!      "args": {"task_id": 1, "outcome": "ok"}}
//! ]}"#;
//! let svg = offspring_timeline::render_svg(trace)?;
//! assert!(svg.starts_with("<svg"));
//! assert!(svg.contains("worker 1 (pid 7)"));
//!
//! let error = offspring_timeline::render_svg("[1, 2").unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "invalid json at line 1, column 6: expected `,` or `]`, found the end of the input"
//! );
//! # Ok::<(), offspring_timeline::TimelineError>(())
//! ```

#![forbid(unsafe_code)]

mod error;
mod json;
mod svg;
mod trace;

pub use error::TimelineError;

/// Renders a Chrome trace-event JSON document as an SVG document (about 1200 pixels wide,
/// as tall as its lanes need).
///
/// Timestamps are microseconds on one clock. Lanes are processes: the one named by
/// `otherData.parent_pid` first, then by `process_sort_index`, then by pid, each labelled
/// with its `process_name` and pid. Slices of category `worker` are drawn as the lane's
/// background; other slices are green when their `outcome` argument starts with `ok`, red
/// when it is anything else, blue when there is none. `otherData.program` names the trace in
/// the header.
///
/// # Errors
///
/// [`TimelineError::Json`] if `json` is not valid JSON, [`TimelineError::NotATrace`] if it
/// is neither an object with a `traceEvents` array nor an array, and
/// [`TimelineError::NoEvents`] if no event has a timestamp.
pub fn render_svg(json: &str) -> Result<String, TimelineError> {
    let root = json::parse(json).map_err(|e| {
        let (line, column) = e.line_column(json);
        TimelineError::Json {
            line,
            column,
            message: e.message,
        }
    })?;
    let trace = trace::build(&root)?;
    Ok(svg::render(&trace))
}

#[cfg(test)]
mod tests;
