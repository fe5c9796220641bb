//! `cargo xtask bench`: builds and runs `offspring-bench`, then the Python baseline `xtask/bench/baseline.py`, reads the figures both report on stdout, and prints them as tables or as JSON.
//!
//! Both programs speak a line protocol on stdout, one record per line with tab-separated fields; any other line is passed through to stderr:
//!
//! - `figure <id> <unit> <lower_is_better: 0|1> <description>` declares a figure;
//! - `sample <id> <value>` is one measured sample of a figure (many per figure);
//! - `ratio <id_a> <id_b> <op> <target> <description>` compares median(a)/median(b) against the target with `<=` or `>=`.
//!
//! An id names its source by its prefix: `python.<base>` is the Python baseline's measure of `<base>`, `floor.<base>` what raw sockets allow for it, and a bare `<base>` is offspring's own. The text report has one row per base, with the three side by side. Records may arrive in any order and from either program: a ratio declared by `offspring-bench` may name `python.` figures.
//!
//! Figures and ratios are reported, never asserted: a missed ratio is printed as `MISSED` but does not fail the run. Only `offspring-bench` itself failing (non-zero exit, or overrunning its time limit) does. The Python baseline is optional: when `python3` is missing or the script fails, a note says so, its column shows why, and the ratios that need it are `n/a`.

mod programs;
mod protocol;
mod render;
mod report;
mod stats;
#[cfg(test)]
mod tests;

use std::io;
use std::process::Command;

use crate::util::{self, Workspace};
use programs::{PYTHON, PYTHON_SCRIPT, PYTHON_TIME_LIMIT, TIME_LIMIT, check_status, run_program};
use render::{render_json, render_text};
use report::{Collector, PythonStatus};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BenchOptions {
    /// Pass `--quick` to both bench programs: fewer samples, for CI and quick local checks.
    pub(crate) quick: bool,
    /// Print one JSON object on stdout instead of the tables.
    pub(crate) json: bool,
}

/// Builds and runs the bench programs and prints their report.
pub(crate) fn run(ws: &Workspace, options: BenchOptions) -> Result<(), String> {
    // Progress goes to stderr throughout, so that with `--json` stdout carries nothing but the JSON object.
    eprintln!("bench: building offspring-bench (release)");
    util::run_checked(&mut ws.cargo(["build", "--release", "-p", "offspring-bench"]))?;

    let exe = ws.release_binary("offspring-bench");
    let mut command = Command::new(&exe);
    if options.quick {
        command.arg("--quick");
    }
    command.current_dir(&ws.root);
    let mut collector = Collector::default();
    let mut status = match run_program("offspring-bench", &mut command, TIME_LIMIT, &mut collector)
    {
        Ok(status) => check_status(status),
        Err(err) => Err(format!("cannot run {}: {err}", exe.display())),
    };
    // The live view's cost, from a program of its own: the one above is built without the
    // view, as a program that does not ask for it is.
    if status.is_ok() {
        status = run_dashboard(ws, options, &mut collector);
    }

    // The baseline only means something next to offspring's figures, so it is skipped when those failed.
    let python = if status.is_ok() {
        run_python(ws, options, &mut collector)
    } else {
        PythonStatus::NotRun
    };
    if let Some(note) = python.note() {
        eprintln!("bench: note: {note}");
    }

    let report = collector.finish(python);
    for warning in &report.warnings {
        eprintln!("bench: warning: {warning}");
    }
    if options.json {
        println!("{}", render_json(&report));
    } else {
        print!("{}", render_text(&report));
    }
    status
}

/// Builds and runs `offspring-bench-dashboard` (the live view's cost) into the collector.
fn run_dashboard(
    ws: &Workspace,
    options: BenchOptions,
    collector: &mut Collector,
) -> Result<(), String> {
    eprintln!("bench: building offspring-bench-dashboard (release, feature `dashboard`)");
    util::run_checked(&mut ws.cargo([
        "build",
        "--release",
        "-p",
        "offspring-bench",
        "--features",
        "dashboard",
        "--bin",
        "offspring-bench-dashboard",
    ]))?;
    let exe = ws.release_binary("offspring-bench-dashboard");
    let mut command = Command::new(&exe);
    if options.quick {
        command.arg("--quick");
    }
    command.current_dir(&ws.root);
    match run_program(
        "offspring-bench-dashboard",
        &mut command,
        TIME_LIMIT,
        collector,
    ) {
        Ok(status) => check_status(status),
        Err(err) => Err(format!("cannot run {}: {err}", exe.display())),
    }
}

/// Runs the Python baseline into the same collector, turning every way it can fail into a [`PythonStatus`] rather than an error.
fn run_python(ws: &Workspace, options: BenchOptions, collector: &mut Collector) -> PythonStatus {
    let mut command = Command::new(PYTHON);
    command.arg(PYTHON_SCRIPT).current_dir(&ws.root);
    if options.quick {
        command.arg("--quick");
    }
    match run_program(
        "the Python baseline",
        &mut command,
        PYTHON_TIME_LIMIT,
        collector,
    ) {
        Ok(Some(status)) if status.success() => PythonStatus::Ran,
        Ok(Some(status)) => PythonStatus::Failed(status.to_string()),
        Ok(None) => PythonStatus::Failed(format!(
            "overran its {}s limit and was killed",
            PYTHON_TIME_LIMIT.as_secs()
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => PythonStatus::NotFound,
        Err(err) => PythonStatus::Failed(format!("cannot run {PYTHON}: {err}")),
    }
}
