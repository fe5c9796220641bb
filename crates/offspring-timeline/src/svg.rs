//! Lays a [`Trace`] out and writes it as one self-contained SVG document.
//!
//! The page, top to bottom: a header (program, total span, counts), a legend, a time axis
//! with grid lines, then one lane per process. In a lane, a worker's lifetime is a faint bar
//! behind everything, slices are packed into rows (a slice goes in the first row free at its
//! start, so nested and overlapping slices stack), instants are ticks along the top, and
//! counters are step lines along the bottom.
//!
//! The output stays small however long the run: slices narrower than [`MERGE_PX`] that touch
//! on a row become one rectangle whose tooltip counts them, and instants and counter points
//! closer than that are merged the same way. Nothing refers outside the document: no scripts,
//! links, images or fonts beyond the viewer's own sans-serif.
//!
//! Elements carry classes (`lane`, `slice ok`, `slice failed`, `slice other`, `lifetime`,
//! `instant`, `counter`) so tools and tests can find them; colors are presentation
//! attributes, which every SVG renderer honors.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::json::Value;
use crate::trace::{Counter, Instant, Outcome, Process, Slice, Trace};

/// `put!(svg, "format", args…)` appends formatted text to the document.
macro_rules! put {
    ($svg:expr, $($arg:tt)*) => {
        $svg.put(format_args!($($arg)*))
    };
}

/// The document's width in pixels.
pub(crate) const WIDTH: f64 = 1200.0;
/// Where the plot starts: lane labels sit to its left.
const PLOT_X: f64 = 190.0;
const PLOT_WIDTH: f64 = WIDTH - PLOT_X - 24.0;
const HEADER_Y: f64 = 22.0;
const LEGEND_Y: f64 = 42.0;
const AXIS_Y: f64 = 74.0;
const LANES_TOP: f64 = 80.0;
const BOTTOM_MARGIN: f64 = 12.0;
const LANE_PAD: f64 = 5.0;
const ROW_HEIGHT: f64 = 12.0;
const ROW_GAP: f64 = 2.0;
const COUNTER_HEIGHT: f64 = 14.0;
const MIN_LANE_HEIGHT: f64 = 26.0;
const INSTANT_HEIGHT: f64 = 9.0;
/// Rows past this many share the last one: deeper nesting than this is rare, and a lane
/// should not grow without bound.
const MAX_ROWS: usize = 8;
/// Slices, instants and counter points closer than this (in pixels) are merged.
pub(crate) const MERGE_PX: f64 = 0.5;
/// The narrowest rectangle drawn, so that a lone short failure stays visible.
const MIN_RECT_PX: f64 = 1.0;
/// Slices at least this wide are drawn half a pixel short, leaving a gap before the next.
const SEPARATED_PX: f64 = 4.0;
/// About how many ticks the time axis aims for.
const AXIS_TICKS: f64 = 8.0;
/// Lane labels longer than this are cut, with the whole name in their tooltip.
const LABEL_CHARS: usize = 26;
/// Any one text in a tooltip (a name, an argument) is cut past this many characters.
const TEXT_CHARS: usize = 300;
/// At most this many arguments are listed in a tooltip.
const TITLE_ARGS: usize = 8;

const COLOR_OK: &str = "#3f9e5a";
const COLOR_FAILED: &str = "#d9473f";
const COLOR_OTHER: &str = "#5b82d6";
const COLOR_LIFETIME: &str = "#dbe4f1";
const COLOR_INSTANT: &str = "#7a3fb5";
const COLOR_STRIPE: &str = "#f4f5f7";
const COLOR_GRID: &str = "#e1e3e8";
const COLOR_TEXT: &str = "#222222";
const COLOR_MUTED: &str = "#666666";
const COUNTER_COLORS: [&str; 4] = ["#e08a00", "#00897b", "#8e24aa", "#6d4c41"];

