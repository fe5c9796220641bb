//! Project automation for offspring, run as `cargo xtask <command>`: `ci` runs every check CI runs, `bench` runs the benchmarks, `timeline` draws a trace file as SVG, `cross` runs the suite as Windows binaries under Wine and checks macOS, `browser` checks the live view in a headless browser.
//!
//! The crate is std-only on purpose: it must build quickly on a fresh machine before anything else does. Its one dependency, `offspring-timeline`, is std-only too.

#![forbid(unsafe_code)]

mod bench;
mod browser;
mod ci;
mod cross;
mod slurm;
mod tidy;
mod util;

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bench::BenchOptions;
use ci::CiOptions;
use util::Workspace;

const USAGE: &str = "\
Usage: cargo xtask <command> [options]

Commands:
  ci [--skip <step>[,<step>...]]
        Run every CI check in order, stopping at the first failure.
        Steps: fmt, tidy, clippy, test, test-tcp, examples, slurm, browser,
        doc, cross, bench.
  bench [--quick] [--json]
        Build and run offspring-bench, then the Python baseline
        (python3 xtask/bench/baseline.py, skipped with a note if python3 is
        missing); print offspring, Python and the raw-socket floor side by
        side with the targets, or one JSON object with --json.
        --quick takes fewer samples.
  browser
        Run the dashboard example and check its live view in headless
        Chromium: every worker listed by pid after live updates; a
        screenshot kept at target/dashboard/dashboard.png.
  slurm
        Install Slurm and munge if missing (apt), start a one-node cluster
        under target/slurm/, run crates/offspring-tests/tests/slurm.rs and
        the quickstart example with OFFSPRING_LAUNCHER=slurm against it, and
        stop the daemons it started. A cluster that cannot start fails.
  cross
        Install what is missing (apt: wine, mingw; rustup targets; a Wine
        prefix with the ProcessPrng shim), run the whole test suite and every
        example as x86_64-pc-windows-gnu binaries under Wine, then cargo check
        and clippy -D warnings for both macOS targets.
  tidy
        Check the invariants of docs/ARCHITECTURE.md that a machine can:
        each crate's allowed dependencies, #![forbid(unsafe_code)] outside
        the transport crate, a // SAFETY: comment on every unsafe block.
  timeline <trace.json>
        Draw a trace-event JSON file (as written with OFFSPRING_TRACE=trace.json)
        as a self-contained SVG timeline on stdout.

Environment:
  OFFSPRING_SKIP_EXAMPLES  comma-separated examples that `ci` builds but does not run
  OFFSPRING_UNDER_WINE     set by `cross` for the Windows tests: heavy tests scale down
  CARGO                    the cargo binary to use (default: cargo)
  CARGO_TARGET_DIR         the target directory (default: target/ at the workspace root)
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
enum Task {
    Ci(CiOptions),
    Bench(BenchOptions),
    Browser,
    Slurm,
    Cross,
    Tidy,
    Timeline(PathBuf),
    Help,
}

/// Why the command line could not be parsed; reported with the usage and exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UsageError(String);

fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let task = match parse_args(&args) {
        Ok(task) => task,
        Err(UsageError(message)) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<(), String> {
    match task {
        Task::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Task::Browser => browser::run(&Workspace::locate()?),
        Task::Slurm => slurm::run(&Workspace::locate()?),
        Task::Cross => cross::run(&Workspace::locate()?),
        Task::Tidy => tidy::run(&Workspace::locate()?.root),
        Task::Ci(options) => ci::run(&Workspace::locate()?, &options),
        Task::Bench(options) => bench::run(&Workspace::locate()?, options),
        Task::Timeline(path) => timeline(&path),
    }
}

/// Prints the SVG timeline of the trace file at `path`. Nothing reaches stdout unless the whole
/// picture was drawn.
fn timeline(path: &Path) -> Result<(), String> {
    let json =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let svg =
        offspring_timeline::render_svg(&json).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(svg.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write the timeline: {e}"))
}

/// Parses the arguments after `cargo xtask`. An empty message in the error means "just show the usage".
fn parse_args(args: &[OsString]) -> Result<Task, UsageError> {
    let args: Vec<&str> = args
        .iter()
        .map(|arg| {
            arg.to_str()
                .ok_or_else(|| UsageError(format!("argument {arg:?} is not valid UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let Some((&command, rest)) = args.split_first() else {
        return Err(UsageError(String::new()));
    };
    match command {
        "ci" => parse_ci(rest).map(Task::Ci),
        "bench" => parse_bench(rest).map(Task::Bench),
        "browser" => match rest.first() {
            None => Ok(Task::Browser),
            Some(arg) => Err(UsageError(format!(
                "unexpected argument `{arg}` to browser"
            ))),
        },
        "slurm" => match rest.first() {
            None => Ok(Task::Slurm),
            Some(arg) => Err(UsageError(format!("unexpected argument `{arg}` to slurm"))),
        },
        "cross" => match rest.first() {
            None => Ok(Task::Cross),
            Some(arg) => Err(UsageError(format!("unexpected argument `{arg}` to cross"))),
        },
        "tidy" => match rest.first() {
            None => Ok(Task::Tidy),
            Some(arg) => Err(UsageError(format!("unexpected argument `{arg}` to tidy"))),
        },
        "timeline" => parse_timeline(rest).map(Task::Timeline),
        "help" | "--help" | "-h" => Ok(Task::Help),
        other => Err(UsageError(format!("unknown command `{other}`"))),
    }
}

fn parse_ci(args: &[&str]) -> Result<CiOptions, UsageError> {
    let mut options = CiOptions::default();
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        let value = if arg == "--skip" {
            *args
                .next()
                .ok_or_else(|| UsageError("--skip needs a step name".to_string()))?
        } else if let Some(value) = arg.strip_prefix("--skip=") {
            value
        } else {
            return Err(UsageError(format!("unexpected argument `{arg}` to ci")));
        };
        options
            .skip
            .extend(ci::parse_skip(value).map_err(UsageError)?);
    }
    Ok(options)
}

fn parse_timeline(args: &[&str]) -> Result<PathBuf, UsageError> {
    match args {
        [] => Err(UsageError("timeline needs a trace file".to_string())),
        [path] if path.starts_with('-') => Err(UsageError(format!(
            "unexpected option `{path}` to timeline"
        ))),
        [path] => Ok(PathBuf::from(path)),
        [_, extra, ..] => Err(UsageError(format!(
            "unexpected argument `{extra}` to timeline"
        ))),
    }
}

fn parse_bench(args: &[&str]) -> Result<BenchOptions, UsageError> {
    let mut options = BenchOptions::default();
    for &arg in args {
        match arg {
            "--quick" => options.quick = true,
            "--json" => options.json = true,
            other => {
                return Err(UsageError(format!(
                    "unexpected argument `{other}` to bench"
                )));
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Task, UsageError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_args(&args)
    }

    #[test]
    fn no_or_unknown_command_is_a_usage_error() {
        assert_eq!(parse(&[]), Err(UsageError(String::new())));
        assert!(parse(&["deploy"]).is_err());
        assert!(parse(&["cross", "--now"]).is_err());
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse(&["cross"]), Ok(Task::Cross));
        assert_eq!(parse(&["--help"]), Ok(Task::Help));
        assert_eq!(parse(&["ci"]), Ok(Task::Ci(CiOptions { skip: Vec::new() })));
    }

    #[test]
    fn ci_skip_accepts_both_spellings_and_accumulates() {
        assert_eq!(
            parse(&["ci", "--skip", "bench,examples", "--skip=doc"]),
            Ok(Task::Ci(CiOptions {
                skip: vec!["bench".into(), "examples".into(), "doc".into()]
            }))
        );
        assert!(parse(&["ci", "--skip"]).is_err());
        assert!(parse(&["ci", "--skip", "nope"]).is_err());
        assert!(parse(&["ci", "--fast"]).is_err());
    }

    #[test]
    fn bench_flags() {
        assert_eq!(
            parse(&["bench", "--json", "--quick"]),
            Ok(Task::Bench(BenchOptions {
                quick: true,
                json: true
            }))
        );
        assert_eq!(parse(&["bench"]), Ok(Task::Bench(BenchOptions::default())));
        assert!(parse(&["bench", "--slow"]).is_err());
    }

    #[test]
    fn timeline_takes_one_trace_file() {
        assert_eq!(
            parse(&["timeline", "run/trace.json"]),
            Ok(Task::Timeline(PathBuf::from("run/trace.json")))
        );
        assert_eq!(
            parse(&["timeline"]),
            Err(UsageError("timeline needs a trace file".into()))
        );
        assert!(parse(&["timeline", "a.json", "b.json"]).is_err());
        assert!(parse(&["timeline", "--open"]).is_err());
    }
}
