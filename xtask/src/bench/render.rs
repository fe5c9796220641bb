//! The report as text tables or as one JSON object.

use std::fmt::Write as _;

use super::programs::PYTHON_SCRIPT;
use super::report::{Figure, Report, Source, advantage};
use crate::util::{self, Align};

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
pub(crate) fn figure_cell(figure: &Figure, row_unit: &str) -> String {
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
pub(crate) fn advantage_cell(offspring: Option<&Figure>, other: Option<&Figure>) -> String {
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

pub(crate) fn json_option(value: Option<f64>) -> String {
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
