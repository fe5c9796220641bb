//! `cargo xtask cross`: the test suite and every example as Windows binaries under Wine, and
//! both macOS targets checked and linted, on a Linux machine.
//!
//! Parts, in order (each a `ci` step named `cross`):
//!
//! 1. `setup`: installs what is missing: the Debian packages `wine`, `wine64` and
//!    `gcc-mingw-w64-x86-64` (as root, with apt), the rustup targets, and a Wine prefix in the
//!    target directory with a `bcryptprimitives.dll` stand-in (`xtask/wine/`): Wine 8.0 lacks
//!    `ProcessPrng`, which every Rust program since 1.78 calls at start.
//! 2. `windows-test`: `cargo test --workspace --target x86_64-pc-windows-gnu`, run by Wine (the
//!    target's `runner` in `.cargo/config.toml`), doctests included, with
//!    `OFFSPRING_UNDER_WINE=1` so heavy tests scale their counts down (process starts cost a
//!    few hundred milliseconds there). `xtask` itself is a host tool and is left out. Then the
//!    long direct-pipe tests again, alone, at their full 100,000 messages.
//! 3. `windows-examples`: every example, built for Windows and run under Wine.
//! 4. `darwin`: `cargo clippy --workspace --all-targets -D warnings` (which type-checks
//!    everything) for `x86_64-apple-darwin` and `aarch64-apple-darwin`. Nothing is linked: there
//!    is no macOS SDK here.
//!
//! Wine's server is stopped at the end of each Wine part, so no process outlives the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::ci;
use crate::util::{self, Workspace};

/// The Windows target run under Wine.
pub(crate) const WINDOWS: &str = "x86_64-pc-windows-gnu";

/// The macOS targets, type-checked and linted only.
pub(crate) const DARWIN: [&str; 2] = ["x86_64-apple-darwin", "aarch64-apple-darwin"];

/// Debian packages the Windows part needs.
const PACKAGES: [&str; 3] = ["wine", "wine64", "gcc-mingw-w64-x86-64"];

/// Set in the Windows tests' environment; tests read it to scale heavy loops down.
pub(crate) const UNDER_WINE_ENV: &str = "OFFSPRING_UNDER_WINE";

/// One part of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Setup,
    WindowsTest,
    WindowsExamples,
    Darwin,
}

impl Part {
    pub(crate) const ALL: [Part; 4] = [
        Part::Setup,
        Part::WindowsTest,
        Part::WindowsExamples,
        Part::Darwin,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Setup => "setup",
            Part::WindowsTest => "windows-test",
            Part::WindowsExamples => "windows-examples",
            Part::Darwin => "darwin",
        }
    }
}

/// Runs every part in order, printing how long each took; stops at the first failure.
pub(crate) fn run(ws: &Workspace) -> Result<(), String> {
    let mut times = Vec::new();
    for part in Part::ALL {
        println!("==> cross {}", part.name());
        let started = Instant::now();
        run_part(ws, part).map_err(|e| format!("cross {} failed: {e}", part.name()))?;
        let took = util::format_duration(started.elapsed());
        println!("<== cross {} passed in {took}", part.name());
        times.push(format!("{} {took}", part.name()));
    }
    println!("cross: all parts passed ({})", times.join(", "));
    Ok(())
}

