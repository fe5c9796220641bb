//! `cargo xtask bench`: builds and runs `offspring-bench`, reads the figures it reports on stdout, and prints them as a table or as JSON.
//!
//! The bench program speaks a line protocol on stdout, one record per line with tab-separated fields; any other line is passed through to stderr:
//!
//! - `figure <id> <unit> <lower_is_better: 0|1> <description>` declares a figure;
//! - `sample <id> <value>` is one measured sample of a figure (many per figure);
//! - `ratio <id_a> <id_b> <op> <target> <description>` compares median(a)/median(b) against the target with `<=` or `>=`.
//!
//! Figures and ratios are reported, never asserted: a missed ratio is printed as `MISSED` but does not fail the run. Only the bench program itself failing (non-zero exit, or overrunning its time limit) does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{self, Align, Workspace};

/// The longest the bench program may run before it is killed.
const TIME_LIMIT: Duration = Duration::from_secs(1200);

/// How long stdout may stay open after the bench program exits. A worker process that inherited the pipe could keep it open indefinitely, and we would rather lose its last lines than hang.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How often the bench program is polled for exit while its output is being read.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BenchOptions {
    /// Pass `--quick` to the bench program: fewer samples, for CI and quick local checks.
    pub(crate) quick: bool,
    /// Print one JSON object on stdout instead of the tables.
    pub(crate) json: bool,
}

