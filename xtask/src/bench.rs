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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{self, Align, Workspace};

/// The longest `offspring-bench` may run before it is killed.
const TIME_LIMIT: Duration = Duration::from_secs(1200);

/// The longest the Python baseline may run before it is killed. A full run takes a few minutes at most.
const PYTHON_TIME_LIMIT: Duration = Duration::from_secs(900);

/// The Python interpreter the baseline runs under, found on `PATH`.
const PYTHON: &str = "python3";

/// The baseline script, relative to the workspace root.
const PYTHON_SCRIPT: &str = "xtask/bench/baseline.py";

/// How long stdout may stay open after a bench program exits. A worker process that inherited the pipe could keep it open indefinitely, and we would rather lose its last lines than hang.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How often a bench program is polled for exit while its output is being read.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

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
    let status = match run_program("offspring-bench", &mut command, TIME_LIMIT, &mut collector) {
        Ok(status) => check_status(status),
        Err(err) => Err(format!("cannot run {}: {err}", exe.display())),
    };

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

/// Starts a bench program with its stdout piped and feeds every line to `collector`, killing the program after `limit`.
///
/// # Errors
///
/// `Err` only when the program cannot be started, so the caller can tell a missing interpreter apart. Once started, the result is the exit status, or `None` when the limit expired and the program was killed and reaped.
fn run_program(
    label: &str,
    command: &mut Command,
    limit: Duration,
    collector: &mut Collector,
) -> io::Result<Option<ExitStatus>> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("$ {}", util::describe(command));
    let started = Instant::now();
    let mut child = command.spawn()?;
    let status = collect_output(&mut child, limit, collector);
    eprintln!(
        "bench: {label} finished in {}",
        util::format_duration(started.elapsed())
    );
    status
}

/// Reads a started program's stdout into `collector` until it exits or overruns `limit`, and reaps it either way.
fn collect_output(
    child: &mut Child,
    limit: Duration,
    collector: &mut Collector,
) -> io::Result<Option<ExitStatus>> {
    let started = Instant::now();
    let Some(stdout) = child.stdout.take() else {
        util::kill_and_reap(child).map_err(io::Error::other)?;
        return Err(io::Error::other("stdout was not captured"));
    };
    let lines = spawn_line_reader(stdout);
    let mut stdout_open = true;
    let status = loop {
        // Reading and polling are interleaved so that non-protocol lines are echoed while the program is still running, and so that a full pipe never blocks it.
        if stdout_open {
            match lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => collector.accept(&line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        } else {
            thread::sleep(POLL_INTERVAL);
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(err) => {
                util::kill_and_reap(child).map_err(io::Error::other)?;
                return Err(io::Error::other(format!("cannot poll it: {err}")));
            }
        }
        if started.elapsed() >= limit {
            util::kill_and_reap(child).map_err(io::Error::other)?;
            break None;
        }
    };
    if stdout_open {
        drain(&lines, collector);
    }
    Ok(status)
}

/// Reads the child's stdout on a thread, line by line, so the main thread can keep polling the child and enforce its time limit.
fn spawn_line_reader(stdout: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) => break,
                Ok(_) => {
                    // Lossy decoding keeps one stray byte from losing a whole line; protocol lines are ASCII anyway.
                    let line = String::from_utf8_lossy(&buffer);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    if sender.send(line).is_err() {
                        break;
                    }
                }
                Err(err) => {
                    eprintln!("bench: warning: cannot read the bench program's stdout: {err}");
                    break;
                }
            }
        }
    });
    receiver
}

/// Collects the lines still in the pipe after the bench program exited, giving up after [`DRAIN_GRACE`].
fn drain(lines: &Receiver<String>, collector: &mut Collector) {
    let deadline = Instant::now() + DRAIN_GRACE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!(
                "bench: warning: stdout still open {}s after the bench program exited (a worker process may hold it); ignoring further output",
                DRAIN_GRACE.as_secs()
            );
            return;
        }
        match lines.recv_timeout(left) {
            Ok(line) => collector.accept(&line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Turns the bench program's exit into the result of the command.
fn check_status(status: Option<ExitStatus>) -> Result<(), String> {
    match status {
        None => Err(format!(
            "offspring-bench overran its {}s limit and was killed",
            TIME_LIMIT.as_secs()
        )),
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("offspring-bench failed ({status})")),
    }
}

/// A figure declaration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FigureDecl {
    pub(crate) id: String,
    pub(crate) unit: String,
    pub(crate) lower_is_better: bool,
    pub(crate) description: String,
}

/// The comparison a ratio is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    AtMost,
    AtLeast,
}

impl Op {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "<=" => Some(Self::AtMost),
            ">=" => Some(Self::AtLeast),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::AtMost => "<=",
            Self::AtLeast => ">=",
        }
    }

    fn holds(self, value: f64, target: f64) -> bool {
        match self {
            Self::AtMost => value <= target,
            Self::AtLeast => value >= target,
        }
    }
}

/// A ratio declaration: median(a)/median(b) compared against a target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatioDecl {
    pub(crate) a: String,
    pub(crate) b: String,
    pub(crate) op: Op,
    pub(crate) target: f64,
    pub(crate) description: String,
}

/// One protocol line of the bench program's stdout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Figure(FigureDecl),
    Sample { id: String, value: f64 },
    Ratio(RatioDecl),
}

