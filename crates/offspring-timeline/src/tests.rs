//! Rendering tests: traces in, SVG out, read back with an XML parser.

use std::error::Error;

use roxmltree::{Document, Node};

use crate::{TimelineError, render_svg};

type TestResult = Result<(), Box<dyn Error>>;

/// The trace an offspring parent writes, in miniature.
const SAMPLE: &str = r#"{"displayTimeUnit":"ms","otherData":{"program":"quickstart","parent_pid":100},"traceEvents":[
 {"ph":"M","name":"process_name","pid":100,"tid":100,"args":{"name":"parent"}},
 {"ph":"M","name":"process_sort_index","pid":100,"tid":100,"args":{"sort_index":0}},
 {"ph":"M","name":"thread_name","pid":100,"tid":100,"args":{"name":"scheduler"}},
 {"ph":"M","name":"process_name","pid":201,"tid":201,"args":{"name":"worker 1 (pid 201)"}},
 {"ph":"X","cat":"worker","name":"worker 1","pid":201,"tid":201,"ts":120.0,"dur":90000.5,"args":{"worker_id":1,"exit":"shut down"}},
 {"ph":"X","cat":"task","name":"quickstart::count_primes","pid":201,"tid":201,"ts":400.2,"dur":5000.0,"args":{"task_id":7,"index":3,"outcome":"ok"}},
 {"ph":"X","cat":"task","name":"boom","pid":201,"tid":201,"ts":6000,"dur":12,"args":{"task_id":8,"index":0,"outcome":"panicked: boom at src/main.rs:4:5"}},
 {"ph":"i","cat":"scheduler","name":"dispatch","pid":100,"tid":100,"ts":390.0,"s":"t","args":{"task_id":7,"worker_pid":201,"items":4}},
 {"ph":"X","cat":"scheduler","name":"pool 1 job 3 (map, 400 items)","pid":100,"tid":100,"ts":10,"dur":95000,"args":{}},
 {"ph":"C","name":"queued","pid":100,"tid":100,"ts":10,"args":{"queued":400}}
]}"#;

fn has_class(node: &Node<'_, '_>, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|classes| classes.split(' ').any(|c| c == class))
}

fn with_class<'a, 'i>(doc: &'a Document<'i>, class: &'a str) -> Vec<Node<'a, 'i>> {
    doc.descendants().filter(|n| has_class(n, class)).collect()
}

fn title(node: &Node<'_, '_>) -> String {
    node.children()
        .find(|c| c.has_tag_name("title"))
        .and_then(|t| t.text())
        .unwrap_or_default()
        .to_string()
}

