//! `cargo xtask tidy`: the invariants of `docs/ARCHITECTURE.md` that a machine can check,
//! read from the manifests and the sources as text. Each broken one is reported as
//! `file:line: what is wrong`; the rest of the invariants are left to review.
//!
//! - **Dependencies.** Each crate's normal dependencies (target-specific ones included,
//!   dev-dependencies not) against its rule in [`DEPENDENCY_RULES`].
//! - **No `unsafe` outside the platform code.** Every library and binary root of the crates
//!   under `crates/` and of `xtask` says `#![forbid(unsafe_code)]`, except those in
//!   [`UNSAFE_ALLOWED`].
//! - **Every `unsafe` block and `unsafe impl` is explained**: a `// SAFETY:` comment on its
//!   line or in the comment lines right above it (attributes may stand between). Clippy's
//!   `undocumented_unsafe_blocks` checks the same during `clippy`; this check runs without a
//!   build, and its test shows it failing.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// What a crate may depend on.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Only these crates.
    Only(&'static [&'static str]),
    /// Anything but these crates.
    Never(&'static [&'static str]),
}

/// Each crate's dependency rule, from the invariants of `docs/ARCHITECTURE.md`.
const DEPENDENCY_RULES: &[(&str, Rule)] = &[
    (
        "offspring-wire",
        Rule::Only(&["serde", "serde_bytes", "postcard", "thiserror"]),
    ),
    (
        "offspring-transport",
        Rule::Never(&["offspring-coordinator", "offspring-worker", "offspring"]),
    ),
    (
        "offspring-coordinator",
        Rule::Never(&["offspring-worker", "offspring", "serde", "postcard"]),
    ),
    (
        "offspring-worker",
        Rule::Never(&["offspring-coordinator", "offspring"]),
    ),
    (
        "offspring-macros",
        Rule::Only(&["syn", "quote", "proc-macro2"]),
    ),
    ("offspring", Rule::Never(&["tokio"])),
    ("offspring-timeline", Rule::Only(&[])),
    ("xtask", Rule::Only(&["offspring-timeline"])),
];

/// Crates whose roots need not forbid `unsafe`, and why.
const UNSAFE_ALLOWED: &[(&str, &str)] = &[
    (
        "offspring-transport",
        "the platform code: mappings, descriptors, signals, process handles",
    ),
    (
        "offspring-tests",
        "test programs that signal, reap and crash processes on purpose",
    ),
];

const FORBID: &str = "#![forbid(unsafe_code)]";

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file, relative to the workspace root.
    pub(crate) file: PathBuf,
    /// 1-based.
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Runs every check on the workspace at `root`, printing each violation.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let violations = check(root)?;
    for violation in &violations {
        eprintln!("{violation}");
    }
    if violations.is_empty() {
        println!("tidy: dependency rules, unsafe roots and SAFETY comments hold");
        Ok(())
    } else {
        Err(format!(
            "tidy: {} invariant(s) of docs/ARCHITECTURE.md broken",
            violations.len()
        ))
    }
}

/// Every violation in the workspace at `root`.
pub(crate) fn check(root: &Path) -> Result<Vec<Violation>, String> {
    let mut violations = Vec::new();
    let mut crate_dirs = list_dir(&root.join("crates"))?;
    crate_dirs.retain(|dir| dir.join("Cargo.toml").is_file());
    crate_dirs.push(root.join("xtask"));
    for dir in &crate_dirs {
        let manifest_path = dir.join("Cargo.toml");
        let manifest = read(&manifest_path)?;
        let name = package_name(&manifest).unwrap_or_default();
        let relative = |path: &Path| path.strip_prefix(root).unwrap_or(path).to_path_buf();
        if let Some((_, rule)) = DEPENDENCY_RULES
            .iter()
            .find(|(crate_name, _)| *crate_name == name)
        {
            for (dep, line) in normal_dependencies(&manifest) {
                let allowed = match rule {
                    Rule::Only(list) => list.contains(&dep.as_str()),
                    Rule::Never(list) => !list.contains(&dep.as_str()),
                };
                if !allowed {
                    violations.push(Violation {
                        file: relative(&manifest_path),
                        line,
                        message: format!(
                            "`{name}` must not depend on `{dep}` ({})",
                            describe(rule)
                        ),
                    });
                }
            }
        }
        if !UNSAFE_ALLOWED
            .iter()
            .any(|(crate_name, _)| *crate_name == name)
        {
            for root_file in crate_roots(dir)? {
                let text = read(&root_file)?;
                if !text.lines().any(|line| line.trim() == FORBID) {
                    violations.push(Violation {
                        file: relative(&root_file),
                        line: 1,
                        message: format!(
                            "the crate root of `{name}` lacks `{FORBID}`: only the transport \
                             crate holds platform code"
                        ),
                    });
                }
            }
        }
    }
    let mut sources = Vec::new();
    for top in ["crates", "xtask", "examples"] {
        rust_files(&root.join(top), &mut sources)?;
    }
    sources.sort();
    for file in sources {
        let text = read(&file)?;
        for line in undocumented_unsafe(&text) {
            violations.push(Violation {
                file: file.strip_prefix(root).unwrap_or(&file).to_path_buf(),
                line,
                message:
                    "`unsafe` without a `// SAFETY:` comment naming the invariant it relies on"
                        .to_string(),
            });
        }
    }
    Ok(violations)
}