/// Renders `trace` as an SVG document.
pub(crate) fn render(trace: &Trace<'_>) -> String {
    let scale = Scale::new(trace.start, trace.end);
    let lanes: Vec<Lane<'_, '_>> = {
        let mut top = LANES_TOP;
        trace
            .processes
            .iter()
            .map(|process| {
                let lane = Lane::new(process, &scale, top);
                top += lane.height;
                lane
            })
            .collect()
    };
    let lanes_bottom = lanes
        .last()
        .map_or(LANES_TOP, |lane| lane.top + lane.height);
    let height = (lanes_bottom + BOTTOM_MARGIN).ceil();

    let mut svg = Svg::default();
    let header = header(trace, &scale);
    put!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\" fill=\"{COLOR_TEXT}\">\n",
        w = N(WIDTH),
        h = N(height),
    );
    put!(svg, "<title>{}</title>\n", Esc(&header));
    put!(
        svg,
        "<rect class=\"background\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    );
    put!(
        svg,
        "<text class=\"header\" x=\"8\" y=\"{}\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        N(HEADER_Y),
        Esc(&header)
    );
    legend(&mut svg);

    put!(svg, "<g class=\"stripes\">\n");
    for (i, lane) in lanes.iter().enumerate() {
        if i % 2 == 0 {
            put!(
                svg,
                "<rect x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{COLOR_STRIPE}\"/>\n",
                N(lane.top),
                N(WIDTH),
                N(lane.height)
            );
        }
    }
    put!(svg, "</g>\n");
    axis(&mut svg, &scale, lanes_bottom);
    for lane in &lanes {
        lane.render(&mut svg, &scale);
    }
    put!(svg, "</svg>\n");
    svg.out
}

/// The header line: program, total span, lanes and tasks.
fn header(trace: &Trace<'_>, scale: &Scale) -> String {
    let (mut tasks, mut failed) = (0usize, 0usize);
    for slice in trace.processes.iter().flat_map(|p| &p.slices) {
        match slice.outcome() {
            Outcome::Ok => tasks += 1,
            Outcome::Failed => {
                tasks += 1;
                failed += 1;
            }
            Outcome::None => {}
        }
    }
    let program = trace.program.unwrap_or("trace");
    let processes = trace.processes.len();
    let mut text = format!(
        "{} · {} · {} process{}",
        truncate(program, TEXT_CHARS),
        duration(scale.span),
        processes,
        if processes == 1 { "" } else { "es" }
    );
    if tasks > 0 {
        let _ = write!(text, " · {tasks} task{}", if tasks == 1 { "" } else { "s" });
        if failed > 0 {
            let _ = write!(text, " ({failed} failed)");
        }
    }
    // A writer that hit its event cap says how many it left out; the picture is partial then.
    if trace.dropped_events > 0.0 {
        let _ = write!(text, " · {} events dropped", number(trace.dropped_events));
    }
    text
}

fn legend(svg: &mut Svg) {
    let items: [(&str, &str, &str); 6] = [
        ("rect", COLOR_OK, "task ok"),
        ("rect", COLOR_FAILED, "task failed"),
        ("rect", COLOR_OTHER, "other slice"),
        ("rect", COLOR_LIFETIME, "worker lifetime"),
        ("tick", COLOR_INSTANT, "instant"),
        ("line", COUNTER_COLORS[0], "counter"),
    ];
    put!(svg, "<g class=\"legend\" font-size=\"11\">\n");
    let mut x = 8.0;
    let y = LEGEND_Y;
    for (shape, color, label) in items {
        match shape {
            "rect" => put!(
                svg,
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{color}\"/>",
                N(x),
                N(y - 9.0)
            ),
            "tick" => put!(
                svg,
                "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"2\"/>",
                N(y - 9.0),
                N(y + 1.0),
                x = N(x + 6.0)
            ),
            _ => put!(
                svg,
                "<path d=\"M{} {}H{}V{}H{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>",
                N(x),
                N(y - 1.0),
                N(x + 6.0),
                N(y - 8.0),
                N(x + 12.0)
            ),
        }
        put!(
            svg,
            "<text x=\"{}\" y=\"{}\">{label}</text>\n",
            N(x + 16.0),
            N(y)
        );
        // Sans-serif at 11 px averages under 6.5 px a character.
        x += 16.0 + label.len() as f64 * 6.5 + 14.0;
    }
    put!(
        svg,
        "<text x=\"{}\" y=\"{}\" fill=\"{COLOR_MUTED}\">slices under {} px are merged; hover for details</text>\n",
        N(x),
        N(y),
        MERGE_PX
    );
    put!(svg, "</g>\n");
}