fn header(doc: &Document<'_>) -> String {
    with_class(doc, "header")
        .first()
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn sample_renders_well_formed_svg() -> TestResult {
    let svg = render_svg(SAMPLE)?;
    let doc = Document::parse(&svg)?;
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    assert_eq!(root.attribute("width"), Some("1200"));
    let height: f64 = root.attribute("height").unwrap_or_default().parse()?;
    assert!((100.0..400.0).contains(&height), "height {height}");

    let lanes = with_class(&doc, "lane");
    let pids: Vec<_> = lanes.iter().map(|l| l.attribute("data-pid")).collect();
    assert_eq!(pids, [Some("100"), Some("201")], "parent first");

    let labels: Vec<String> = with_class(&doc, "label")
        .iter()
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect();
    assert_eq!(labels, ["parent (pid 100)", "worker 1 (pid 201)"]);

    // The job on the parent, and the two tasks on the worker.
    assert_eq!(with_class(&doc, "slice").len(), 3);
    assert_eq!(with_class(&doc, "other").len(), 1);
    assert_eq!(with_class(&doc, "ok").len(), 1);
    assert_eq!(with_class(&doc, "failed").len(), 1);
    assert_eq!(with_class(&doc, "lifetime").len(), 1);
    assert_eq!(with_class(&doc, "instant").len(), 1);
    assert_eq!(with_class(&doc, "counter").len(), 1);
    assert!(with_class(&doc, "merged").is_empty());

    // Everything drawn belongs to its lane.
    assert_eq!(
        lanes[0]
            .descendants()
            .filter(|n| has_class(n, "slice"))
            .count(),
        1
    );
    assert_eq!(
        lanes[1]
            .descendants()
            .filter(|n| has_class(n, "slice"))
            .count(),
        2
    );
    assert!(lanes[0].descendants().any(|n| has_class(&n, "instant")));
    assert!(lanes[1].descendants().any(|n| has_class(&n, "lifetime")));
    Ok(())
}

#[test]
fn sample_header_and_tooltips() -> TestResult {
    let svg = render_svg(SAMPLE)?;
    let doc = Document::parse(&svg)?;
    assert_eq!(
        header(&doc),
        "quickstart · 95.00 ms · 2 processes · 2 tasks (1 failed)"
    );

    let ok = title(&with_class(&doc, "ok")[0]);
    assert_eq!(
        ok,
        "quickstart::count_primes\nduration 5.00 ms at 390.2 µs\ntask id: 7\nindex: 3\noutcome: ok"
    );
    let failed = title(&with_class(&doc, "failed")[0]);
    assert!(failed.starts_with("boom\nduration 12.0 µs"), "{failed}");
    assert!(
        failed.contains("outcome: panicked: boom at src/main.rs:4:5"),
        "{failed}"
    );

    let job = title(&with_class(&doc, "other")[0]);
    assert!(job.contains("thread: scheduler"), "{job}");
    let lifetime = title(&with_class(&doc, "lifetime")[0]);
    assert!(lifetime.contains("exit: shut down"), "{lifetime}");
    let instant = title(&with_class(&doc, "instant")[0]);
    assert!(instant.starts_with("dispatch\nat 380.0 µs"), "{instant}");
    assert!(instant.contains("worker pid: 201"), "{instant}");
    let counter = title(&with_class(&doc, "counter")[0]);
    assert!(counter.starts_with("queued\nmax 400"), "{counter}");

    let axis: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && n.parent().is_some_and(|p| has_class(&p, "axis")))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect();
    assert_eq!(axis, ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms"]);
    Ok(())
}

#[test]
fn output_is_self_contained() -> TestResult {
    let svg = render_svg(SAMPLE)?;
    for forbidden in [
        "<script",
        "href",
        "url(",
        "@import",
        "<image",
        "<foreignObject",
        "<style",
    ] {
        assert!(!svg.contains(forbidden), "{forbidden} in output");
    }
    Ok(())
}

#[test]
fn names_are_escaped() -> TestResult {
    let trace = r#"{"otherData":{"program":"a<b>&\"c\""},"traceEvents":[
        {"ph":"M","name":"process_name","pid":1,"args":{"name":"<&\">'"}},
        {"ph":"X","name":"</title><script>x</script>","pid":1,"tid":1,"ts":0,"dur":10,
         "args":{"outcome":"err & <fail>", "bell":"\u0007"}},
        {"ph":"i","name":"]]>","pid":1,"ts":5}
    ]}"#;
    let svg = render_svg(trace)?;
    assert!(!svg.contains("<script"));
    let doc = Document::parse(&svg)?;
    assert!(header(&doc).starts_with("a<b>&\"c\" · "));
    let label = with_class(&doc, "label")[0]
        .text()
        .unwrap_or_default()
        .to_string();
    assert_eq!(label, "<&\">' (pid 1)");
    let slice = title(&with_class(&doc, "failed")[0]);
    assert!(slice.starts_with("</title><script>x</script>\n"), "{slice}");
    assert!(slice.contains("outcome: err & <fail>"), "{slice}");
    // A control character XML cannot carry is replaced, not passed through.
    assert!(slice.contains("bell: \u{fffd}"), "{slice}");
    assert!(title(&with_class(&doc, "instant")[0]).starts_with("]]>"));
    Ok(())
}

#[test]
fn bare_array_form() -> TestResult {
    let trace = r#"[
        {"ph":"X","name":"a","pid":5,"tid":1,"ts":1000,"dur":2000},
        {"ph":"X","name":"b","pid":3,"tid":1,"ts":1500,"dur":2000.5}
    ]"#;
    let svg = render_svg(trace)?;
    let doc = Document::parse(&svg)?;
    assert!(header(&doc).starts_with("trace · 2.50 ms · 2 processes"));
    let pids: Vec<_> = with_class(&doc, "lane")
        .iter()
        .map(|l| l.attribute("data-pid"))
        .collect();
    assert_eq!(pids, [Some("3"), Some("5")], "by pid without sort indices");
    assert_eq!(with_class(&doc, "slice").len(), 2);
    Ok(())
}