fn describe(rule: &Rule) -> String {
    match rule {
        Rule::Only([]) => "it has no dependencies".to_string(),
        Rule::Only(list) => format!("its only dependencies are {}", list.join(", ")),
        Rule::Never(list) => format!("it never depends on {}", list.join(", ")),
    }
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

/// The `.rs` files below `dir`, leaving out build output and compile-fail fixtures (which
/// are wrong on purpose).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if !dir.is_dir() {
        return Ok(());
    }
    for path in list_dir(dir)? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && name != "ui" && !name.starts_with('.') {
                rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The library and binary roots of the package in `dir`.
fn crate_roots(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"]
        .iter()
        .map(|path| dir.join(path))
        .filter(|path| path.is_file())
        .collect();
    let bins = dir.join("src/bin");
    if bins.is_dir() {
        for path in list_dir(&bins)? {
            if path.extension().is_some_and(|ext| ext == "rs") {
                roots.push(path);
            } else if path.join("main.rs").is_file() {
                roots.push(path.join("main.rs"));
            }
        }
    }
    Ok(roots)
}

/// The `name` of the `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            return Some(value.trim().trim_matches('"').to_string());
        }
    }
    None
}

/// The normal dependencies of a manifest (`[dependencies]`, `[target.*.dependencies]` and
/// their `[dependencies.name]` forms), each with its line.
fn normal_dependencies(manifest: &str) -> Vec<(String, usize)> {
    let mut deps = Vec::new();
    let mut in_deps = false;
    for (index, raw) in manifest.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            let (table, key) = match header.rsplit_once("dependencies") {
                Some((before, after)) => (before, after),
                None => {
                    in_deps = false;
                    continue;
                }
            };
            let normal = table.is_empty() || (table.starts_with("target.") && table.ends_with('.'));
            in_deps = false;
            if normal {
                match key.strip_prefix('.') {
                    // `[dependencies.name]`: the header names the dependency.
                    Some(name) => deps.push((name.trim().trim_matches('"').to_string(), index + 1)),
                    None if key.is_empty() => in_deps = true,
                    None => {}
                }
            }
            continue;
        }
        if in_deps && let Some((key, _)) = line.split_once('=') {
            let name = key.split('.').next().unwrap_or("").trim().trim_matches('"');
            if !name.is_empty() {
                deps.push((name.to_string(), index + 1));
            }
        }
    }
    deps
}

/// The 1-based lines of `source` holding an `unsafe` block or `unsafe impl` with no
/// `SAFETY:` comment on the line or in the comment lines right above it.
fn undocumented_unsafe(source: &str) -> Vec<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") || !has_unsafe_block(code) {
            continue;
        }
        if line.contains("SAFETY:") {
            continue;
        }
        let mut explained = false;
        for above in lines[..index].iter().rev() {
            let above = above.trim_start();
            if above.starts_with("//") {
                if above.contains("SAFETY:") {
                    explained = true;
                    break;
                }
            } else if !above.starts_with("#[") {
                break;
            }
        }
        if !explained {
            found.push(index + 1);
        }
    }
    found
}

