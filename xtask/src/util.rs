//! Helpers shared by `ci` and `bench`: finding the workspace, running cargo and child processes under a time limit, and rendering plain-text tables.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// How often a child running under a time limit is polled. Short enough that a quick example does not look slow, long enough to cost nothing.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Where the workspace lives and which cargo drives it.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    /// The workspace root, used as the working directory of every command.
    pub(crate) root: PathBuf,
    /// The cargo binary: `$CARGO` when set (so nested runs use the same toolchain as `cargo xtask`), else `cargo`.
    pub(crate) cargo: OsString,
    /// The target directory: `$CARGO_TARGET_DIR` when set, else `target/` at the root.
    pub(crate) target_dir: PathBuf,
}

impl Workspace {
    /// Locates the workspace from the xtask crate's own manifest directory.
    pub(crate) fn locate() -> Result<Self, String> {
        // The manifest directory is baked in at compile time rather than read at run time, because a `CARGO_MANIFEST_DIR` in the environment may belong to some other crate whose cargo process happened to start us.
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .ok_or_else(|| {
                format!(
                    "cannot find the workspace root: {} has no parent directory",
                    manifest_dir.display()
                )
            })?
            .to_path_buf();
        let cargo = env::var_os("CARGO")
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| OsString::from("cargo"));
        let target_dir = resolve_target_dir(&root, env::var_os("CARGO_TARGET_DIR"));
        Ok(Self {
            root,
            cargo,
            target_dir,
        })
    }

    /// A cargo command that runs at the workspace root.
    pub(crate) fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(&self.cargo);
        command.args(args).current_dir(&self.root);
        command
    }

    /// The path of a release-profile binary built by this workspace (`bin` may include a subdirectory such as `examples/`).
    pub(crate) fn release_binary(&self, bin: &str) -> PathBuf {
        self.target_dir
            .join("release")
            .join(format!("{bin}{}", env::consts::EXE_SUFFIX))
    }
}

/// Resolves the target directory. A relative `CARGO_TARGET_DIR` is taken relative to the root, because that is the working directory of the cargo commands we start and so where cargo itself will put it.
fn resolve_target_dir(root: &Path, from_env: Option<OsString>) -> PathBuf {
    match from_env.filter(|value| !value.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Renders a command as a shell-like line (environment overrides first) for logs.
pub(crate) fn describe(command: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.push(format!(
                "{}={}",
                key.to_string_lossy(),
                shell_quote(&value.to_string_lossy())
            ));
        }
    }
    words.push(shell_quote(&command.get_program().to_string_lossy()));
    for arg in command.get_args() {
        words.push(shell_quote(&arg.to_string_lossy()));
    }
    words.join(" ")
}