/// The time axis: tick labels above the lanes, and grid lines through them.
fn axis(svg: &mut Svg, scale: &Scale, bottom: f64) {
    let ticks = Ticks::new(scale.span);
    put!(svg, "<g class=\"axis\" font-size=\"11\">\n");
    put!(
        svg,
        "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{COLOR_MUTED}\"/>\n",
        N(PLOT_X),
        N(PLOT_X + PLOT_WIDTH),
        y = N(AXIS_Y)
    );
    for (i, offset) in ticks.offsets().enumerate() {
        let x = scale.x(scale.t0 + offset);
        put!(
            svg,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{COLOR_GRID}\"/>",
            N(AXIS_Y),
            N(bottom),
            x = N(x)
        );
        // The first label starts at the axis, the others are centred on their tick.
        let anchor = if i == 0 { "start" } else { "middle" };
        put!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"{COLOR_MUTED}\">{}</text>\n",
            N(x),
            N(AXIS_Y - 4.0),
            ticks.label(offset)
        );
    }
    put!(svg, "</g>\n");
}

/// Maps trace time (microseconds) to x.
#[derive(Debug, Clone, Copy)]
struct Scale {
    t0: f64,
    /// The trace's span in microseconds; at least 1 so that a one-instant trace still draws.
    span: f64,
}

impl Scale {
    fn new(start: f64, end: f64) -> Self {
        Self {
            t0: start,
            span: (end - start).max(1.0),
        }
    }

    fn x(&self, t: f64) -> f64 {
        PLOT_X + (t - self.t0) / self.span * PLOT_WIDTH
    }

    /// Microseconds per pixel.
    fn us_per_px(&self) -> f64 {
        self.span / PLOT_WIDTH
    }
}

/// Axis ticks at a round step (1, 2 or 5 times a power of ten), labelled in one unit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ticks {
    /// Step in microseconds.
    step: f64,
    span: f64,
    /// Microseconds per labelled unit, and the unit's name.
    unit: (f64, &'static str),
    decimals: usize,
}

impl Ticks {
    fn new(span: f64) -> Self {
        let raw = span / AXIS_TICKS;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|step| *step >= raw * (1.0 - 1e-9))
            .unwrap_or(10.0 * magnitude);
        let unit = if span >= 1e6 {
            (1e6, "s")
        } else if span >= 1e3 {
            (1e3, "ms")
        } else {
            (1.0, "µs")
        };
        let in_unit = step / unit.0;
        let decimals = if in_unit >= 1.0 - 1e-9 {
            0
        } else {
            // A step of 0.2 needs one decimal, 0.05 two.
            (-in_unit.log10() - 1e-9).ceil().clamp(0.0, 9.0) as usize
        };
        Self {
            step,
            span,
            unit,
            decimals,
        }
    }

    /// Offsets from the trace's start, in microseconds.
    fn offsets(&self) -> impl Iterator<Item = f64> + '_ {
        (0..)
            .map(|k| f64::from(k) * self.step)
            .take_while(|offset| *offset <= self.span * (1.0 + 1e-9))
    }

    fn label(&self, offset: f64) -> String {
        format!("{:.*} {}", self.decimals, offset / self.unit.0, self.unit.1)
    }
}

/// One process's lane, laid out.
struct Lane<'t, 'a> {
    process: &'t Process<'a>,
    top: f64,
    height: f64,
    /// Slices by row, each row in start order.
    rows: Vec<Vec<&'t Slice<'a>>>,
}

impl<'t, 'a> Lane<'t, 'a> {
    fn new(process: &'t Process<'a>, scale: &Scale, top: f64) -> Self {
        let rows = pack(&process.slices, scale);
        let rows_height = if rows.is_empty() {
            0.0
        } else {
            rows.len() as f64 * (ROW_HEIGHT + ROW_GAP) - ROW_GAP
        };
        let counters_height = if process.counters.is_empty() {
            0.0
        } else {
            COUNTER_HEIGHT + ROW_GAP
        };
        let height = (2.0 * LANE_PAD + rows_height + counters_height).max(MIN_LANE_HEIGHT);
        Self {
            process,
            top,
            height,
            rows,
        }
    }

    fn label(&self) -> String {
        let pid = self.process.pid.to_string();
        match self.process.name {
            // Offspring's workers are named `worker N (pid P)` already.
            Some(name) if name.contains(&format!("pid {pid}")) => name.to_string(),
            Some(name) => format!("{name} (pid {pid})"),
            None => format!("pid {pid}"),
        }
    }