#[test]
fn lanes_follow_parent_then_sort_index_then_pid() -> TestResult {
    let trace = r#"{"otherData":{"parent_pid":"900"},"traceEvents":[
        {"ph":"i","name":"x","pid":900,"ts":0},
        {"ph":"i","name":"x","pid":1,"ts":0},
        {"ph":"i","name":"x","pid":2,"ts":0},
        {"ph":"i","name":"x","pid":50,"ts":1},
        {"ph":"M","name":"process_sort_index","pid":50,"args":{"sort_index":1}},
        {"ph":"M","name":"process_sort_index","pid":2,"args":{"sort_index":2}}
    ]}"#;
    let svg = render_svg(trace)?;
    let doc = Document::parse(&svg)?;
    let pids: Vec<_> = with_class(&doc, "lane")
        .iter()
        .map(|l| l.attribute("data-pid"))
        .collect();
    assert_eq!(pids, [Some("900"), Some("50"), Some("2"), Some("1")]);
    Ok(())
}

#[test]
fn empty_traces_are_errors() {
    for text in [
        r#"{"traceEvents":[]}"#,
        "[]",
        r#"[{"ph":"M","name":"process_name","pid":1,"args":{"name":"p"}}]"#,
        r#"[{"ph":"X","name":"no timestamp","pid":1}, {"ph":"q","ts":5}, 3, "x"]"#,
    ] {
        assert_eq!(render_svg(text), Err(TimelineError::NoEvents), "{text}");
    }
    assert_eq!(
        TimelineError::NoEvents.to_string(),
        "the trace has no timed events to draw"
    );
}

#[test]
fn non_traces_are_errors() {
    for text in ["{}", r#"{"traceEvents":{}}"#, "12", "\"trace\"", "null"] {
        assert!(
            matches!(render_svg(text), Err(TimelineError::NotATrace(_))),
            "{text}"
        );
    }
    let Err(error) = render_svg("{}") else {
        panic!("{{}} is not a trace");
    };
    assert_eq!(
        error.to_string(),
        "not a chrome trace: the top-level object has no `traceEvents` member"
    );
}

#[test]
fn invalid_json_reports_its_position() {
    let text = "{\"traceEvents\": [\n  {\"ph\": \"X\",}\n]}";
    let error = render_svg(text);
    assert_eq!(
        error,
        Err(TimelineError::Json {
            line: 2,
            column: 14,
            message: "expected a string key, found `}`".into()
        })
    );
    assert!(matches!(
        render_svg(&format!("{SAMPLE} trailing")),
        Err(TimelineError::Json { .. })
    ));
}

#[test]
fn begin_end_pairs_nest_into_rows() -> TestResult {
    // Out of file order on purpose: pairing goes by timestamp.
    let trace = r#"[
        {"ph":"E","pid":1,"tid":1,"ts":90,"args":{"outcome":"ok"}},
        {"ph":"B","name":"outer","pid":1,"tid":1,"ts":0,"args":{"task_id":1}},
        {"ph":"B","name":"inner","pid":1,"tid":1,"ts":10},
        {"ph":"E","pid":1,"tid":1,"ts":20},
        {"ph":"E","pid":1,"tid":2,"ts":5},
        {"ph":"B","name":"open","pid":1,"tid":2,"ts":50},
        {"ph":"X","name":"end marker","pid":2,"tid":1,"ts":100,"dur":0}
    ]"#;
    let svg = render_svg(trace)?;
    let doc = Document::parse(&svg)?;
    let slices = with_class(&doc, "slice");
    let titles: Vec<String> = slices.iter().map(title).collect();
    assert_eq!(slices.len(), 4, "{titles:?}");
    let outer = titles
        .iter()
        .find(|t| t.starts_with("outer"))
        .ok_or("no outer")?;
    assert!(outer.contains("duration 90.0 µs"), "{outer}");
    // The end event's arguments join the begin event's.
    assert!(
        outer.contains("task id: 1") && outer.contains("outcome: ok"),
        "{outer}"
    );
    let open = titles
        .iter()
        .find(|t| t.starts_with("open"))
        .ok_or("no open")?;
    assert!(
        open.contains("duration 50.0 µs") && open.contains("no end event"),
        "{open}"
    );

    let y = |name: &str| -> Option<f64> {
        slices
            .iter()
            .find(|s| title(s).starts_with(name))
            .and_then(|s| s.attribute("y"))
            .and_then(|y| y.parse().ok())
    };
    let (outer_y, inner_y) = (y("outer").ok_or("outer")?, y("inner").ok_or("inner")?);
    assert!(inner_y > outer_y, "a nested slice goes in the row below");
    Ok(())
}