/// Builds and runs the bench program and prints its report.
pub(crate) fn run(ws: &Workspace, options: BenchOptions) -> Result<(), String> {
    // Progress goes to stderr throughout, so that with `--json` stdout carries nothing but the JSON object.
    eprintln!("bench: building offspring-bench (release)");
    util::run_checked(&mut ws.cargo(["build", "--release", "-p", "offspring-bench"]))?;

    let exe = ws.release_binary("offspring-bench");
    let mut command = Command::new(&exe);
    if options.quick {
        command.arg("--quick");
    }
    command
        .current_dir(&ws.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("$ {}", util::describe(&command));
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", exe.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("the bench program's stdout was not captured")?;
    let lines = spawn_line_reader(stdout);

    let mut collector = Collector::default();
    let mut stdout_open = true;
    let status = loop {
        // Reading and polling are interleaved so that non-protocol lines are echoed while the bench is still running, and so that a full pipe never blocks it.
        if stdout_open {
            match lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => collector.accept(&line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        } else {
            thread::sleep(POLL_INTERVAL);
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|err| format!("cannot poll the bench program: {err}"))?
        {
            break Some(status);
        }
        if started.elapsed() >= TIME_LIMIT {
            util::kill_and_reap(&mut child)?;
            break None;
        }
    };
    if stdout_open {
        drain(&lines, &mut collector);
    }
    eprintln!(
        "bench: offspring-bench finished in {}",
        util::format_duration(started.elapsed())
    );

    let report = collector.finish();
    for warning in &report.warnings {
        eprintln!("bench: warning: {warning}");
    }
    if options.json {
        println!("{}", render_json(&report));
    } else {
        print!("{}", render_text(&report));
    }
    check_status(status)
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

/// Everything the bench program reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    /// Figures in declaration order.
    pub(crate) figures: Vec<Figure>,
    pub(crate) ratios: Vec<RatioDecl>,
    /// Malformed or inconsistent lines, reported but not fatal, since figures are never asserted.
    pub(crate) warnings: Vec<String>,
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
}

/// Accumulates protocol lines into a [`Report`]. Samples may arrive before their figure's declaration, so they are joined only at the end.
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

    pub(crate) fn finish(mut self) -> Report {
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
        for ratio in &self.ratios {
            for id in [&ratio.a, &ratio.b] {
                if !figures.iter().any(|figure| &figure.decl.id == id) {
                    self.warnings
                        .push(format!("ratio refers to undeclared figure {id:?}"));
                }
            }
        }
        Report {
            figures,
            ratios: self.ratios,
            warnings: self.warnings,
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

/// Renders the figures table and, when there are ratios, the ratios table.
pub(crate) fn render_text(report: &Report) -> String {
    let mut out = String::new();
    if report.figures.is_empty() {
        out.push_str("bench: no figures reported\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .figures
            .iter()
            .map(|figure| {
                let dash = || "-".to_string();
                let stats = figure.stats();
                vec![
                    figure.decl.id.clone(),
                    stats.map_or_else(dash, |s| format_value(s.median)),
                    figure.decl.unit.clone(),
                    stats.map_or_else(dash, |s| format_value(s.min)),
                    stats.map_or_else(dash, |s| format_value(s.max)),
                    stats
                        .and_then(|s| s.spread_percent())
                        .map_or_else(dash, |p| format!("{p:.1}")),
                    stats.map_or(0, |s| s.n).to_string(),
                    figure.decl.description.clone(),
                ]
            })
            .collect();
        out.push_str(&util::render_table(
            &[
                "figure",
                "median",
                "unit",
                "min",
                "max",
                "spread%",
                "n",
                "description",
            ],
            &[
                Align::Left,
                Align::Right,
                Align::Left,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Left,
            ],
            &rows,
        ));
    }
    if !report.ratios.is_empty() {
        let rows: Vec<Vec<String>> = report
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
            &rows,
        ));
    }
    out
}

/// Renders the report as one JSON object (written by hand: xtask has no dependencies). A ratio that cannot be computed has `null` value and `met`.
pub(crate) fn render_json(report: &Report) -> String {
    let mut out = String::from("{\"figures\":[");
    for (index, figure) in report.figures.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let stats = figure.stats();
        let samples: Vec<String> = figure.samples.iter().copied().map(json_number).collect();
        // Writing to a String cannot fail, so the fmt::Result is safely ignored.
        let _ = write!(
            out,
            "{{\"id\":{},\"unit\":{},\"median\":{},\"min\":{},\"max\":{},\"n\":{},\"samples\":[{}],\"description\":{},\"lower_is_better\":{}}}",
            json_string(&figure.decl.id),
            json_string(&figure.decl.unit),
            json_option(stats.map(|s| s.median)),
            json_option(stats.map(|s| s.min)),
            json_option(stats.map(|s| s.max)),
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
        let mut collector = Collector::default();
        for line in lines {
            match parse_line(line) {
                Ok(Some(record)) => collector.push(record),
                Ok(None) => {}
                Err(err) => collector.warnings.push(err),
            }
        }
        collector.finish()
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
                "ratio\ttask_round_trip\tfloor_round_trip\t<=\t3\tround trip within 3x of the raw socket floor"
            ),
            Ok(Some(Record::Ratio(RatioDecl {
                a: "task_round_trip".into(),
                b: "floor_round_trip".into(),
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

    const SAMPLE_RUN: &[&str] = &[
        "figure\ttask_round_trip\tus\t1\tone task, there and back",
        "figure\tfloor_round_trip\tus\t1\traw socket",
        "sample\ttask_round_trip\t30",
        "sample\ttask_round_trip\t20",
        "sample\ttask_round_trip\t25",
        "sample\tfloor_round_trip\t10",
        "sample\tfloor_round_trip\t8",
        "sample\tfloor_round_trip\t12",
        "ratio\ttask_round_trip\tfloor_round_trip\t<=\t3\twithin 3x of the floor",
        "ratio\ttask_round_trip\tfloor_round_trip\t<=\t2\twithin 2x of the floor",
        "ratio\ttask_round_trip\tmissing\t>=\t1\tno such figure",
    ];

    #[test]
    fn ratios_are_met_missed_or_not_available() {
        let report = report_from(SAMPLE_RUN);
        assert_eq!(report.ratio_value(&report.ratios[0]), Some(2.5));
        assert_eq!(report.ratio_value(&report.ratios[2]), None);
        let text = render_text(&report);
        let ratio_lines: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("task_round_trip / "))
            .collect();
        assert_eq!(ratio_lines.len(), 3, "{text}");
        assert!(ratio_lines[0].contains("2.50") && ratio_lines[0].contains("<= 3"));
        assert!(ratio_lines[0].contains(" met "));
        assert!(ratio_lines[1].contains("MISSED"));
        assert!(ratio_lines[2].contains("n/a") && ratio_lines[2].contains(">= 1"));
    }

    #[test]
    fn text_report_lists_every_figure() {
        let report = report_from(SAMPLE_RUN);
        let text = render_text(&report);
        let mut lines = text.lines();
        assert_eq!(
            lines
                .next()
                .map(str::split_whitespace)
                .map(Iterator::collect::<Vec<_>>),
            Some(vec![
                "figure",
                "median",
                "unit",
                "min",
                "max",
                "spread%",
                "n",
                "description"
            ])
        );
        let task = text
            .lines()
            .find(|line| line.starts_with("task_round_trip "))
            .map(|line| line.split_whitespace().collect::<Vec<_>>());
        assert_eq!(
            task,
            Some(vec![
                "task_round_trip",
                "25.00",
                "us",
                "20.00",
                "30.00",
                "40.0",
                "3",
                "one",
                "task,",
                "there",
                "and",
                "back"
            ])
        );
    }

    #[test]
    fn json_report_has_figures_and_ratios() {
        let report = report_from(&[
            "figure\tx\tns\t1\tsays \"hi\"",
            "sample\tx\t1.5",
            "sample\tx\t2",
            "figure\tempty\tns\t0\tnothing measured",
            "ratio\tx\tempty\t>=\t0.5\tcannot be computed",
        ]);
        assert_eq!(
            render_json(&report),
            concat!(
                r#"{"figures":["#,
                r#"{"id":"x","unit":"ns","median":1.75,"min":1.5,"max":2,"n":2,"samples":[1.5,2],"description":"says \"hi\"","lower_is_better":true},"#,
                r#"{"id":"empty","unit":"ns","median":null,"min":null,"max":null,"n":0,"samples":[],"description":"nothing measured","lower_is_better":false}"#,
                r#"],"ratios":["#,
                r#"{"a":"x","b":"empty","value":null,"op":">=","target":0.5,"met":null,"description":"cannot be computed"}"#,
                r#"]}"#
            )
        );
    }

    #[test]
    fn json_ratio_reports_met() {
        let report = report_from(SAMPLE_RUN);
        let json = render_json(&report);
        assert!(json.contains(
            r#"{"a":"task_round_trip","b":"floor_round_trip","value":2.5,"op":"<=","target":3,"met":true,"description":"within 3x of the floor"}"#
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