    fn render(&self, svg: &mut Svg, scale: &Scale) {
        let process = self.process;
        put!(
            svg,
            "<g class=\"lane\" data-pid=\"{}\">\n",
            Esc(&process.pid.to_string())
        );
        let label = self.label();
        put!(
            svg,
            "<text class=\"label\" x=\"8\" y=\"{}\"{}>{}<title>{}</title></text>\n",
            N(self.top + 16.0),
            if process.is_parent {
                " font-weight=\"bold\""
            } else {
                ""
            },
            Esc(&truncate(&label, LABEL_CHARS)),
            Esc(&truncate(&label, TEXT_CHARS))
        );
        for lifetime in &process.lifetimes {
            let x0 = scale.x(lifetime.start);
            let width = (scale.x(lifetime.end()) - x0).max(MIN_RECT_PX);
            put!(
                svg,
                "<rect class=\"lifetime\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{COLOR_LIFETIME}\"><title>{}</title></rect>\n",
                N(x0),
                N(self.top + 2.0),
                N(width),
                N(self.height - 4.0),
                Esc(&slice_title(lifetime, process, scale))
            );
        }
        for (row, slices) in self.rows.iter().enumerate() {
            let y = self.top + LANE_PAD + row as f64 * (ROW_HEIGHT + ROW_GAP);
            Row {
                svg: &mut *svg,
                scale,
                process,
                y,
            }
            .render(slices);
        }
        instants(svg, scale, &process.instants, self.top);
        let band_bottom = self.top + self.height - LANE_PAD;
        for (i, counter) in process.counters.iter().enumerate() {
            counter_path(
                svg,
                scale,
                counter,
                COUNTER_COLORS[i % COUNTER_COLORS.len()],
                band_bottom,
            );
        }
        put!(svg, "</g>\n");
    }
}

/// Puts each slice in the first row free at its start. A row counts as free a quarter pixel
/// early, so that back-to-back tasks whose clock readings overlap by a hair share a row.
fn pack<'t, 'a>(slices: &'t [Slice<'a>], scale: &Scale) -> Vec<Vec<&'t Slice<'a>>> {
    let slack = 0.25 * scale.us_per_px();
    let mut rows: Vec<Vec<&Slice<'a>>> = Vec::new();
    let mut ends: Vec<f64> = Vec::new();
    for slice in slices {
        let row = match ends.iter().position(|end| *end - slack <= slice.start) {
            Some(row) => row,
            None if ends.len() < MAX_ROWS => {
                rows.push(Vec::new());
                ends.push(f64::NEG_INFINITY);
                ends.len() - 1
            }
            // Every row is busy: overlap the one that frees up first.
            None => ends
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(row, _)| row),
        };
        rows[row].push(slice);
        ends[row] = ends[row].max(slice.end());
    }
    rows
}

/// Draws one row of slices, merging runs of narrow ones.
struct Row<'s, 'p, 'a> {
    svg: &'s mut Svg,
    scale: &'s Scale,
    process: &'p Process<'a>,
    y: f64,
}

impl<'p, 'a> Row<'_, 'p, 'a> {
    fn render(&mut self, slices: &[&'p Slice<'a>]) {
        let mut pending: Option<Merge<'p, 'a>> = None;
        for &slice in slices {
            let x0 = self.scale.x(slice.start);
            let x1 = self.scale.x(slice.end());
            if x1 - x0 >= MERGE_PX {
                if let Some(merge) = pending.take() {
                    self.merged(&merge);
                }
                self.slice(slice, x0, x1);
                continue;
            }
            match &mut pending {
                Some(merge) if x0 <= merge.x1 + MERGE_PX => merge.add(slice, x1),
                _ => {
                    if let Some(merge) = pending.take() {
                        self.merged(&merge);
                    }
                    pending = Some(Merge::new(slice, x0, x1));
                }
            }
        }
        if let Some(merge) = pending.take() {
            self.merged(&merge);
        }
    }

    fn slice(&mut self, slice: &Slice<'_>, x0: f64, x1: f64) {
        let (class, color) = style(slice.outcome());
        // A wide slice gives up half a pixel at its end, so that back-to-back tasks read as
        // separate blocks rather than one bar.
        let width = x1 - x0;
        let width = if width >= SEPARATED_PX {
            width - 0.5
        } else {
            width.max(MIN_RECT_PX)
        };
        put!(
            self.svg,
            "<rect class=\"slice {class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{color}\"><title>{}</title></rect>\n",
            N(x0),
            N(self.y),
            N(width),
            N(ROW_HEIGHT),
            Esc(&slice_title(slice, self.process, self.scale))
        );
    }

    fn merged(&mut self, merge: &Merge<'_, '_>) {
        if merge.count == 1 {
            self.slice(merge.first, merge.x0, merge.x1);
            return;
        }
        // One failure in the run colors all of it: failures must not vanish in a merge.
        let outcome = if merge.failed > 0 {
            Outcome::Failed
        } else if merge.other == 0 {
            Outcome::Ok
        } else {
            Outcome::None
        };
        let (class, color) = style(outcome);
        put!(
            self.svg,
            "<rect class=\"slice {class} merged\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{color}\"><title>{}</title></rect>\n",
            N(merge.x0),
            N(self.y),
            N((merge.x1 - merge.x0).max(MIN_RECT_PX)),
            N(ROW_HEIGHT),
            Esc(&merge.title(self.scale))
        );
    }
}

