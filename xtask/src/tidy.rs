//! `cargo xtask tidy`: the invariants of `docs/ARCHITECTURE.md` that a machine can check,
//! read from the manifests and the sources as text. Each broken one is reported as
//! `file:line: what is wrong`; the rest of the invariants are left to review.
//!
//! - **Dependencies.** Each crate's normal dependencies (target-specific ones included,
//!   dev-dependencies not) against its rule in [`DEPENDENCY_RULES`].
//! - **No `unsafe` outside the platform code.** Every library and binary root of the crates
//!   under `crates/` and of `xtask` says `#![forbid(unsafe_code)]`, except those in
//!   [`UNSAFE_ALLOWED`].
//! - **No import cycles between the files of a crate** in [`ACYCLIC`]: a file's `crate::`,
//!   `super::` and `self::` paths (re-exports followed) name the files it depends on.
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
    (
        "offspring-dashboard",
        Rule::Never(&["offspring-worker", "offspring", "postcard"]),
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

/// Crates whose files must not import each other in a circle.
const ACYCLIC: &[&str] = &["offspring", "offspring-worker"];

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
    for dir in &crate_dirs {
        let name = package_name(&read(&dir.join("Cargo.toml"))?).unwrap_or_default();
        if ACYCLIC.contains(&name.as_str()) {
            violations.extend(import_cycles(root, &dir.join("src"))?);
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

/// A line of code without its string literals' contents and its trailing comment.
fn code_of(line: &str) -> String {
    let mut code = String::new();
    let mut in_string = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_string => {
                chars.next();
            }
            '"' => {
                in_string = !in_string;
                code.push('"');
            }
            '/' if !in_string && chars.peek() == Some(&'/') => break,
            _ if !in_string => code.push(c),
            _ => {}
        }
    }
    code
}

/// The module path of each `.rs` file of a crate whose sources are in `src`: `lib.rs` or
/// `main.rs` is the root (an empty path), `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`.
/// Binaries under `src/bin` are crates of their own and left out.
fn module_files(src: &Path) -> Result<Vec<(Vec<String>, PathBuf)>, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut modules = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file);
        let mut path: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let Some(last) = path.pop() else { continue };
        if path.first().is_some_and(|first| first == "bin") {
            continue;
        }
        match last.as_str() {
            "mod.rs" => {}
            "lib.rs" | "main.rs" if path.is_empty() => {}
            other => path.push(other.trim_end_matches(".rs").to_string()),
        }
        modules.push((path, file));
    }
    Ok(modules)
}

/// Every path a line of code names through `crate::`, `super::` or `self::`, brace groups
/// expanded, as its segments (the prefix kept as the first one).
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        let rest: String = chars[i..].iter().collect();
        let prefix = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| rest.starts_with(p));
        match prefix {
            Some(prefix) if at_word_start => {
                let (found, used) = parse_path(&rest);
                paths.extend(found);
                i += used.max(prefix.len());
            }
            _ => i += 1,
        }
    }
    paths
}

/// Parses the path at the start of `text` (`a::b::{c, d::e}`): its expansions, and how many
/// characters it took.
fn parse_path(text: &str) -> (Vec<Vec<String>>, usize) {
    let chars: Vec<char> = text.chars().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i > start {
            segments.push(chars[start..i].iter().collect::<String>());
        }
        if chars.get(i) != Some(&':') || chars.get(i + 1) != Some(&':') {
            break;
        }
        i += 2;
        if chars.get(i) != Some(&'{') {
            continue;
        }
        let begin = i + 1;
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let inner: String = chars[begin..i.min(chars.len())].iter().collect();
        let mut out = Vec::new();
        for item in split_top_level(&inner) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            for sub in parse_path(item).0 {
                let mut full = segments.clone();
                if sub.first().is_some_and(|first| first != "self") {
                    full.extend(sub);
                }
                out.push(full);
            }
        }
        return (out, i + 1);
    }
    (vec![segments], i)
}

/// Splits at the commas outside braces.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// A module path, the file that holds it.
type Modules = [(Vec<String>, PathBuf)];

