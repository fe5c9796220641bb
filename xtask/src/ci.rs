//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.
//!
//! Steps (the names `--skip` accepts): `fmt`, `tidy` (the invariants of `docs/ARCHITECTURE.md` that a machine can check: see `tidy.rs`), `clippy`, `test`, `examples`, `browser` (the live view in headless Chromium: see `browser.rs`), `doc`, `cross` (the whole suite and every example as Windows binaries under Wine, and both macOS targets checked and linted: see `cross.rs`), `bench` (figures printed, never asserted).
//!
//! The `examples` step runs every `[[example]]` of `examples/Cargo.toml` except those named in the comma-separated `OFFSPRING_SKIP_EXAMPLES` environment variable.

use std::env;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::{self, BenchOptions};
use crate::browser;
use crate::cross::{self, Part};
use crate::util::{self, Align, Workspace};

/// The step names, in the order the steps run.
pub(crate) const STEP_NAMES: [&str; 11] = [
    "fmt", "tidy", "clippy", "test", "test-tcp", "examples", "slurm", "browser", "doc", "cross",
    "bench",
];

/// Names of examples that the `examples` step does not run, comma-separated.
pub(crate) const SKIP_EXAMPLES_ENV: &str = "OFFSPRING_SKIP_EXAMPLES";

/// Arguments the `examples` steps give an example (the others get none): the live view's
/// example runs for minutes unless told otherwise.
const EXAMPLE_ARGS: &[(&str, &[&str])] = &[("dashboard", &["--seconds", "6"])];

/// The longest one example may run before it is killed and counted as failed.
const EXAMPLE_TIME_LIMIT: Duration = Duration::from_secs(300);

/// Options of `cargo xtask ci`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CiOptions {
    /// Step names not to run (validated against [`STEP_NAMES`]).
    pub(crate) skip: Vec<String>,
}

/// Parses one `--skip` value: comma-separated step names, each of which must exist, so a typo does not silently run (or skip) the wrong thing.
pub(crate) fn parse_skip(value: &str) -> Result<Vec<String>, String> {
    let names = split_list(value);
    if names.is_empty() {
        return Err("--skip needs at least one step name".to_string());
    }
    for name in &names {
        if !STEP_NAMES.contains(&name.as_str()) {
            return Err(format!(
                "unknown step `{name}` in --skip (steps: {})",
                STEP_NAMES.join(", ")
            ));
        }
    }
    Ok(names)
}

/// Splits a comma-separated list, trimming blanks and dropping empty entries.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// A cargo command with extra environment variables.
    Cargo {
        args: Vec<&'static str>,
        envs: Vec<(&'static str, &'static str)>,
    },
    /// `cargo xtask tidy`, in-process: the invariants a machine can check.
    Tidy,
    /// Build every example, then run each under a time limit.
    Examples,
    /// `cargo xtask browser`: the live view in a headless browser.
    Browser,
    /// `cargo xtask slurm`: the Slurm tests on a one-node cluster.
    Slurm,
    /// One part of `cargo xtask cross`.
    Cross(Part),
    /// `cargo xtask bench --quick`, in-process.
    Bench,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// The name `--skip` matches; several steps may share one (`cross`).
    name: &'static str,
    /// What the header and summary show.
    label: String,
    action: Action,
}

impl Step {
    fn cargo(name: &'static str, args: &[&'static str]) -> Self {
        Self {
            name,
            label: name.to_string(),
            action: Action::Cargo {
                args: args.to_vec(),
                envs: Vec::new(),
            },
        }
    }
}