#[test]
fn integer_and_float_timestamps_and_unknown_fields() -> TestResult {
    let trace = r#"{"traceEvents":[
        {"ph":"X","name":"a","pid":1,"tid":1,"ts":0,"dur":1e3,"extra":{"deep":[1,2,{"x":null}]}},
        {"ph":"X","name":"b","pid":1,"tid":1,"ts":1000.5,"dur":999.5,"tts":3},
        {"ph":"b","name":"async","pid":1,"id":"0x1","ts":0},
        {"ph":"s","name":"flow","pid":1,"id":1,"ts":0}
    ],"systemTraceEvents":"ignored"}"#;
    let svg = render_svg(trace)?;
    let doc = Document::parse(&svg)?;
    assert_eq!(with_class(&doc, "slice").len(), 2);
    assert!(header(&doc).contains("2.00 ms"));
    Ok(())
}

#[test]
fn thousands_of_narrow_slices_are_merged() -> TestResult {
    let mut events = vec![
        r#"{"ph":"M","name":"process_name","pid":1,"args":{"name":"worker"}}"#.to_string(),
        r#"{"ph":"X","name":"long","pid":1,"tid":1,"ts":0,"dur":1000,"args":{"outcome":"ok"}}"#
            .to_string(),
    ];
    for i in 0..10_000 {
        let outcome = if i == 5_000 { "panicked" } else { "ok" };
        events.push(format!(
            r#"{{"ph":"X","cat":"task","name":"t{}","pid":1,"tid":1,"ts":{},"dur":1,"args":{{"task_id":{i},"outcome":"{outcome}"}}}}"#,
            i % 4,
            2000 + 2 * i
        ));
        events.push(format!(
            r#"{{"ph":"i","name":"dispatch","pid":1,"tid":1,"ts":{}}}"#,
            2000 + 2 * i
        ));
        events.push(format!(
            r#"{{"ph":"C","name":"queued","pid":1,"ts":{},"args":{{"queued":{}}}}}"#,
            2000 + 2 * i,
            10_000 - i
        ));
    }
    let trace = format!("[{}]", events.join(",\n"));
    let svg = render_svg(&trace)?;
    assert!(svg.len() < 100_000, "{} bytes", svg.len());
    let doc = Document::parse(&svg)?;

    let slices = with_class(&doc, "slice");
    assert_eq!(slices.len(), 2, "the long slice and one merged run");
    let merged = with_class(&doc, "merged");
    assert_eq!(merged.len(), 1);
    assert!(
        has_class(&merged[0], "failed"),
        "one failure colors the run"
    );
    let text = title(&merged[0]);
    assert!(text.starts_with("10000 slices"), "{text}");
    assert!(text.contains("9999 ok, 1 failed"), "{text}");
    assert!(text.contains("t0 ×2500"), "{text}");

    let instants = with_class(&doc, "instant");
    assert_eq!(instants.len(), 1);
    assert!(title(&instants[0]).starts_with("10000 instants"));
    let counter = with_class(&doc, "counter");
    assert!(title(&counter[0]).contains("10000 samples"));
    let path = counter[0].attribute("d").unwrap_or_default();
    assert!(path.len() < 2_000, "{} bytes of path", path.len());
    Ok(())
}

#[test]
fn single_instant_trace_draws() -> TestResult {
    let svg = render_svg(r#"[{"ph":"I","name":"only","pid":1,"ts":42}]"#)?;
    let doc = Document::parse(&svg)?;
    assert_eq!(with_class(&doc, "instant").len(), 1);
    assert!(header(&doc).starts_with("trace · 1.0 µs · 1 process"));
    Ok(())
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        render_svg(&text),
        Err(TimelineError::Json { message, .. }) if message.contains("nested deeper")
    ));
}

#[test]
fn deep_overlap_is_capped_at_eight_rows() -> TestResult {
    let events: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"ph":"X","name":"s{i}","pid":1,"tid":1,"ts":{i},"dur":{}}}"#,
                1000 - i
            )
        })
        .collect();
    let svg = render_svg(&format!("[{}]", events.join(",")))?;
    let doc = Document::parse(&svg)?;
    let slices = with_class(&doc, "slice");
    assert_eq!(slices.len(), 20);
    let mut rows: Vec<&str> = slices.iter().filter_map(|s| s.attribute("y")).collect();
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows.len(), 8);
    Ok(())
}