/// Import cycles among the files of the crate whose sources are in `src`.
fn import_cycles(root: &Path, src: &Path) -> Result<Vec<Violation>, String> {
    let modules = module_files(src)?;
    // Re-exports (`pub use a::B;`, `pub use a::{B, C};`): the path of the re-exported name,
    // and that of the module that defines it.
    let mut reexports: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for (module, file) in &modules {
        for line in read(file)?.lines() {
            let code = code_of(line);
            let code = code.trim();
            let Some(rest) = code
                .strip_prefix("pub use ")
                .or_else(|| code.strip_prefix("pub(crate) use "))
            else {
                continue;
            };
            for path in parse_path(rest.trim_end_matches(';')).0 {
                let relative = path.first().is_some_and(|first| first != "crate");
                if let Some((name, defining)) = path.split_last() {
                    let mut exported = module.clone();
                    exported.push(name.clone());
                    let mut target = if relative { module.clone() } else { Vec::new() };
                    target.extend(defining.iter().filter(|s| *s != "crate").cloned());
                    reexports.push((exported, target));
                }
            }
        }
    }
    // Edges between files, each with the first line that makes it.
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); modules.len()];
    for (from, (module, file)) in modules.iter().enumerate() {
        // The module `self::` names, and the one `super::` names.
        let here = module.clone();
        let parent = here[..here.len().saturating_sub(1)].to_vec();
        for (index, line) in read(file)?.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for path in named_paths(&code_of(line)) {
                let Some((prefix, rest)) = path.split_first() else {
                    continue;
                };
                let mut absolute = match prefix.as_str() {
                    "crate" => Vec::new(),
                    "self" => here.clone(),
                    "super" => parent.clone(),
                    _ => continue,
                };
                absolute.extend(rest.iter().cloned());
                if let Some(to) = resolve(&absolute, &modules, &reexports, 0)
                    && to != from
                    && !modules[to].0.is_empty()
                    && !edges[from].iter().any(|(t, _)| *t == to)
                {
                    edges[from].push((to, index + 1));
                }
            }
        }
    }
    let name = |i: usize| {
        modules[i]
            .1
            .strip_prefix(root)
            .unwrap_or(&modules[i].1)
            .display()
            .to_string()
    };
    let mut violations = Vec::new();
    let mut reported: Vec<Vec<usize>> = Vec::new();
    for start in 0..modules.len() {
        let Some(cycle) = cycle_from(start, &edges) else {
            continue;
        };
        let mut key = cycle.clone();
        key.sort_unstable();
        if reported.contains(&key) {
            continue;
        }
        reported.push(key);
        let next = cycle.get(1).copied().unwrap_or(cycle[0]);
        let line = edges[cycle[0]]
            .iter()
            .find(|(to, _)| *to == next)
            .map_or(1, |(_, line)| *line);
        let mut shown: Vec<String> = cycle.iter().map(|&i| name(i)).collect();
        shown.push(name(cycle[0]));
        violations.push(Violation {
            file: PathBuf::from(name(cycle[0])),
            line,
            message: format!("import cycle: {}", shown.join(" -> ")),
        });
    }
    Ok(violations)
}

/// The file a module path names: the longest prefix that is a module, or a re-export that
/// leads to one.
fn resolve(
    path: &[String],
    modules: &Modules,
    reexports: &[(Vec<String>, Vec<String>)],
    depth: usize,
) -> Option<usize> {
    for len in (0..=path.len()).rev() {
        let prefix = &path[..len];
        if depth < 4
            && let Some((_, target)) = reexports.iter().find(|(exported, _)| exported == prefix)
        {
            return resolve(target, modules, reexports, depth + 1);
        }
        if let Some(index) = modules.iter().position(|(module, _)| module == prefix) {
            return Some(index);
        }
    }
    None
}

/// A cycle through `start` (its files in order, `start` first), if there is one.
fn cycle_from(start: usize, edges: &[Vec<(usize, usize)>]) -> Option<Vec<usize>> {
    let mut seen = vec![false; edges.len()];
    seen[start] = true;
    let mut stack = vec![(start, 0usize)];
    while let Some(&mut (node, ref mut next)) = stack.last_mut() {
        let Some(&(to, _)) = edges[node].get(*next) else {
            stack.pop();
            continue;
        };
        *next += 1;
        if to == start {
            return Some(stack.iter().map(|(node, _)| *node).collect());
        }
        if !seen[to] {
            seen[to] = true;
            stack.push((to, 0));
        }
    }
    None
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
    let outside = code_of(code);
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

    #[test]
    fn paths_are_read_with_their_brace_groups() {
        assert_eq!(
            named_paths(&code_of(
                "use crate::{codec::{self, encode}, Error}; let x = super::handle::take(); // crate::no"
            )),
            vec![
                vec!["crate", "codec"],
                vec!["crate", "codec", "encode"],
                vec!["crate", "Error"],
                vec!["super", "handle", "take"],
            ]
        );
        assert!(named_paths(&code_of("let s = \"crate::in_a_string\";")).is_empty());
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
        // The codec reaching back into the pool, which uses the codec.
        edit(&root.join("crates/offspring/src/codec.rs"), |text| {
            format!("{text}\nfn back() -> usize {{\n    crate::pool::IMAP_AHEAD\n}}\n")
        });
        let found = check(&root).unwrap_or_else(|e| panic!("{e}"));
        let _ = fs::remove_dir_all(&root);
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        println!("{}", shown.join("\n"));
        assert_eq!(found.len(), 4, "{shown:#?}");
        let one = |file: &str, says: &str| {
            assert!(
                shown
                    .iter()
                    .any(|v| v.starts_with(file) && v.contains(says)),
                "no violation in {file} saying {says:?}: {shown:#?}"
            );
        };
        one(
            "crates/offspring-wire/Cargo.toml:",
            "must not depend on `tokio`",
        );
        one(
            "crates/offspring-worker/src/lib.rs:1:",
            "forbid(unsafe_code)",
        );
        one("crates/offspring-transport/src/sys.rs:", "SAFETY");
        one("crates/offspring/src/", "import cycle");
        assert!(
            shown.iter().any(|v| v.contains("import cycle")
                && v.contains("codec.rs")
                && v.contains("pool.rs")),
            "{shown:#?}"
        );
    }
}