/// Parses one stdout line. `Ok(None)` is a line outside the protocol; `Err` is a protocol line that is malformed.
pub(crate) fn parse_line(line: &str) -> Result<Option<Record>, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let Some((tag, rest)) = line.split_once('\t') else {
        return Ok(None);
    };
    // The description is the last field and is split off whole, so a stray tab inside it does not make the line malformed.
    match tag {
        "figure" => {
            let [id, unit, lower, description] = fields::<4>(rest, line)?;
            let lower_is_better = match lower {
                "0" => false,
                "1" => true,
                other => {
                    return Err(format!(
                        "lower_is_better must be 0 or 1, not {other:?} in {line:?}"
                    ));
                }
            };
            Ok(Some(Record::Figure(FigureDecl {
                id: non_empty_id(id, line)?,
                unit: unit.to_string(),
                lower_is_better,
                description: description.to_string(),
            })))
        }
        "sample" => {
            let [id, value] = fields::<2>(rest, line)?;
            Ok(Some(Record::Sample {
                id: non_empty_id(id, line)?,
                value: parse_number(value, line)?,
            }))
        }
        "ratio" => {
            let [a, b, op, target, description] = fields::<5>(rest, line)?;
            let op = Op::parse(op)
                .ok_or_else(|| format!("ratio op must be <= or >=, not {op:?} in {line:?}"))?;
            Ok(Some(Record::Ratio(RatioDecl {
                a: non_empty_id(a, line)?,
                b: non_empty_id(b, line)?,
                op,
                target: parse_number(target, line)?,
                description: description.to_string(),
            })))
        }
        _ => Ok(None),
    }
}

/// Splits the fields after the tag into exactly `N`, the last one taking the rest of the line.
fn fields<'a, const N: usize>(rest: &'a str, line: &str) -> Result<[&'a str; N], String> {
    let parts: Vec<&str> = rest.splitn(N, '\t').collect();
    <[&str; N]>::try_from(parts).map_err(|parts| {
        format!(
            "expected {} tab-separated fields, found {} in {line:?}",
            N + 1,
            parts.len() + 1
        )
    })
}

fn non_empty_id(id: &str, line: &str) -> Result<String, String> {
    if id.is_empty() {
        Err(format!("empty figure id in {line:?}"))
    } else {
        Ok(id.to_string())
    }
}

/// Parses a finite number; infinities and NaN are rejected because they have no meaningful median and no JSON form.
fn parse_number(text: &str, line: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("not a finite number: {text:?} in {line:?}")),
    }
}

/// Summary statistics of one figure's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub(crate) n: usize,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stats {
    /// Computes the statistics, or `None` for no samples.
    pub(crate) fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = median_of_sorted(&sorted)?;
        Some(Self {
            n: sorted.len(),
            median,
            min: *sorted.first()?,
            max: *sorted.last()?,
        })
    }

    /// The spread `(max - min) / median` in percent, or `None` when the median is zero and the spread has no meaning.
    pub(crate) fn spread_percent(&self) -> Option<f64> {
        if self.median == 0.0 {
            None
        } else {
            Some((self.max - self.min) / self.median.abs() * 100.0)
        }
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
pub(crate) fn median_of_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    if n % 2 == 1 {
        Some(sorted[mid])
    } else {
        // Halving before adding keeps the mean of two huge values from overflowing.
        Some(sorted[mid - 1] / 2.0 + sorted[mid] / 2.0)
    }
}

/// A declared figure with its samples, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub(crate) decl: FigureDecl,
    pub(crate) samples: Vec<f64>,
}

impl Figure {
    pub(crate) fn stats(&self) -> Option<Stats> {
        Stats::of(&self.samples)
    }
}

/// Where a figure comes from, told by the prefix of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A bare id: offspring's own measure.
    Offspring,
    /// `python.<base>`: the Python baseline's measure of the same scenario.
    Python,
    /// `floor.<base>`: what raw sockets between two processes allow for it.
    Floor,
}

impl Source {
    /// Splits an id into its source and its base, the part the three sources share.
    pub(crate) fn split(id: &str) -> (Self, &str) {
        if let Some(base) = id.strip_prefix("python.") {
            (Self::Python, base)
        } else if let Some(base) = id.strip_prefix("floor.") {
            (Self::Floor, base)
        } else {
            (Self::Offspring, id)
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Offspring => "offspring",
            Self::Python => "python",
            Self::Floor => "floor",
        }
    }
}

/// What became of the Python baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum PythonStatus {
    /// It ran and exited 0.
    Ran,
    /// There is no `python3` on `PATH`.
    NotFound,
    /// It could not be started, exited non-zero or overran its limit; the figures it reported before that are kept.
    Failed(String),
    /// It was not started, because `offspring-bench` failed first.
    #[default]
    NotRun,
}

