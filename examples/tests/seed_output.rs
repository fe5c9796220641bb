//! Each seed example prints what the seed's Python program prints, in the same order.
//!
//! The expected lines live in `examples/expected/<name>.txt`. In them `*` matches any text
//! (timings), `{pid}` any process id, and `{parent}` the example's own pid, which must be the
//! same on every line that names it (the callback scenario's point).

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn example_binary(name: &str) -> PathBuf {
    // cargo builds the examples before it runs tests: `target/<profile>/examples/<name>`,
    // next to this test's `target/<profile>/deps/`.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Matches `line` against `pattern`; `{parent}` is the example's pid.
fn matches(pattern: &str, line: &str, parent: u32) -> bool {
    let pattern = pattern.replace("{parent}", &parent.to_string());
    glob(pattern.as_bytes(), line.as_bytes())
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    if let Some(rest) = pattern.strip_prefix(b"{pid}") {
        let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        return digits > 0 && glob(rest, &text[digits..]);
    }
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') => (0..=text.len()).any(|skip| glob(&pattern[1..], &text[skip..])),
        Some(&c) => text.first() == Some(&c) && glob(&pattern[1..], &text[1..]),
    }
}

fn check(name: &str) {
    let expected_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("expected")
        .join(format!("{name}.txt"));
    let expected = std::fs::read_to_string(&expected_path).expect("expected output file");
    let child = Command::new(example_binary(name))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run example {name}: {e}"));
    let parent = child.id();
    let output = child.wait_with_output().expect("example output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{name} failed: {}\n{stdout}",
        output.status
    );
    let got: Vec<&str> = stdout.lines().collect();
    let want: Vec<&str> = expected.lines().collect();
    assert_eq!(got.len(), want.len(), "{name} printed:\n{stdout}");
    for (got, want) in got.iter().zip(&want) {
        assert!(
            matches(want, got, parent),
            "{name}: `{got}` does not match `{want}`\n{stdout}"
        );
    }
    println!("{name}: {} lines as expected", got.len());
}

#[test]
fn the_matcher_understands_its_patterns() {
    assert!(glob(b"a * b", b"a 1.5 b"));
    assert!(glob(b"pid {pid}!", b"pid 123!"));
    assert!(!glob(b"pid {pid}!", b"pid !"));
    assert!(matches("x {parent}", "x 42", 42));
    assert!(!matches("x {parent}", "x 43", 42));
}

#[test]
fn pool_map_prints_like_the_seed() {
    check("pool_map");
}

#[test]
fn pool_apply_prints_like_the_seed() {
    check("pool_apply");
}

#[test]
fn pool_apply_async_prints_like_the_seed() {
    check("pool_apply_async");
}

#[test]
fn callback_prints_like_the_seed() {
    check("callback");
}

#[test]
fn pipe_prints_like_the_seed() {
    check("pipe");
}

#[test]
fn event_prints_like_the_seed() {
    check("event");
}

#[test]
fn event_states_prints_like_the_seed() {
    check("event_states");
}

#[test]
fn semaphore_prints_like_the_seed() {
    check("semaphore");
}