/// A run of narrow slices drawn as one rectangle.
struct Merge<'p, 'a> {
    first: &'p Slice<'a>,
    x0: f64,
    x1: f64,
    count: usize,
    ok: usize,
    failed: usize,
    other: usize,
    busy: f64,
    start: f64,
    end: f64,
    names: BTreeMap<&'a str, usize>,
}

impl<'p, 'a> Merge<'p, 'a> {
    fn new(first: &'p Slice<'a>, x0: f64, x1: f64) -> Self {
        let mut merge = Self {
            first,
            x0,
            x1,
            count: 0,
            ok: 0,
            failed: 0,
            other: 0,
            busy: 0.0,
            start: first.start,
            end: first.end(),
            names: BTreeMap::new(),
        };
        merge.add(first, x1);
        merge
    }

    fn add(&mut self, slice: &'p Slice<'a>, x1: f64) {
        self.x1 = self.x1.max(x1);
        self.count += 1;
        match slice.outcome() {
            Outcome::Ok => self.ok += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::None => self.other += 1,
        }
        self.busy += slice.dur;
        self.end = self.end.max(slice.end());
        *self.names.entry(slice.name).or_insert(0) += 1;
    }

    fn title(&self, scale: &Scale) -> String {
        let mut title = format!("{} slices, each under {MERGE_PX} px, merged", self.count);
        let counts: Vec<String> = [
            (self.ok, "ok"),
            (self.failed, "failed"),
            (self.other, "other"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let _ = write!(title, "\n{}", counts.join(", "));
        let _ = write!(
            title,
            "\nbusy {} between {} and {}",
            duration(self.busy),
            duration(self.start - scale.t0),
            duration(self.end - scale.t0)
        );
        let mut names: Vec<(&str, usize)> = self.names.iter().map(|(k, v)| (*k, *v)).collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (name, count) in names.iter().take(3) {
            let _ = write!(title, "\n{} ×{count}", truncate(name, TEXT_CHARS));
        }
        if names.len() > 3 {
            let _ = write!(title, "\n… {} other names", names.len() - 3);
        }
        title
    }
}

fn style(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Ok => ("ok", COLOR_OK),
        Outcome::Failed => ("failed", COLOR_FAILED),
        Outcome::None => ("other", COLOR_OTHER),
    }
}

/// A slice's tooltip: its name, duration and start, thread, and scalar arguments.
fn slice_title(slice: &Slice<'_>, process: &Process<'_>, scale: &Scale) -> String {
    let name = if slice.name.is_empty() {
        "(unnamed)"
    } else {
        slice.name
    };
    let mut title = truncate(name, TEXT_CHARS).into_owned();
    let _ = write!(
        title,
        "\nduration {} at {}",
        duration(slice.dur),
        duration(slice.start - scale.t0)
    );
    if slice.unfinished {
        title.push_str(" (no end event: drawn to the end of the trace)");
    }
    if let Some(thread) = process.threads.get(&slice.tid) {
        let _ = write!(title, "\nthread: {}", truncate(thread, TEXT_CHARS));
    }
    push_args(&mut title, &slice.args);
    title
}

/// Appends up to [`TITLE_ARGS`] arguments as `key: value` lines (`task_id` reads `task id`).
fn push_args(title: &mut String, args: &[(&str, &Value)]) {
    for (key, value) in args.iter().take(TITLE_ARGS) {
        let _ = write!(
            title,
            "\n{}: {}",
            truncate(&key.replace('_', " "), TEXT_CHARS),
            truncate(&value_text(value), TEXT_CHARS)
        );
    }
    if args.len() > TITLE_ARGS {
        let _ = write!(title, "\n… {} more", args.len() - TITLE_ARGS);
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(*n),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{} items]", items.len()),
        Value::Object(_) => "{…}".into(),
    }
}