impl PythonStatus {
    /// The status in a few words, for the JSON report and the python column.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Ran => "ok".to_string(),
            Self::NotFound => format!("{PYTHON} not found"),
            Self::Failed(reason) => format!("failed: {reason}"),
            Self::NotRun => "not run".to_string(),
        }
    }

    /// What a python cell says when the baseline has no figure for the row.
    fn missing_cell(&self) -> &'static str {
        match self {
            Self::Ran => "-",
            Self::NotFound => "python3 not found",
            Self::Failed(_) => "python failed",
            Self::NotRun => "not run",
        }
    }

    /// A sentence for the reader when the baseline did not run cleanly.
    pub(crate) fn note(&self) -> Option<String> {
        let consequence = "ratios that need its figures are n/a";
        match self {
            Self::Ran => None,
            Self::NotFound => Some(format!(
                "{PYTHON} not found on PATH: the Python baseline was skipped, and {consequence}"
            )),
            Self::Failed(reason) => Some(format!(
                "the Python baseline ({PYTHON} {PYTHON_SCRIPT}) failed: {reason}; figures it reported are kept, and {consequence}"
            )),
            Self::NotRun => Some(format!(
                "the Python baseline was not run because offspring-bench failed; {consequence}"
            )),
        }
    }
}

/// Everything the bench programs reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    /// Figures in declaration order.
    pub(crate) figures: Vec<Figure>,
    pub(crate) ratios: Vec<RatioDecl>,
    /// Malformed or inconsistent lines, reported but not fatal, since figures are never asserted.
    pub(crate) warnings: Vec<String>,
    pub(crate) python: PythonStatus,
}

impl Report {
    fn figure(&self, id: &str) -> Option<&Figure> {
        self.figures.iter().find(|figure| figure.decl.id == id)
    }

    /// The value of a ratio, or `None` when either figure is missing or has no samples, or the denominator is zero.
    pub(crate) fn ratio_value(&self, ratio: &RatioDecl) -> Option<f64> {
        let a = self.figure(&ratio.a)?.stats()?.median;
        let b = self.figure(&ratio.b)?.stats()?.median;
        if b == 0.0 { None } else { Some(a / b) }
    }

    /// Groups the figures into one row per base.
    ///
    /// Rows follow offspring's figures in declaration order. A base that offspring does not measure (Python's chunk size 1, say) gets a row of its own, placed after the row of the figure its source declared just before it, so that it lands next to its relatives.
    pub(crate) fn rows(&self) -> Vec<Row<'_>> {
        let mut rows: Vec<Row<'_>> = Vec::new();
        for source in [Source::Offspring, Source::Floor, Source::Python] {
            let mut after: Option<usize> = None;
            for figure in &self.figures {
                let (from, base) = Source::split(&figure.decl.id);
                if from != source {
                    continue;
                }
                let at = match rows.iter().position(|row| row.base == base) {
                    Some(at) => at,
                    None => {
                        let at = after.map_or(rows.len(), |after| after + 1);
                        rows.insert(at, Row::new(base));
                        at
                    }
                };
                rows[at].set(source, figure);
                after = Some(at);
            }
        }
        rows
    }
}

/// One row of the text report: a base and the figures each source reported for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row<'a> {
    pub(crate) base: &'a str,
    pub(crate) offspring: Option<&'a Figure>,
    pub(crate) python: Option<&'a Figure>,
    pub(crate) floor: Option<&'a Figure>,
}

impl<'a> Row<'a> {
    fn new(base: &'a str) -> Self {
        Self {
            base,
            offspring: None,
            python: None,
            floor: None,
        }
    }

    fn set(&mut self, source: Source, figure: &'a Figure) {
        let slot = match source {
            Source::Offspring => &mut self.offspring,
            Source::Python => &mut self.python,
            Source::Floor => &mut self.floor,
        };
        *slot = Some(figure);
    }

    /// The figure that speaks for the row's unit and direction: offspring's, else Python's, else the floor's.
    fn lead(&self) -> Option<&'a Figure> {
        self.offspring.or(self.python).or(self.floor)
    }
}

/// How many times better offspring's median is than `other`'s: above 1 is better, whichever way the figure is read. For a lower-is-better figure (a time, a size) that is other / offspring; for a higher-is-better one (a rate) offspring / other. `None` when either has no samples or a median of zero.
pub(crate) fn advantage(offspring: &Figure, other: &Figure) -> Option<f64> {
    let ours = offspring.stats()?.median;
    let theirs = other.stats()?.median;
    let (numerator, denominator) = if offspring.decl.lower_is_better {
        (theirs, ours)
    } else {
        (ours, theirs)
    };
    if denominator == 0.0 {
        None
    } else {
        Some(numerator / denominator)
    }
}

/// Accumulates protocol lines into a [`Report`]. Samples may arrive before their figure's declaration, and ratios before the figures they name (or from the other program), so they are joined only at the end.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    decls: Vec<FigureDecl>,
    samples: HashMap<String, Vec<f64>>,
    ratios: Vec<RatioDecl>,
    warnings: Vec<String>,
}

impl Collector {
    /// Takes one stdout line; lines outside the protocol are echoed to stderr so that nothing the bench prints is lost.
    pub(crate) fn accept(&mut self, line: &str) {
        match parse_line(line) {
            Ok(Some(record)) => self.push(record),
            Ok(None) => eprintln!("{line}"),
            Err(err) => self.warnings.push(err),
        }
    }

    pub(crate) fn push(&mut self, record: Record) {
        match record {
            Record::Figure(decl) => {
                if self.decls.iter().any(|known| known.id == decl.id) {
                    self.warnings.push(format!(
                        "figure {:?} declared twice; keeping the first declaration",
                        decl.id
                    ));
                } else {
                    self.decls.push(decl);
                }
            }
            Record::Sample { id, value } => self.samples.entry(id).or_default().push(value),
            Record::Ratio(ratio) => self.ratios.push(ratio),
        }
    }