/// The full sequence of steps, in order.
fn plan() -> Vec<Step> {
    let mut steps = vec![
        Step::cargo("fmt", &["fmt", "--all", "--", "--check"]),
        Step {
            name: "tidy",
            label: "tidy".to_string(),
            action: Action::Tidy,
        },
        Step::cargo(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // Unit, integration and doc tests; stdio is inherited so the test runner's own summary lines appear in the log.
        Step::cargo("test", &["test", "--workspace"]),
        // The integration suite again with every worker over sealed TCP on the loopback:
        // the path of workers on other machines (docs/scale-out.md).
        Step {
            name: "test-tcp",
            label: "test-tcp".to_string(),
            action: Action::Cargo {
                args: vec!["test", "-p", "offspring-tests", "--test", "it"],
                envs: vec![("OFFSPRING_TRANSPORT", "tcp")],
            },
        },
        Step {
            name: "examples",
            label: "examples".to_string(),
            action: Action::Examples,
        },
        Step {
            name: "slurm",
            label: "slurm".to_string(),
            action: Action::Slurm,
        },
        Step {
            name: "browser",
            label: "browser".to_string(),
            action: Action::Browser,
        },
        Step {
            name: "doc",
            label: "doc".to_string(),
            action: Action::Cargo {
                args: vec!["doc", "--workspace", "--no-deps"],
                envs: vec![("RUSTDOCFLAGS", "-D warnings")],
            },
        },
    ];
    for part in Part::ALL {
        steps.push(Step {
            name: "cross",
            label: format!("cross {}", part.name()),
            action: Action::Cross(part),
        });
    }
    steps.push(Step {
        name: "bench",
        label: "bench".to_string(),
        action: Action::Bench,
    });
    steps
}

/// How a step ended, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// Runs the steps in order and prints a summary; the error names the step that failed.
pub(crate) fn run(ws: &Workspace, options: &CiOptions) -> Result<(), String> {
    let started = Instant::now();
    let mut results: Vec<(String, Outcome, Option<Duration>)> = Vec::new();
    for step in plan() {
        if options.skip.iter().any(|name| name == step.name) {
            println!("==> {} (skipped)", step.label);
            results.push((step.label, Outcome::Skipped, None));
            continue;
        }
        println!("==> {}", step.label);
        let step_started = Instant::now();
        let result = execute(ws, &step.action);
        let elapsed = step_started.elapsed();
        match result {
            Ok(()) => {
                println!(
                    "<== {} passed in {}",
                    step.label,
                    util::format_duration(elapsed)
                );
                results.push((step.label, Outcome::Passed, Some(elapsed)));
            }
            Err(err) => {
                println!(
                    "<== {} FAILED after {}",
                    step.label,
                    util::format_duration(elapsed)
                );
                let label = step.label.clone();
                results.push((step.label, Outcome::Failed, Some(elapsed)));
                print_summary(&results, started.elapsed());
                return Err(format!("ci failed at step `{label}`: {err}"));
            }
        }
    }
    print_summary(&results, started.elapsed());
    println!("ci: all steps passed");
    Ok(())
}

fn execute(ws: &Workspace, action: &Action) -> Result<(), String> {
    match action {
        Action::Cargo { args, envs } => {
            let mut command = ws.cargo(args);
            command.envs(envs.iter().copied());
            util::run_reporting(&mut command)
        }
        Action::Tidy => crate::tidy::run(&ws.root),
        Action::Examples => run_examples(ws),
        Action::Browser => browser::run(ws),
        Action::Slurm => crate::slurm::run(ws),
        Action::Cross(part) => cross::run_part(ws, *part),
        Action::Bench => bench::run(
            ws,
            BenchOptions {
                quick: true,
                json: false,
            },
        ),
    }
}

fn print_summary(results: &[(String, Outcome, Option<Duration>)], total: Duration) {
    let mut rows: Vec<Vec<String>> = results
        .iter()
        .map(|(label, outcome, elapsed)| {
            vec![
                label.clone(),
                match outcome {
                    Outcome::Passed => "passed",
                    Outcome::Failed => "FAILED",
                    Outcome::Skipped => "skipped",
                }
                .to_string(),
                elapsed.map_or_else(|| "-".to_string(), util::format_duration),
            ]
        })
        .collect();
    rows.push(vec![
        "total".to_string(),
        String::new(),
        util::format_duration(total),
    ]);
    println!();
    print!(
        "{}",
        util::render_table(
            &["step", "status", "time"],
            &[Align::Left, Align::Left, Align::Right],
            &rows
        )
    );
}

/// The `name = "..."` of every `[[example]]` table in a Cargo manifest, in order. A deliberately small line-based reading: it handles the plain form the examples manifest uses, not all of TOML.
pub(crate) fn example_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_example = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_example = line == "[[example]]";
            continue;
        }
        if !in_example {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "name" {
            continue;
        }
        if let Some(name) = quoted(value.trim()) {
            names.push(name.to_string());
        }
    }
    names
}

