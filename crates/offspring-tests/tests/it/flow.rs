//! The task flow as the parent tells it: worker log records under their task's span, in their
//! own target and filtered by the parent's `RUST_LOG`; the last lines before a panic or an
//! exit; and the timeline file of `OFFSPRING_TRACE`. Each runs the `task_flow` program, so
//! the filter and the timeline belong to a process of their own.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Output};

fn run_flow(rust_log: &str, trace: Option<&PathBuf>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_task_flow"));
    command
        .env("RUST_LOG", rust_log)
        .env_remove("OFFSPRING_TRACE");
    if let Some(trace) = trace {
        command.env("OFFSPRING_TRACE", trace);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("task_flow runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "task_flow failed ({status}):\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

fn counter(stdout: &str, name: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("counters "))
        .unwrap_or_else(|| panic!("no counters line:\n{stdout}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("offspring-{}-{name}", std::process::id()))
}

#[test]
fn worker_records_appear_under_their_tasks_span_and_the_timeline_is_complete() {
    let trace = temp_path("flow-trace.json");
    let stdout = run_flow("info", Some(&trace));

    // A worker's info! inside a task: under the task's span (name, id), in its own target,
    // with the worker's pid.
    let line = stdout
        .lines()
        .find(|l| l.contains("working on item"))
        .unwrap_or_else(|| panic!("no forwarded record:\n{stdout}"));
    println!("forwarded: {line}");
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains("task{task="),
        "not under the task span: {line}"
    );
    assert!(line.contains("step"), "the task's name is missing: {line}");
    assert!(line.contains("task_id="), "the task id is missing: {line}");
    assert!(
        line.contains("worker_pid="),
        "the worker pid is missing: {line}"
    );
    assert!(
        line.contains("flow::work:"),
        "the original target is lost: {line}"
    );
    assert!(
        line.contains("n="),
        "the event's fields are missing: {line}"
    );

    // The last line before a panic, and before the task exits its process, reach the parent.
    assert!(stdout.contains("about to panic"), "{stdout}");
    // Windows runs no exit hooks in `ExitProcess`, so a task's own `exit` can lose what is
    // still queued there (docs/platforms.md).
    if cfg!(not(windows)) {
        assert!(stdout.contains("about to exit the process"), "{stdout}");
    }
    assert!(stdout.contains("boom in the task"), "{stdout}");
    // The failure is told in the task's span.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("call failed") && l.contains("task{task=")),
        "{stdout}"
    );
    let forwarded = counter(&stdout, "forwarded");
    println!("records forwarded: {forwarded}");
    assert!(
        forwarded >= 413,
        "12 steps, the last words, 400 tagged: {forwarded}"
    );
    check_tagged(&stdout);
    assert_eq!(counter(&stdout, "dropped"), 0);

    let json = std::fs::read_to_string(&trace).expect("the timeline file was written");
    let _ = std::fs::remove_file(&trace);
    check_timeline(&json);

    let svg = offspring_timeline::render_svg(&json).expect("the timeline renders");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    println!(
        "timeline: {} bytes of JSON, {} bytes of SVG",
        json.len(),
        svg.len()
    );
}

/// The burst of 400 `tagged` calls, submitted one job each in order: every record is told
/// under its own job's span (job ids are consecutive, so `task_id - n` is the same on every
/// line), even when calls of several jobs went to a worker in one batch, which the burst
/// makes happen (fewer batches than calls).
fn check_tagged(stdout: &str) {
    let field = |line: &str, name: &str| -> u64 {
        line.split([' ', '}', '{', ':'])
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let mut offsets = HashSet::new();
    let mut seen = HashSet::new();
    for line in stdout.lines().filter(|l| l.contains("tagged call")) {
        let n = field(line, "n");
        offsets.insert(field(line, "task_id") - n);
        seen.insert(n);
    }
    assert_eq!(seen.len(), 400, "a record of every tagged call:\n{stdout}");
    assert_eq!(
        offsets.len(),
        1,
        "records told under another job's span: {offsets:?}"
    );
    let batches = counter(stdout, "batches");
    println!("400 single calls went in {batches} batches");
    // A batch takes as many queued calls as the task's measured call time fits in 1 ms. Under
    // Wine a call that logs a record takes about that long, so the burst goes in 220 to 398
    // batches of 400 even queued behind busy workers, and once went in 400: there the figure
    // is printed, and the spans are checked all the same.
    if cfg!(not(windows)) {
        assert!(batches < 400, "no calls shared a batch: {batches}");
    }
}

fn check_timeline(json: &str) {
    let root: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    let events = root["traceEvents"].as_array().expect("traceEvents");
    let parent = root["otherData"]["parent_pid"]
        .as_u64()
        .expect("parent pid");
    // Every worker's lifetime, by pid.
    let mut lifetimes: HashMap<u64, (f64, f64)> = HashMap::new();
    for e in events.iter().filter(|e| e["cat"] == "worker") {
        let pid = e["pid"].as_u64().expect("pid");
        let ts = e["ts"].as_f64().expect("ts");
        let dur = e["dur"].as_f64().expect("dur");
        lifetimes.insert(pid, (ts, ts + dur));
    }
    let tasks: Vec<&serde_json::Value> = events.iter().filter(|e| e["cat"] == "task").collect();
    let mut step_jobs = HashSet::new();
    let mut tagged_jobs = HashSet::new();
    let mut pids = HashSet::new();
    for task in &tasks {
        assert_eq!(task["ph"], "X", "a task is a complete slice: {task}");
        let pid = task["pid"].as_u64().expect("pid");
        assert_ne!(pid, parent, "tasks run in workers: {task}");
        let (start, end) = lifetimes
            .get(&pid)
            .copied()
            .unwrap_or_else(|| panic!("a task on a pid with no lifetime: {task}"));
        let ts = task["ts"].as_f64().expect("ts");
        let dur = task["dur"].as_f64().expect("dur");
        assert!(dur >= 0.0, "{task}");
        assert!(
            ts >= start && ts + dur <= end + 0.5,
            "slice outside its worker's lifetime {start}..{end}: {task}"
        );
        if task["name"].as_str().is_some_and(|n| n.ends_with("tagged")) {
            tagged_jobs.insert(task["args"]["job"].as_u64().expect("job"));
        }
        if task["name"].as_str().is_some_and(|n| n.ends_with("step")) {
            assert!(
                step_jobs.insert(task["args"]["job"].as_u64().expect("job")),
                "one slice per task: {task}"
            );
            pids.insert(pid);
        }
    }
    assert_eq!(step_jobs.len(), 12, "one slice per step call");
    // Calls that shared a batch keep their own jobs on the timeline.
    assert_eq!(tagged_jobs.len(), 400, "one job per tagged call");
    assert!(pids.len() >= 3, "the steps ran on 3 workers: {pids:?}");
    let outcome = |name: &str| {
        tasks
            .iter()
            .find(|t| t["name"].as_str().is_some_and(|n| n.ends_with(name)))
            .map(|t| t["args"]["outcome"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no slice for {name}"))
    };
    assert!(outcome("last_words").starts_with("panicked"));
    assert!(outcome("exit_words").starts_with("worker died"));
    println!(
        "timeline: {} events, {} task slices, {} workers",
        events.len(),
        tasks.len(),
        lifetimes.len()
    );
}

#[test]
fn a_target_the_parent_filters_out_is_not_even_sent() {
    let stdout = run_flow("info,flow::work=off", None);
    assert!(!stdout.contains("working on item"), "{stdout}");
    assert!(!stdout.contains("about to panic"), "{stdout}");
    // The results still arrive, and the workers sent no record at all.
    assert!(stdout.contains("result step 11 = Ok(22)"), "{stdout}");
    let forwarded = counter(&stdout, "forwarded");
    println!("records forwarded with flow::work off: {forwarded}");
    assert_eq!(forwarded, 0);
}