/// Whether a line of code (not a comment) opens an `unsafe` block or an `unsafe impl`,
/// outside string literals.
fn has_unsafe_block(code: &str) -> bool {
    let code = code.split("//").next().unwrap_or("");
    let mut outside = String::new();
    let mut in_string = false;
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_string => {
                chars.next();
            }
            '"' => in_string = !in_string,
            _ if !in_string => outside.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = outside
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '{'))
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .any(|pair| pair[0] == "unsafe" && (pair[1].starts_with('{') || pair[1] == "impl"))
        || words.iter().any(|w| w.starts_with("unsafe{"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_blocks_need_a_safety_comment() {
        // One string per line, so that this file's own check sees them as strings.
        let source = [
            "fn a() {",
            "    // SAFETY: the pointer is valid.",
            "    let x = unsafe { f() };",
            "    let y = unsafe { g() }; // SAFETY: on the line.",
            "    // Not explained.",
            "    let z = unsafe { h() };",
            "    // SAFETY: attributes may stand between.",
            "    #[allow(unused)]",
            "    unsafe impl Send for T {}",
            "    let s = \"unsafe { in a string }\";",
            "    // unsafe { in a comment }",
            "}",
            "unsafe fn declared() {}",
        ]
        .join("\n");
        let source = source.as_str();
        assert_eq!(undocumented_unsafe(source), vec![6]);
    }

    #[test]
    fn dependencies_are_read_from_every_normal_table() {
        let manifest = "\
[package]
name = \"x\"

[dependencies]
serde.workspace = true
tokio = { workspace = true } # a comment

[target.'cfg(unix)'.dependencies]
libc.workspace = true

[dependencies.postcard]
version = \"1\"

[dev-dependencies]
roxmltree = \"0.20\"

[build-dependencies]
cc = \"1\"
";
        assert_eq!(package_name(manifest).as_deref(), Some("x"));
        assert_eq!(
            normal_dependencies(manifest),
            vec![
                ("serde".to_string(), 5),
                ("tokio".to_string(), 6),
                ("libc".to_string(), 9),
                ("postcard".to_string(), 11),
            ]
        );
    }

    /// Copies the workspace's manifests and sources into a fresh directory.
    fn copy_of_workspace() -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dest = std::env::temp_dir().join(format!("offspring-tidy-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dest);
        fn copy(from: &Path, to: &Path) {
            fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
            for path in list_dir(from).unwrap_or_else(|e| panic!("{e}")) {
                let name = path.file_name().map(ToOwned::to_owned).unwrap_or_default();
                if path.is_dir() {
                    if name != "target" && !name.to_string_lossy().starts_with('.') {
                        copy(&path, &to.join(&name));
                    }
                } else if path
                    .extension()
                    .is_some_and(|ext| ext == "rs" || ext == "toml")
                {
                    fs::copy(&path, to.join(&name))
                        .unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
                }
            }
        }
        for top in ["crates", "xtask", "examples"] {
            copy(&root.join(top), &dest.join(top));
        }
        dest
    }

    fn edit(path: &Path, change: impl FnOnce(String) -> String) {
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fs::write(path, change(text)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    #[test]
    fn the_workspace_is_tidy_and_each_broken_invariant_names_its_file() {
        let root = copy_of_workspace();
        let clean = check(&root).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            clean.is_empty(),
            "the workspace breaks invariants:\n{}",
            clean
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );

        edit(&root.join("crates/offspring-wire/Cargo.toml"), |text| {
            text.replace(
                "[dependencies]\n",
                "[dependencies]\ntokio.workspace = true\n",
            )
        });
        edit(
            &root.join("crates/offspring-transport/src/sys.rs"),
            |text| {
                format!(
                    "{text}\nfn scribble() {{\n    unsafe {{ core::hint::unreachable_unchecked() }}\n}}\n"
                )
            },
        );
        edit(&root.join("crates/offspring-worker/src/lib.rs"), |text| {
            text.replace(FORBID, "")
        });
        let found = check(&root).unwrap_or_else(|e| panic!("{e}"));
        let _ = fs::remove_dir_all(&root);
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        println!("{}", shown.join("\n"));
        assert_eq!(found.len(), 3, "{shown:#?}");
        assert!(
            shown[0].starts_with("crates/offspring-wire/Cargo.toml:"),
            "{}",
            shown[0]
        );
        assert!(
            shown[0].contains("must not depend on `tokio`"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].starts_with("crates/offspring-worker/src/lib.rs:1:"),
            "{}",
            shown[1]
        );
        assert!(
            shown[2].starts_with("crates/offspring-transport/src/sys.rs:"),
            "{}",
            shown[2]
        );
        assert!(shown[2].contains("SAFETY"), "{}", shown[2]);
    }
}