/// Quotes a word only when a shell would otherwise split or misread it, so the common case stays readable.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | ',' | '=' | '+' | '@')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Whether `tool` is a file in one of the `PATH` directories.
pub(crate) fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Installs Debian packages with apt (needs root). The package lists may be stale or absent
/// on a fresh machine: on failure, update them once and try again.
pub(crate) fn apt_install(packages: &[&str]) -> Result<(), String> {
    let install = |update: bool| -> Result<(), String> {
        if update {
            run_checked(Command::new("apt-get").args(["update", "-q"]))?;
        }
        run_checked(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    install(false).or_else(|_| install(true))
}

/// Runs a command to completion with inherited stdio, echoing it to stderr first, and fails unless it exits 0.
pub(crate) fn run_checked(command: &mut Command) -> Result<(), String> {
    let line = describe(command);
    eprintln!("$ {line}");
    let status = command
        .status()
        .map_err(|err| format!("cannot start `{line}`: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

/// How long the output of a finished command may still be read: a process it left behind
/// that holds the pipe open must not hang the run.
const OUTPUT_GRACE: Duration = Duration::from_secs(10);

/// How many lines of a failed command's digest are printed.
const DIGEST_LINES: usize = 80;

/// Runs a command that may fail with a lot of output (a test suite, a build), passing its
/// output through as it comes and, when it fails, printing a digest of why (libtest's
/// failure blocks, panics, compiler errors) at the end, and naming the failed tests and the
/// first panic in the error. A log cut to its head and tail then still says what failed.
pub(crate) fn run_reporting(command: &mut Command) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex, PoisonError, mpsc};

    let line = describe(command);
    eprintln!("$ {line}");
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start `{line}`: {err}"))?;
    let digest = Arc::new(Mutex::new(Digest::default()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    let mut forward = |stream: Option<Box<dyn std::io::Read + Send>>, to_stderr: bool| {
        let Some(stream) = stream else {
            return;
        };
        readers += 1;
        let digest = Arc::clone(&digest);
        let done = done_tx.clone();
        thread::spawn(move || {
            for text in BufReader::new(stream).lines().map_while(Result::ok) {
                if to_stderr {
                    let _ = writeln!(std::io::stderr(), "{text}");
                } else {
                    let _ = writeln!(std::io::stdout(), "{text}");
                }
                digest
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .line(&text);
            }
            let _ = done.send(());
        });
    };
    forward(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        false,
    );
    forward(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        true,
    );
    let status = child
        .wait()
        .map_err(|err| format!("cannot wait for `{line}`: {err}"))?;
    let deadline = Instant::now() + OUTPUT_GRACE;
    for _ in 0..readers {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            eprintln!("(output still open {OUTPUT_GRACE:?} after `{line}` ended: left unread)");
            break;
        }
    }
    if status.success() {
        return Ok(());
    }
    let digest = digest.lock().unwrap_or_else(PoisonError::into_inner);
    if !digest.lines.is_empty() {
        println!("==> why `{line}` failed (a digest of its output above):");
        for text in digest.lines.iter().take(DIGEST_LINES) {
            println!("  | {text}");
        }
        if digest.lines.len() > DIGEST_LINES {
            println!("  | ... {} more lines", digest.lines.len() - DIGEST_LINES);
        }
    }
    Err(format!("`{line}` failed ({status}){}", digest.summary()))
}

/// The lines of a command's output that say why it failed.
#[derive(Debug, Default)]
pub(crate) struct Digest {
    /// The lines kept, in order.
    pub(crate) lines: Vec<String>,
    /// How many lines after the current one are kept too (the body of a failure block).
    keep: usize,
    /// Tests that failed, by name.
    failed: Vec<String>,
    /// The first panic's line and the one after it.
    first_panic: Option<String>,
    /// Whether the previous line was a panic's, whose message follows.
    after_panic: bool,
}

impl Digest {
    pub(crate) fn line(&mut self, text: &str) {
        let trimmed = text.trim_start();
        if let Some(name) = text
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            self.failed.push(name.to_owned());
            self.lines.push(text.to_owned());
            return;
        }
        if self.after_panic {
            self.after_panic = false;
            if let Some(first) = &mut self.first_panic
                && !first.contains(": ")
            {
                first.push_str(": ");
                first.push_str(trimmed);
            }
        }
        if trimmed.contains("panicked at") {
            if self.first_panic.is_none() {
                self.first_panic = Some(trimmed.to_owned());
            }
            self.after_panic = true;
            self.keep = self.keep.max(3);
        }
        if text.starts_with("---- ") {
            self.keep = 25;
        } else if text.starts_with("error") || text.starts_with("FAIL") {
            self.keep = self.keep.max(6);
        }
        if self.keep > 0 {
            self.keep -= 1;
            self.lines.push(text.to_owned());
        }
    }

    /// `; failed: a, b; first panic: ...`, or nothing when no test failed or panicked.
    pub(crate) fn summary(&self) -> String {
        let mut out = String::new();
        if !self.failed.is_empty() {
            let shown: Vec<&str> = self.failed.iter().take(5).map(String::as_str).collect();
            out.push_str(&format!("; failed: {}", shown.join(", ")));
            if self.failed.len() > shown.len() {
                out.push_str(&format!(" and {} more", self.failed.len() - shown.len()));
            }
        }
        if let Some(panic) = &self.first_panic {
            out.push_str(&format!("; first panic: {panic}"));
        }
        out
    }
}

/// Waits for a child for at most `limit`, killing and reaping it on expiry. Returns `None` when the limit expired.
pub(crate) fn wait_with_limit(
    child: &mut Child,
    limit: Duration,
) -> Result<Option<ExitStatus>, String> {
    let start = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|err| format!("cannot poll child process {}: {err}", child.id()))?
        {
            return Ok(Some(status));
        }
        if start.elapsed() >= limit {
            kill_and_reap(child)?;
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Kills a child that overran its limit and reaps it so no zombie is left behind.
pub(crate) fn kill_and_reap(child: &mut Child) -> Result<(), String> {
    child
        .kill()
        .map_err(|err| format!("cannot kill child process {}: {err}", child.id()))?;
    child
        .wait()
        .map_err(|err| format!("cannot reap child process {}: {err}", child.id()))?;
    Ok(())
}

/// Formats a wall time compactly: `0.42s`, `12.3s`, `2m05s`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// How a table column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Renders rows under a header and a dashed rule, columns separated by two spaces, with no trailing whitespace.
pub(crate) fn render_table(headers: &[&str], aligns: &[Align], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render_row = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut line = String::new();
        for (index, cell) in cells.take(columns).enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            let pad = widths[index].saturating_sub(cell.chars().count());
            let align = aligns.get(index).copied().unwrap_or(Align::Left);
            if align == Align::Right {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        line.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&render_row(&mut headers.iter().copied()));
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&render_row(&mut rule.iter().map(String::as_str)));
    out.push('\n');
    for row in rows {
        out.push_str(&render_row(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_defaults_to_root_target() {
        let root = Path::new("/ws");
        assert_eq!(resolve_target_dir(root, None), Path::new("/ws/target"));
        assert_eq!(
            resolve_target_dir(root, Some(OsString::new())),
            Path::new("/ws/target")
        );
    }

    #[test]
    fn target_dir_from_env_is_relative_to_root_or_absolute() {
        let root = Path::new("/ws");
        assert_eq!(
            resolve_target_dir(root, Some("out".into())),
            Path::new("/ws/out")
        );
        assert_eq!(
            resolve_target_dir(root, Some("/tmp/t".into())),
            Path::new("/tmp/t")
        );
    }

    #[test]
    fn describe_quotes_only_what_needs_it() {
        let mut command = Command::new("cargo");
        command
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings");
        assert_eq!(
            describe(&command),
            "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn durations_are_compact() {
        assert_eq!(format_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn tables_align_columns_and_trim_trailing_space() {
        let rows = vec![
            vec!["fmt".to_string(), "ok".to_string(), "1.00s".to_string()],
            vec!["clippy".to_string(), "ok".to_string(), "12.3s".to_string()],
        ];
        let table = render_table(
            &["step", "status", "time"],
            &[Align::Left, Align::Left, Align::Right],
            &rows,
        );
        let expected = "\
step    status   time
------  ------  -----
fmt     ok      1.00s
clippy  ok      12.3s
";
        assert_eq!(table, expected);
    }

    #[test]
    fn tables_measure_characters_not_bytes() {
        let rows = vec![vec!["µs".to_string(), "x".to_string()]];
        let table = render_table(&["u", "d"], &[Align::Left, Align::Left], &rows);
        assert_eq!(table, "u   d\n--  -\nµs  x\n");
    }

    #[cfg(unix)]
    #[test]
    fn wait_with_limit_kills_an_overrunning_child() -> Result<(), String> {
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .map_err(|err| format!("cannot start sleep: {err}"))?;
        let start = Instant::now();
        let outcome = wait_with_limit(&mut child, Duration::from_millis(100))?;
        assert!(outcome.is_none());
        assert!(start.elapsed() < Duration::from_secs(10));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn wait_with_limit_reports_the_exit_status() -> Result<(), String> {
        let mut child = Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .map_err(|err| format!("cannot start sh: {err}"))?;
        let status = wait_with_limit(&mut child, Duration::from_secs(30))?;
        assert_eq!(status.and_then(|s| s.code()), Some(3));
        Ok(())
    }
}

#[cfg(test)]
mod digest_tests {
    use super::Digest;

    #[test]
    fn a_digest_names_the_failed_tests_and_the_first_panic() {
        let mut digest = Digest::default();
        for line in [
            "running 2 tests",
            "test ok_one ... ok",
            "test broken ... FAILED",
            "",
            "failures:",
            "",
            "---- broken stdout ----",
            "",
            "thread 'broken' panicked at tests/x.rs:3:5:",
            "pool_map failed: exit code: 1",
            "failures:",
            "    broken",
            "test result: FAILED. 1 passed; 1 failed",
            "error: test failed, to rerun pass `--test x`",
        ] {
            digest.line(line);
        }
        assert_eq!(
            digest.summary(),
            "; failed: broken; first panic: thread 'broken' panicked at tests/x.rs:3:5:: \
             pool_map failed: exit code: 1"
        );
        assert!(
            digest
                .lines
                .iter()
                .any(|l| l == "pool_map failed: exit code: 1")
        );
        assert!(!digest.lines.iter().any(|l| l == "test ok_one ... ok"));
    }

    #[test]
    fn a_quiet_success_leaves_an_empty_digest() {
        let mut digest = Digest::default();
        digest.line("running 1 test");
        digest.line("test fine ... ok");
        assert!(digest.lines.is_empty());
        assert_eq!(digest.summary(), "");
    }
}