/// Runs one part.
pub(crate) fn run_part(ws: &Workspace, part: Part) -> Result<(), String> {
    match part {
        Part::Setup => setup(ws),
        Part::WindowsTest => with_wine_server(ws, || {
            let mut command = ws.cargo([
                "test",
                "--workspace",
                "--exclude",
                "xtask",
                "--target",
                WINDOWS,
            ]);
            wine_env(ws, &mut command);
            command.env(UNDER_WINE_ENV, "1");
            util::run_reporting(&mut command)?;
            // The long direct-pipe tests at their full count, alone: in the suite they run
            // fewer messages under Wine, whose pipes are slow enough to starve other tests.
            let mut pipes = ws.cargo([
                "test",
                "-p",
                "offspring-tests",
                "--test",
                "it",
                "--target",
                WINDOWS,
                "--",
                "pipes::a_direct_pipe_carries",
                "--test-threads=1",
            ]);
            wine_env(ws, &mut pipes);
            pipes.env(UNDER_WINE_ENV, "1");
            pipes.env("OFFSPRING_TEST_PIPE_MESSAGES", "100000");
            util::run_reporting(&mut pipes)
        }),
        Part::WindowsExamples => with_wine_server(ws, || {
            let mut build =
                ws.cargo(["build", "-p", "examples", "--examples", "--target", WINDOWS]);
            util::run_reporting(&mut build)?;
            let dir = ws.target_dir.join(WINDOWS).join("debug").join("examples");
            ci::run_built_examples(ws, &|name| {
                let exe = dir.join(format!("{name}.exe"));
                if !exe.is_file() {
                    return Err(format!("FAILED (no binary at {})", exe.display()));
                }
                let mut command = Command::new("wine");
                command.arg(&exe);
                wine_env(ws, &mut command);
                Ok(command)
            })
        }),
        Part::Darwin => {
            for target in DARWIN {
                util::run_reporting(&mut ws.cargo([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--target",
                    target,
                    "--",
                    "-D",
                    "warnings",
                ]))?;
            }
            Ok(())
        }
    }
}

/// The Wine prefix, kept in the target directory so a clean checkout makes its own.
fn prefix(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("wine-prefix")
}

fn wine_env(ws: &Workspace, command: &mut Command) {
    command
        .env("WINEPREFIX", prefix(ws))
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
}

/// Runs `body` with a Wine server started first (so every test shares one, started quietly)
/// and stopped after, whatever `body` returned.
fn with_wine_server(
    ws: &Workspace,
    body: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    util::run_checked(&mut quiet_wine_tool(ws, "wineserver", "-p"))?;
    let result = body();
    stop_wine_server(ws);
    result
}

/// Stops the prefix's Wine server and every Wine process under it, if any run.
fn stop_wine_server(ws: &Workspace) {
    // No server running is fine.
    let _ = quiet_wine_tool(ws, "wineserver", "-k").status();
}

/// One of Wine's own tools on the prefix, with its output (Wine's chatter) discarded.
fn quiet_wine_tool(ws: &Workspace, program: &str, arg: &str) -> Command {
    let mut command = Command::new(program);
    command
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    wine_env(ws, &mut command);
    command
}

fn setup(ws: &Workspace) -> Result<(), String> {
    install_packages()?;
    let mut targets = Command::new("rustup");
    targets
        .current_dir(&ws.root)
        .args(["target", "add", WINDOWS])
        .args(DARWIN);
    util::run_checked(&mut targets)?;
    let prefix = prefix(ws);
    let system32 = prefix.join("drive_c").join("windows").join("system32");
    if !system32.is_dir() {
        util::run_checked(&mut quiet_wine_tool(ws, "wineboot", "--init"))?;
        // wineboot returns before the prefix is written; the server's exit means it is.
        util::run_checked(&mut quiet_wine_tool(ws, "wineserver", "-w"))?;
    }
    if !system32.is_dir() {
        return Err(format!("wineboot made no {}", system32.display()));
    }
    build_shim(ws, &system32.join("bcryptprimitives.dll"))
}

/// Installs the Debian packages that are missing (needs root and apt).
fn install_packages() -> Result<(), String> {
    // `wine64` puts no command on the PATH (wine finds it), so only these two are probed.
    let missing: Vec<&str> = [
        ("wine", "wine"),
        ("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"),
    ]
    .into_iter()
    .filter(|(tool, _)| !util::on_path(tool))
    .map(|(_, package)| package)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("cross: installing {}", missing.join(", "));
    util::apt_install(&PACKAGES)
}

/// Builds the `ProcessPrng` stand-in with mingw into the prefix, unless it is up to date.
fn build_shim(ws: &Workspace, dll: &Path) -> Result<(), String> {
    let source = ws
        .root
        .join("xtask")
        .join("wine")
        .join("bcryptprimitives.c");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(written)) = (modified(dll), modified(&source))
        && built >= written
    {
        return Ok(());
    }
    util::run_checked(
        Command::new("x86_64-w64-mingw32-gcc")
            .args(["-O2", "-shared", "-o"])
            .arg(dll)
            .arg(&source)
            .arg("-ladvapi32"),
    )
}