/// Instants as ticks along the top of the lane; ticks closer than [`MERGE_PX`] become one.
fn instants(svg: &mut Svg, scale: &Scale, instants: &[Instant<'_>], top: f64) {
    let mut i = 0;
    while i < instants.len() {
        let x = scale.x(instants[i].ts);
        let mut j = i + 1;
        while j < instants.len() && scale.x(instants[j].ts) - scale.x(instants[j - 1].ts) < MERGE_PX
        {
            j += 1;
        }
        let run = &instants[i..j];
        let title = if let [instant] = run {
            let name = if instant.name.is_empty() {
                "(unnamed)"
            } else {
                instant.name
            };
            let mut title = format!(
                "{}\nat {}",
                truncate(name, TEXT_CHARS),
                duration(instant.ts - scale.t0)
            );
            push_args(&mut title, &instant.args);
            title
        } else {
            let mut names: BTreeMap<&str, usize> = BTreeMap::new();
            for instant in run {
                *names.entry(instant.name).or_insert(0) += 1;
            }
            let mut title = format!(
                "{} instants between {} and {}",
                run.len(),
                duration(run[0].ts - scale.t0),
                duration(run[run.len() - 1].ts - scale.t0)
            );
            for (name, count) in names.iter().take(5) {
                let _ = write!(title, "\n{} ×{count}", truncate(name, TEXT_CHARS));
            }
            title
        };
        put!(
            svg,
            "<line class=\"instant\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{COLOR_INSTANT}\" stroke-width=\"1.5\"><title>{}</title></line>\n",
            N(top + 1.0),
            N(top + 1.0 + INSTANT_HEIGHT),
            Esc(&title),
            x = N(x)
        );
        i = j;
    }
}

/// A counter as a step line in the band above `bottom`, scaled from 0 (or its minimum, if
/// negative) to its maximum. Points within one pixel share one vertical stroke spanning their
/// range, and moves under a quarter pixel are skipped, so the path stays bounded by the
/// plot's width however many samples there are.
fn counter_path(svg: &mut Svg, scale: &Scale, counter: &Counter, color: &str, bottom: f64) {
    let (Some(&(_, first)), Some(&(_, last))) = (counter.points.first(), counter.points.last())
    else {
        return;
    };
    let (mut low, mut high) = (first.min(0.0), first);
    for &(_, v) in &counter.points {
        low = low.min(v);
        high = high.max(v);
    }
    let range = if high > low { high - low } else { 1.0 };
    let y = |v: f64| bottom - (v - low) / range * COUNTER_HEIGHT;

    // Each bucket is one pixel column: its x, and the lowest, highest and last value in it.
    let mut buckets: Vec<(f64, f64, f64, f64)> = Vec::new();
    for &(t, v) in &counter.points {
        let x = scale.x(t);
        match buckets.last_mut() {
            Some((bx, min, max, last)) if x - *bx < 1.0 => {
                *min = min.min(v);
                *max = max.max(v);
                *last = v;
            }
            _ => buckets.push((x, v, v, v)),
        }
    }
    let mut d = String::new();
    let mut pen = f64::NAN;
    for (x, min, max, last) in buckets {
        let stops = [y(min), y(max), y(last)];
        if d.is_empty() {
            let _ = write!(d, "M{} {}", N(x), N(stops[0]));
            pen = stops[0];
        } else if stops.iter().all(|stop| (stop - pen).abs() < 0.25) {
            // Still level: the next horizontal move carries the line on.
            continue;
        } else {
            let _ = write!(d, "H{}", N(x));
        }
        for stop in stops {
            if (stop - pen).abs() >= 0.25 {
                let _ = write!(d, "V{}", N(stop));
                pen = stop;
            }
        }
    }
    let _ = write!(d, "H{}", N(PLOT_X + PLOT_WIDTH));
    let samples = counter.points.len();
    put!(
        svg,
        "<path class=\"counter\" d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.2\"><title>{}</title></path>\n",
        Esc(&format!(
            "{}\nmax {}, last {}, {samples} sample{}",
            truncate(&counter.label, TEXT_CHARS),
            number(high),
            number(last),
            if samples == 1 { "" } else { "s" }
        ))
    );
}

/// A duration in microseconds, in the largest unit that keeps it above 1.
pub(crate) fn duration(us: f64) -> String {
    let abs = us.abs();
    if abs < 1e3 {
        format!("{us:.1} µs")
    } else if abs < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.3} s", us / 1e6)
    }
}

