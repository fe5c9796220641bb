//! Tests of the protocol, the statistics, the report and its rendering.

use super::protocol::*;
use super::render::*;
use super::report::*;
use super::stats::*;

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
        .filter(|line| !line.starts_with("figure\tpython.") && !line.starts_with("sample\tpython."))
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