/// The contents of a leading `"..."` or `'...'` string, ignoring anything after it such as a comment.
fn quoted(value: &str) -> Option<&str> {
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &value[1..];
    let end = rest.find(quote)?;
    Some(&rest[..end])
}

/// Builds every example in release mode, then runs each to completion, reporting all failures together rather than stopping at the first, since they are independent.
fn run_examples(ws: &Workspace) -> Result<(), String> {
    util::run_checked(&mut ws.cargo(["build", "--release", "-p", "examples", "--examples"]))?;
    run_built_examples(ws, &|name| release_example(ws, name))
}

/// The command running the release build of example `name`; the error is the table's status.
fn release_example(ws: &Workspace, name: &str) -> Result<Command, String> {
    let exe = ws.release_binary(&format!("examples/{name}"));
    exe.is_file()
        .then(|| Command::new(&exe))
        .ok_or_else(|| format!("FAILED (no binary at {})", exe.display()))
}

/// Runs every example (but those in [`SKIP_EXAMPLES_ENV`]) with the command `command_for` makes for it, and prints a table; the error lists the failures.
pub(crate) fn run_built_examples(
    ws: &Workspace,
    command_for: &dyn Fn(&str) -> Result<Command, String>,
) -> Result<(), String> {
    let manifest_path = ws.root.join("examples").join("Cargo.toml");
    let manifest = fs::read_to_string(&manifest_path)
        .map_err(|err| format!("cannot read {}: {err}", manifest_path.display()))?;
    let names = example_names(&manifest);
    let skip = match env::var(SKIP_EXAMPLES_ENV) {
        Ok(value) => split_list(&value),
        Err(env::VarError::NotPresent) => Vec::new(),
        Err(env::VarError::NotUnicode(_)) => {
            return Err(format!("{SKIP_EXAMPLES_ENV} is not valid UTF-8"));
        }
    };
    for name in &skip {
        if !names.contains(name) {
            eprintln!("ci: warning: {SKIP_EXAMPLES_ENV} names `{name}`, which is not an example");
        }
    }
    if names.is_empty() {
        println!(
            "ci: no [[example]] entries in {}; nothing to run",
            manifest_path.display()
        );
        return Ok(());
    }

    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for name in &names {
        if skip.contains(name) {
            println!("--> example {name}: skipped ({SKIP_EXAMPLES_ENV})");
            rows.push(vec![name.clone(), "-".to_string(), "skipped".to_string()]);
            continue;
        }
        println!("--> example {name}");
        let started = Instant::now();
        let status = command_for(name).and_then(|mut command| {
            if let Some((_, args)) = EXAMPLE_ARGS.iter().find(|(example, _)| example == name) {
                command.args(*args);
            }
            run_example(ws, command)
        });
        let elapsed = util::format_duration(started.elapsed());
        let status = match status {
            Ok(()) => "ok".to_string(),
            Err(err) => {
                failed.push(name.clone());
                err
            }
        };
        println!("--> example {name}: {status} in {elapsed}");
        rows.push(vec![name.clone(), elapsed, status]);
    }
    println!();
    print!(
        "{}",
        util::render_table(
            &["example", "time", "status"],
            &[Align::Left, Align::Right, Align::Left],
            &rows
        )
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} example(s) failed: {}",
            failed.len(),
            failed.join(", ")
        ))
    }
}