/// An argument or counter value: integers without a fraction, others as Rust prints them.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `text` cut to `max` characters, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some(_) => {
            let cut: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…").into()
        }
    }
}

/// The document being written.
#[derive(Default)]
struct Svg {
    out: String,
}

impl Svg {
    fn put(&mut self, args: fmt::Arguments<'_>) {
        // Writing to a `String` cannot fail: `fmt::Write` returns a `Result` for other sinks.
        let _ = self.out.write_fmt(args);
    }
}

/// A coordinate: at most two decimals, no trailing zeros, never `-0`.
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = (self.0 * 100.0).round() / 100.0;
        if rounded == 0.0 {
            f.write_str("0")
        } else {
            write!(f, "{rounded}")
        }
    }
}

/// Text escaped for XML content and attribute values. Characters XML 1.0 cannot carry
/// (control characters other than tab, newline and carriage return, and U+FFFE and U+FFFF)
/// become U+FFFD, so any string from a trace yields a well-formed document.
pub(crate) struct Esc<'s>(pub(crate) &'s str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(|c: char| {
            matches!(c, '<' | '>' | '&' | '"' | '\'' | '\u{fffe}' | '\u{ffff}')
                || (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
        }) {
            f.write_str(&rest[..i])?;
            let mut chars = rest[i..].chars();
            let c = chars.next().unwrap_or('\u{fffd}');
            f.write_str(match c {
                '<' => "&lt;",
                '>' => "&gt;",
                '&' => "&amp;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => "\u{fffd}",
            })?;
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            Esc("a<b>&\"c\" 'd'").to_string(),
            "a&lt;b&gt;&amp;&quot;c&quot; &#39;d&#39;"
        );
        assert_eq!(
            Esc("tab\tnl\nbell\u{7}\u{ffff}é").to_string(),
            "tab\tnl\nbell\u{fffd}\u{fffd}é"
        );
        assert_eq!(Esc("").to_string(), "");
    }

    #[test]
    fn coordinates_are_short() {
        assert_eq!(N(12.0).to_string(), "12");
        assert_eq!(N(12.345).to_string(), "12.35");
        assert_eq!(N(0.1 + 0.2).to_string(), "0.3");
        assert_eq!(N(-0.001).to_string(), "0");
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration(12.0), "12.0 µs");
        assert_eq!(duration(5000.0), "5.00 ms");
        assert_eq!(duration(95_000.0), "95.00 ms");
        assert_eq!(duration(2_500_000.0), "2.500 s");
    }

    #[test]
    fn axis_ticks_are_round() {
        let ticks = Ticks::new(95_000.0);
        assert_eq!(ticks.step, 20_000.0);
        let labels: Vec<String> = ticks.offsets().map(|o| ticks.label(o)).collect();
        assert_eq!(labels, ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms"]);

        let ticks = Ticks::new(2_500_000.0);
        let labels: Vec<String> = ticks.offsets().map(|o| ticks.label(o)).collect();
        assert_eq!(
            labels,
            ["0.0 s", "0.5 s", "1.0 s", "1.5 s", "2.0 s", "2.5 s"]
        );

        let ticks = Ticks::new(600.0);
        let labels: Vec<String> = ticks.offsets().map(|o| ticks.label(o)).collect();
        assert_eq!(
            labels,
            [
                "0 µs", "100 µs", "200 µs", "300 µs", "400 µs", "500 µs", "600 µs"
            ]
        );

        let ticks = Ticks::new(1.0);
        assert!(ticks.offsets().count() >= 2);
        assert_eq!(ticks.label(0.5), "0.5 µs");

        let ticks = Ticks::new(3_600e6);
        assert_eq!(ticks.label(1_000e6), "1000 s");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo!", 5), "héll…");
    }
}