    /// Joins samples and declarations into the report. A ratio naming a `python.` figure that never came is worth a warning only when the baseline ran cleanly; otherwise the note about the baseline already explains it.
    pub(crate) fn finish(mut self, python: PythonStatus) -> Report {
        let figures: Vec<Figure> = self
            .decls
            .into_iter()
            .map(|decl| {
                let samples = self.samples.remove(&decl.id).unwrap_or_default();
                Figure { decl, samples }
            })
            .collect();
        let mut orphans: Vec<String> = self.samples.into_keys().collect();
        orphans.sort();
        for id in orphans {
            self.warnings
                .push(format!("samples for undeclared figure {id:?} were ignored"));
        }
        let mut undeclared: Vec<&str> = Vec::new();
        for ratio in &self.ratios {
            for id in [ratio.a.as_str(), ratio.b.as_str()] {
                let expected = python == PythonStatus::Ran || Source::split(id).0 != Source::Python;
                if expected
                    && !undeclared.contains(&id)
                    && !figures.iter().any(|figure| figure.decl.id == id)
                {
                    undeclared.push(id);
                }
            }
        }
        for id in undeclared {
            self.warnings
                .push(format!("ratio refers to undeclared figure {id:?}"));
        }
        Report {
            figures,
            ratios: self.ratios,
            warnings: self.warnings,
            python,
        }
    }
}

/// Formats a measured value for the table with about three significant digits, never in exponent form.
pub(crate) fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".to_string()
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        // Enough decimals for three significant digits, capped so that a tiny value still prints as a number rather than a long string of zeros.
        let leading_zeros = (-magnitude.log10()).floor() as usize;
        format!("{value:.*}", (leading_zeros + 3).min(12))
    }
}

/// One figure's cell: the median with its spread, and the unit when it differs from the row's.
fn figure_cell(figure: &Figure, row_unit: &str) -> String {
    let Some(stats) = figure.stats() else {
        return "no samples".to_string();
    };
    let mut cell = format_value(stats.median);
    if let Some(spread) = stats.spread_percent() {
        let _ = write!(cell, " ±{spread:.0}%");
    }
    if figure.decl.unit != row_unit {
        let _ = write!(cell, " {}", figure.decl.unit);
    }
    cell
}

/// The cell comparing offspring with another source, as `<times>x` (see [`advantage`]).
fn advantage_cell(offspring: Option<&Figure>, other: Option<&Figure>) -> String {
    offspring
        .zip(other)
        .and_then(|(ours, theirs)| advantage(ours, theirs))
        .map_or_else(
            || "-".to_string(),
            |times| format!("{}x", format_value(times)),
        )
}