/// Runs one example's command with stdin closed, under [`EXAMPLE_TIME_LIMIT`]. The error is the short status shown in the table.
fn run_example(ws: &Workspace, mut command: Command) -> Result<(), String> {
    let mut child = command
        .current_dir(&ws.root)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| format!("FAILED (cannot start {}: {err})", util::describe(&command)))?;
    // Killing the example on expiry ends only that process; its workers are expected to exit once their connection to it closes.
    match util::wait_with_limit(&mut child, EXAMPLE_TIME_LIMIT) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!("FAILED ({status})")),
        Ok(None) => Err(format!(
            "TIMED OUT (killed after {}s)",
            EXAMPLE_TIME_LIMIT.as_secs()
        )),
        Err(err) => Err(format!("FAILED ({err})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_names_come_from_example_tables_only() {
        let manifest = r#"
[package]
name = "examples"
version.workspace = true

[dependencies]
offspring.workspace = true

[[example]]
name = "quickstart"
path = "quickstart.rs"

[[example]]
path = "pool.rs"
name="pool_map"   # a comment

[[example]]
name = 'queues'
path = "queues.rs"

[[bin]]
name = "not-an-example"
path = "src/main.rs"
"#;
        assert_eq!(
            example_names(manifest),
            vec!["quickstart", "pool_map", "queues"]
        );
    }

    #[test]
    fn example_names_of_a_manifest_without_examples() {
        assert!(example_names("[package]\nname = \"examples\"\n").is_empty());
    }

    #[test]
    fn skip_accepts_known_steps() -> Result<(), String> {
        assert_eq!(parse_skip("bench")?, vec!["bench"]);
        assert_eq!(parse_skip("examples, cross,")?, vec!["examples", "cross"]);
        Ok(())
    }

    #[test]
    fn skip_rejects_unknown_or_empty() {
        assert!(parse_skip("benches").is_err());
        assert!(parse_skip(" , ").is_err());
    }

    #[test]
    fn plan_runs_the_steps_in_order() {
        let steps = plan();
        let labels: Vec<&str> = steps.iter().map(|step| step.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "fmt",
                "tidy",
                "clippy",
                "test",
                "test-tcp",
                "examples",
                "slurm",
                "browser",
                "doc",
                "cross setup",
                "cross windows-test",
                "cross windows-examples",
                "cross darwin",
                "bench",
            ]
        );
        for step in &steps {
            assert!(STEP_NAMES.contains(&step.name), "{}", step.name);
        }
        for name in STEP_NAMES {
            assert!(steps.iter().any(|step| step.name == name), "{name}");
        }
    }

    /// A workspace whose target directory holds shell scripts standing in for example binaries.
    #[cfg(unix)]
    fn fake_examples(scripts: &[(&str, &str)]) -> Result<Workspace, String> {
        use std::os::unix::fs::PermissionsExt;
        let root = env::temp_dir().join(format!("xtask-ci-test-{}", std::process::id()));
        let dir = root.join("target").join("release").join("examples");
        fs::create_dir_all(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        for (name, body) in scripts {
            let path = dir.join(name);
            fs::write(&path, format!("#!/bin/sh\n{body}\n"))
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)))
                .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        }
        Ok(Workspace {
            target_dir: root.join("target"),
            root,
            cargo: "cargo".into(),
        })
    }

    #[cfg(unix)]
    #[test]
    fn examples_pass_on_exit_zero_and_fail_otherwise() -> Result<(), String> {
        let ws = fake_examples(&[("good", "read line; exit 0"), ("bad", "exit 7")])?;
        // The read proves stdin is closed: it returns at end of input instead of waiting.
        let run = |name| release_example(&ws, name).and_then(|command| run_example(&ws, command));
        let good = run("good");
        let bad = run("bad");
        let missing = run("missing");
        let _ = fs::remove_dir_all(&ws.root);
        assert_eq!(good, Ok(()));
        assert_eq!(bad, Err("FAILED (exit status: 7)".to_string()));
        assert!(missing.is_err_and(|err| err.contains("no binary")));
        Ok(())
    }

    #[test]
    fn doc_step_denies_rustdoc_warnings() {
        let doc = plan().into_iter().find(|step| step.name == "doc");
        assert_eq!(
            doc.map(|step| step.action),
            Some(Action::Cargo {
                args: vec!["doc", "--workspace", "--no-deps"],
                envs: vec![("RUSTDOCFLAGS", "-D warnings")],
            })
        );
    }
}