/// Renders the status of the Python baseline, the figures table (one row per base), the ratios table and the figures' descriptions.
pub(crate) fn render_text(report: &Report) -> String {
    let mut out = String::new();
    if let Some(note) = report.python.note() {
        let _ = writeln!(out, "note: {note}\n");
    }
    let rows = report.rows();
    if rows.is_empty() {
        out.push_str("bench: no figures reported\n");
        return out;
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let unit = row.lead().map_or("", |figure| figure.decl.unit.as_str());
            let cell = |figure: Option<&Figure>| {
                figure.map_or_else(|| "-".to_string(), |figure| figure_cell(figure, unit))
            };
            vec![
                row.base.to_string(),
                unit.to_string(),
                cell(row.offspring),
                row.python.map_or_else(
                    || report.python.missing_cell().to_string(),
                    |figure| figure_cell(figure, unit),
                ),
                cell(row.floor),
                advantage_cell(row.offspring, row.python),
                advantage_cell(row.offspring, row.floor),
            ]
        })
        .collect();
    out.push_str(&util::render_table(
        &[
            "figure",
            "unit",
            "offspring",
            "python",
            "floor",
            "vs python",
            "vs floor",
        ],
        &[
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
        ],
        &table,
    ));
    let _ = writeln!(
        out,
        "\nCells: median ±spread (max - min, as % of the median). python: {PYTHON_SCRIPT}, multiprocessing\n\
         with spawn. floor: raw std Unix sockets between two processes. The vs columns say how many times\n\
         better offspring is (above 1: better): the other's median over offspring's for times and sizes,\n\
         offspring's over the other's for rates."
    );
    if !report.ratios.is_empty() {
        let ratio_rows: Vec<Vec<String>> = report
            .ratios
            .iter()
            .map(|ratio| {
                let value = report.ratio_value(ratio);
                vec![
                    format!("{} / {}", ratio.a, ratio.b),
                    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}")),
                    format!("{} {}", ratio.op.as_str(), ratio.target),
                    match value {
                        None => "n/a",
                        Some(v) if ratio.op.holds(v, ratio.target) => "met",
                        Some(_) => "MISSED",
                    }
                    .to_string(),
                    ratio.description.clone(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&util::render_table(
            &["ratio", "value", "target", "status", "description"],
            &[
                Align::Left,
                Align::Right,
                Align::Left,
                Align::Left,
                Align::Left,
            ],
            &ratio_rows,
        ));
    }
    let descriptions: Vec<Vec<String>> = rows
        .iter()
        .flat_map(|row| [row.offspring, row.python, row.floor])
        .flatten()
        .map(|figure| {
            let n = figure.samples.len();
            vec![
                figure.decl.id.clone(),
                n.to_string(),
                figure.decl.description.clone(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&util::render_table(
        &["figure", "n", "what it measures"],
        &[Align::Left, Align::Right, Align::Left],
        &descriptions,
    ));
    out
}

/// Renders the report as one JSON object (written by hand: xtask has no dependencies). `python` is the baseline's status in a few words (`ok` when it ran cleanly). A ratio that cannot be computed has `null` value and `met`.
pub(crate) fn render_json(report: &Report) -> String {
    let mut out = format!(
        "{{\"python\":{},\"figures\":[",
        json_string(&report.python.summary())
    );
    for (index, figure) in report.figures.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let stats = figure.stats();
        let (source, base) = Source::split(&figure.decl.id);
        let samples: Vec<String> = figure.samples.iter().copied().map(json_number).collect();
        // Writing to a String cannot fail, so the fmt::Result is safely ignored.
        let _ = write!(
            out,
            "{{\"id\":{},\"source\":{},\"base\":{},\"unit\":{},\"median\":{},\"min\":{},\"max\":{},\"spread_percent\":{},\"n\":{},\"samples\":[{}],\"description\":{},\"lower_is_better\":{}}}",
            json_string(&figure.decl.id),
            json_string(source.as_str()),
            json_string(base),
            json_string(&figure.decl.unit),
            json_option(stats.map(|s| s.median)),
            json_option(stats.map(|s| s.min)),
            json_option(stats.map(|s| s.max)),
            json_option(stats.and_then(|s| s.spread_percent())),
            figure.samples.len(),
            samples.join(","),
            json_string(&figure.decl.description),
            figure.decl.lower_is_better,
        );
    }
    out.push_str("],\"ratios\":[");
    for (index, ratio) in report.ratios.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let value = report.ratio_value(ratio);
        let met = value.map_or_else(
            || "null".to_string(),
            |v| ratio.op.holds(v, ratio.target).to_string(),
        );
        let _ = write!(
            out,
            "{{\"a\":{},\"b\":{},\"value\":{},\"op\":{},\"target\":{},\"met\":{},\"description\":{}}}",
            json_string(&ratio.a),
            json_string(&ratio.b),
            json_option(value),
            json_string(ratio.op.as_str()),
            json_number(ratio.target),
            met,
            json_string(&ratio.description),
        );
    }
    out.push_str("]}");
    out
}

/// A JSON number; non-finite values (only reachable by overflow in a ratio) become `null`, since JSON cannot express them.
pub(crate) fn json_number(value: f64) -> String {
    if value.is_finite() {
        // Rust's shortest round-trip formatting never uses an exponent and writes 3.0 as `3`, both valid JSON.
        format!("{value}")
    } else {
        "null".to_string()
    }
}

fn json_option(value: Option<f64>) -> String {
    value.map_or_else(|| "null".to_string(), json_number)
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
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
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
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

    fn report_from(lines: &[&str]) -> Report {
        report_with(lines, PythonStatus::Ran)
    }

    fn report_with(lines: &[&str], python: PythonStatus) -> Report {
        let mut collector = Collector::default();
        for line in lines {
            match parse_line(line) {
                Ok(Some(record)) => collector.push(record),
                Ok(None) => {}
                Err(err) => collector.warnings.push(err),
            }
        }
        collector.finish(python)
    }

    #[test]
    fn parses_the_three_record_kinds() {
        assert_eq!(
            parse_line("figure\ttask_round_trip\tus\t1\tone task, there and back"),
            Ok(Some(Record::Figure(FigureDecl {
                id: "task_round_trip".into(),
                unit: "us".into(),
                lower_is_better: true,
                description: "one task, there and back".into(),
            })))
        );
        assert_eq!(
            parse_line("sample\ttask_round_trip\t12.5\r\n"),
            Ok(Some(Record::Sample {
                id: "task_round_trip".into(),
                value: 12.5
            }))
        );
        assert_eq!(
            parse_line(
                "ratio\ttask_round_trip\tfloor.task_round_trip\t<=\t3\tround trip within 3x of the raw socket floor"
            ),
            Ok(Some(Record::Ratio(RatioDecl {
                a: "task_round_trip".into(),
                b: "floor.task_round_trip".into(),
                op: Op::AtMost,
                target: 3.0,
                description: "round trip within 3x of the raw socket floor".into(),
            })))
        );
    }

    #[test]
    fn other_lines_are_ignored() {
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line("warming up..."), Ok(None));
        assert_eq!(parse_line("figure without tabs"), Ok(None));
        assert_eq!(parse_line("note\tsomething\telse"), Ok(None));
    }

    #[test]
    fn descriptions_may_contain_tabs() -> Result<(), String> {
        match parse_line("figure\tx\tns\t0\ta\tb")? {
            Some(Record::Figure(decl)) => assert_eq!(decl.description, "a\tb"),
            other => return Err(format!("unexpected {other:?}")),
        }
        Ok(())
    }

    #[test]
    fn malformed_protocol_lines_are_errors() {
        assert!(parse_line("sample\tx").is_err());
        assert!(parse_line("sample\tx\tfast").is_err());
        assert!(parse_line("sample\tx\tNaN").is_err());
        assert!(parse_line("sample\tx\tinf").is_err());
        assert!(parse_line("sample\t\t1").is_err());
        assert!(parse_line("figure\tx\tns\tyes\tdesc").is_err());
        assert!(parse_line("figure\tx\tns\t1").is_err());
        assert!(parse_line("ratio\ta\tb\t<\t3\tdesc").is_err());
        assert!(parse_line("ratio\ta\tb\t<=\tthree\tdesc").is_err());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_of_sorted(&[]), None);
        assert_eq!(median_of_sorted(&[4.0]), Some(4.0));
        assert_eq!(median_of_sorted(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(median_of_sorted(&[1.0, 2.0, 4.0, 9.0]), Some(3.0));
        assert_eq!(median_of_sorted(&[f64::MAX, f64::MAX]), Some(f64::MAX));
    }

    #[test]
    fn stats_sort_unsorted_samples() {
        let stats = Stats::of(&[9.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(
            stats,
            Some(Stats {
                n: 5,
                median: 4.0,
                min: 1.0,
                max: 9.0
            })
        );
        assert_eq!(stats.and_then(|s| s.spread_percent()), Some(200.0));
        assert_eq!(Stats::of(&[]), None);
        assert_eq!(
            Stats::of(&[0.0, 0.0, 0.0]).and_then(|s| s.spread_percent()),
            None
        );
    }

    #[test]
    fn values_format_with_about_three_significant_digits() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(123456.7), "123457");
        assert_eq!(format_value(100.0), "100");
        assert_eq!(format_value(12.345), "12.35");
        assert_eq!(format_value(1.0), "1.00");
        assert_eq!(format_value(0.5), "0.500");
        assert_eq!(format_value(0.012345), "0.0123");
        assert_eq!(format_value(-0.5), "-0.500");
    }

    #[test]
    fn samples_may_precede_their_declaration_and_orphans_warn() {
        let report = report_from(&[
            "sample\tx\t3",
            "figure\tx\tns\t1\tthe x",
            "sample\tx\t1",
            "sample\tx\t2",
            "sample\tghost\t1",
            "figure\tx\tms\t1\tdeclared again",
            "sample\tx\toops",
        ]);
        assert_eq!(report.figures.len(), 1);
        assert_eq!(report.figures[0].decl.unit, "ns");
        assert_eq!(report.figures[0].samples, vec![3.0, 1.0, 2.0]);
        assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
        assert!(report.warnings.iter().any(|w| w.contains("ghost")));
        assert!(report.warnings.iter().any(|w| w.contains("declared twice")));
        assert!(report.warnings.iter().any(|w| w.contains("oops")));
    }

    /// A run of both programs in the order they report: the floor first, offspring, offspring's ratios, then Python.
    const SAMPLE_RUN: &[&str] = &[
        "figure\tfloor.task_round_trip\tus\t1\traw socket",
        "sample\tfloor.task_round_trip\t10",
        "sample\tfloor.task_round_trip\t8",
        "sample\tfloor.task_round_trip\t12",
        "figure\ttask_round_trip\tus\t1\tone task, there and back",
        "sample\ttask_round_trip\t30",
        "sample\ttask_round_trip\t20",
        "sample\ttask_round_trip\t25",
        "figure\tmap_throughput_auto\titems/s\t0\tmap, automatic chunks",
        "sample\tmap_throughput_auto\t1000",
        "figure\tidle_worker_rss\tKiB\t1\tidle worker",
        "sample\tidle_worker_rss\t4000",
        "ratio\ttask_round_trip\tfloor.task_round_trip\t<=\t3\twithin 3x of the floor",
        "ratio\ttask_round_trip\tfloor.task_round_trip\t<=\t2\twithin 2x of the floor",
        "ratio\tpython.task_round_trip\ttask_round_trip\t>=\t4\t4x faster than Python",
        "ratio\tmap_throughput_auto\tpython.map_throughput_best\t>=\t10\t10x Python's best",
        "figure\tpython.task_round_trip\tus\t1\tPool.apply",
        "sample\tpython.task_round_trip\t100",
        "figure\tpython.map_throughput_chunk_1\titems/s\t0\tmap, chunk 1",
        "sample\tpython.map_throughput_chunk_1\t50",
        "figure\tpython.map_throughput_auto\titems/s\t0\tmap, Python's default",
        "sample\tpython.map_throughput_auto\t400",
        "figure\tpython.map_throughput_best\titems/s\t0\tmap, best chunk",
        "sample\tpython.map_throughput_best\t500",
        "figure\tpython.idle_worker_rss\tKiB\t1\tspawn worker",
        "sample\tpython.idle_worker_rss\t16000",
    ];

    /// The words of the line of `text` that starts with `first` and a space.
    fn words_of<'a>(text: &'a str, first: &str) -> Option<Vec<&'a str>> {
        text.lines()
            .find(|line| line.split_whitespace().next() == Some(first))
            .map(|line| line.split_whitespace().collect())
    }

    #[test]
    fn ids_split_into_source_and_base() {
        assert_eq!(
            Source::split("python.task_round_trip"),
            (Source::Python, "task_round_trip")
        );
        assert_eq!(
            Source::split("floor.payload_64mib"),
            (Source::Floor, "payload_64mib")
        );
        assert_eq!(
            Source::split("task_round_trip"),
            (Source::Offspring, "task_round_trip")
        );
        assert_eq!(Source::split("pythonic"), (Source::Offspring, "pythonic"));
    }

    #[test]
    fn rows_follow_offspring_and_place_others_after_their_predecessor() {
        let report = report_from(SAMPLE_RUN);
        let rows = report.rows();
        let bases: Vec<&str> = rows.iter().map(|row| row.base).collect();
        // Python's chunk size 1 follows task_round_trip, the figure Python declared just before it; Python's best, which offspring does not report here, follows Python's map_throughput_auto.
        assert_eq!(
            bases,
            vec![
                "task_round_trip",
                "map_throughput_chunk_1",
                "map_throughput_auto",
                "map_throughput_best",
                "idle_worker_rss"
            ]
        );
        let first = &rows[0];
        assert_eq!(
            first.offspring.map(|f| f.decl.id.as_str()),
            Some("task_round_trip")
        );
        assert_eq!(
            first.python.map(|f| f.decl.id.as_str()),
            Some("python.task_round_trip")
        );
        assert_eq!(
            first.floor.map(|f| f.decl.id.as_str()),
            Some("floor.task_round_trip")
        );
        assert!(rows[1].offspring.is_none() && rows[1].python.is_some());
    }

    #[test]
    fn a_source_that_only_adds_rows_appends_them() {
        let report = report_from(&[
            "figure\tpython.only\tus\t1\tpython alone",
            "figure\ta\tus\t1\toffspring's",
            "figure\tfloor.b\tus\t1\tthe floor alone",
        ]);
        let bases: Vec<&str> = report.rows().iter().map(|row| row.base).collect();
        assert_eq!(bases, vec!["a", "b", "only"]);
    }

    #[test]
    fn advantage_reads_above_one_as_better_either_way() {
        let figure = |id: &str, lower_is_better: bool, value: f64| Figure {
            decl: FigureDecl {
                id: id.into(),
                unit: "u".into(),
                lower_is_better,
                description: String::new(),
            },
            samples: vec![value],
        };
        // Times: 25 us against Python's 100 us is 4x better.
        assert_eq!(
            advantage(&figure("t", true, 25.0), &figure("python.t", true, 100.0)),
            Some(4.0)
        );
        // Rates: 1000/s against 500/s is 2x better.
        assert_eq!(
            advantage(
                &figure("r", false, 1000.0),
                &figure("python.r", false, 500.0)
            ),
            Some(2.0)
        );
        // Below one is worse: 25 us against a floor of 10 us.
        assert_eq!(
            advantage(&figure("t", true, 25.0), &figure("floor.t", true, 10.0)),
            Some(0.4)
        );
        assert_eq!(
            advantage(&figure("t", true, 0.0), &figure("python.t", true, 1.0)),
            None
        );
    }

    #[test]
    fn ratios_are_met_missed_or_not_available() {
        let report = report_from(SAMPLE_RUN);
        assert_eq!(report.ratio_value(&report.ratios[0]), Some(2.5));
        assert_eq!(report.ratio_value(&report.ratios[2]), Some(4.0));
        let text = render_text(&report);
        let ratio_lines: Vec<&str> = text.lines().filter(|line| line.contains(" / ")).collect();
        assert_eq!(ratio_lines.len(), 4, "{text}");
        assert!(ratio_lines[0].contains("2.50") && ratio_lines[0].contains("<= 3"));
        assert!(ratio_lines[0].contains(" met "));
        assert!(ratio_lines[1].contains("MISSED"));
        assert!(ratio_lines[2].contains("4.00") && ratio_lines[2].contains(" met "));
        assert!(ratio_lines[3].contains("2.00") && ratio_lines[3].contains("MISSED"));
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn text_report_has_one_row_per_base_with_the_three_sources() {
        let text = render_text(&report_from(SAMPLE_RUN));
        assert!(!text.starts_with("note:"), "{text}");
        assert_eq!(
            text.lines()
                .next()
                .map(|line| line.split_whitespace().collect()),
            Some(vec![
                "figure",
                "unit",
                "offspring",
                "python",
                "floor",
                "vs",
                "python",
                "vs",
                "floor"
            ])
        );
        // Offspring 25 us ±40%, Python 100 us, floor 10 us: 4x better than Python, 0.4x the floor.
        assert_eq!(
            words_of(&text, "task_round_trip"),
            Some(vec![
                "task_round_trip",
                "us",
                "25.00",
                "±40%",
                "100",
                "±0%",
                "10.00",
                "±40%",
                "4.00x",
                "0.400x"
            ])
        );
        // A rate: higher is better, and no floor.
        assert_eq!(
            words_of(&text, "map_throughput_auto"),
            Some(vec![
                "map_throughput_auto",
                "items/s",
                "1000",
                "±0%",
                "400",
                "±0%",
                "-",
                "2.50x",
                "-"
            ])
        );
        // A size: lower is better.
        assert_eq!(
            words_of(&text, "idle_worker_rss").map(|words| words[7]),
            Some("4.00x")
        );
        // A base only Python measures.
        assert_eq!(
            words_of(&text, "map_throughput_chunk_1"),
            Some(vec![
                "map_throughput_chunk_1",
                "items/s",
                "-",
                "50.00",
                "±0%",
                "-",
                "-",
                "-"
            ])
        );
        // Every figure is described, under its full id.
        assert_eq!(
            words_of(&text, "python.map_throughput_best"),
            Some(vec![
                "python.map_throughput_best",
                "1",
                "map,",
                "best",
                "chunk"
            ])
        );
    }

    #[test]
    fn cells_name_a_unit_that_differs_from_the_row() {
        let report = report_from(&[
            "figure\tx\tus\t1\tx",
            "sample\tx\t2",
            "figure\tpython.x\tms\t1\tx in ms",
            "sample\tpython.x\t1",
        ]);
        assert_eq!(
            words_of(&render_text(&report), "x").map(|words| words[4..7].to_vec()),
            Some(vec!["1.00", "±0%", "ms"])
        );
    }

    #[test]
    fn without_python_its_column_says_why_and_its_ratios_are_not_available() {
        let offspring_only: Vec<&str> = SAMPLE_RUN
            .iter()
            .copied()
            .filter(|line| {
                !line.starts_with("figure\tpython.") && !line.starts_with("sample\tpython.")
            })
            .collect();
        let report = report_with(&offspring_only, PythonStatus::NotFound);
        // The missing Python figures are explained by the note, not warned about one by one.
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let text = render_text(&report);
        assert!(
            text.starts_with("note: python3 not found on PATH"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|line| line.starts_with("task_round_trip "))
            .unwrap_or_default();
        assert!(row.contains("python3 not found"), "{row}");
        let na: Vec<&str> = text
            .lines()
            .filter(|line| line.contains(" / python.") || line.starts_with("python."))
            .collect();
        assert_eq!(na.len(), 2, "{text}");
        assert!(na.iter().all(|line| line.contains("n/a")), "{text}");

        let failed = report_with(
            &offspring_only,
            PythonStatus::Failed("exit status: 1".into()),
        );
        let text = render_text(&failed);
        assert!(
            text.contains("xtask/bench/baseline.py) failed: exit status: 1;"),
            "{text}"
        );
        assert!(text.contains("python failed"), "{text}");
    }

    #[test]
    fn a_ratio_to_a_missing_python_figure_warns_when_python_ran() {
        let report = report_from(&[
            "figure\ta\tus\t1\ta",
            "ratio\tpython.a\ta\t>=\t2\tfaster than Python",
            "ratio\ta\tpython.a\t<=\t0.5\tthe same, the other way",
        ]);
        assert_eq!(
            report.warnings,
            vec!["ratio refers to undeclared figure \"python.a\"".to_string()]
        );
    }

    #[test]
    fn json_report_has_python_status_figures_and_ratios() {
        let report = report_from(&[
            "figure\tx\tns\t1\tsays \"hi\"",
            "sample\tx\t1.5",
            "sample\tx\t2",
            "figure\tpython.empty\tns\t0\tnothing measured",
            "ratio\tx\tpython.empty\t>=\t0.5\tcannot be computed",
        ]);
        assert_eq!(
            render_json(&report),
            concat!(
                r#"{"python":"ok","figures":["#,
                r#"{"id":"x","source":"offspring","base":"x","unit":"ns","median":1.75,"min":1.5,"max":2,"spread_percent":28.57142857142857,"n":2,"samples":[1.5,2],"description":"says \"hi\"","lower_is_better":true},"#,
                r#"{"id":"python.empty","source":"python","base":"empty","unit":"ns","median":null,"min":null,"max":null,"spread_percent":null,"n":0,"samples":[],"description":"nothing measured","lower_is_better":false}"#,
                r#"],"ratios":["#,
                r#"{"a":"x","b":"python.empty","value":null,"op":">=","target":0.5,"met":null,"description":"cannot be computed"}"#,
                r#"]}"#
            )
        );
        let missing = report_with(&[], PythonStatus::NotFound);
        assert!(render_json(&missing).starts_with(r#"{"python":"python3 not found","#));
        let failed = report_with(&[], PythonStatus::Failed("killed".into()));
        assert!(render_json(&failed).starts_with(r#"{"python":"failed: killed","#));
    }

    #[test]
    fn json_ratio_reports_met() {
        let report = report_from(SAMPLE_RUN);
        let json = render_json(&report);
        assert!(json.contains(
            r#"{"a":"task_round_trip","b":"floor.task_round_trip","value":2.5,"op":"<=","target":3,"met":true,"description":"within 3x of the floor"}"#
        ));
        assert!(json.contains(r#""value":2.5,"op":"<=","target":2,"met":false"#));
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("plain"), r#""plain""#);
        assert_eq!(json_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(json_string("l1\nl2\tx\r"), r#""l1\nl2\tx\r""#);
        assert_eq!(
            json_string("\u{1}\u{8}\u{c}\u{1f}"),
            r#""\u0001\b\f\u001f""#
        );
        assert_eq!(json_string("µs ✓"), "\"µs ✓\"");
    }

    #[test]
    fn json_numbers_are_plain_and_finite() {
        assert_eq!(json_number(3.0), "3");
        assert_eq!(json_number(0.25), "0.25");
        assert_eq!(json_number(-1e-7), "-0.0000001");
        assert_eq!(json_number(f64::INFINITY), "null");
        assert_eq!(json_number(f64::NAN), "null");
    }
}
