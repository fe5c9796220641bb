//! `cargo xtask browser`, and the `browser` step of `ci`: the live view in a real headless
//! browser. It starts the `dashboard` example (a pool of [`WORKERS`] with the view on), loads
//! the URL the example prints in Chromium, lets the page's script poll until it has drawn
//! [`UPDATES`] updates, and checks the rendered DOM: every worker process of the example that
//! lived through the check is listed, by pid, as a live worker, and exactly [`WORKERS`] are
//! live. Then it takes a screenshot, kept at `target/dashboard/dashboard.png` with the DOM
//! beside it (`dom.html`).
//!
//! Chromium is Debian's `chromium` (`.ci/run` installs it). Without it the step fails in CI
//! (`CI=true`) and says why it skipped elsewhere.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::{self, Workspace};

/// Workers of the example's pool.
const WORKERS: usize = 4;

/// Updates the page must have drawn (each is one answered poll).
const UPDATES: u32 = 3;

/// How long the browser may run the page's script, in virtual milliseconds (Chromium runs
/// timers ahead while the page waits for nothing else).
const BUDGET_MS: u32 = 6_000;

/// Page loads before a mismatch fails the check.
const ATTEMPTS: u32 = 3;

/// How long any one browser run may take, in real time.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

pub(crate) fn run(ws: &Workspace) -> Result<(), String> {
    let Some(chromium) = find_browser() else {
        let why = "no headless browser (chromium, chromium-browser or google-chrome) on PATH";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            return Err(format!("{why}; .ci/run installs Debian's chromium"));
        }
        println!("browser: skipped: {why}");
        return Ok(());
    };
    util::run_checked(&mut ws.cargo([
        "build",
        "--release",
        "-p",
        "examples",
        "--example",
        "dashboard",
    ]))?;
    let out = ws.target_dir.join("dashboard");
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let exe = ws.release_binary("examples/dashboard");
    let mut example = Command::new(&exe)
        .args(["--seconds", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let result = check(&chromium, &mut example, &out);
    let _ = util::kill_and_reap(&mut example);
    result
}

fn check(chromium: &Path, example: &mut Child, out: &Path) -> Result<(), String> {
    let url = read_url(example)?;
    println!("browser: the example serves {url}");
    let parent = example.id();
    // The pool starts its workers in the background: wait until they are all there.
    let mut before = BTreeSet::new();
    for _ in 0..300 {
        before = children(parent);
        if before.len() >= WORKERS {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let profile = out.join("profile");
    let browse = |extra: &[String]| -> Result<String, String> {
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--window-size=1280,1100",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--virtual-time-budget={BUDGET_MS}"))
            .args(extra)
            .arg(&url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
        output_within(child, BROWSER_LIMIT)
    };
    // The example crashes a worker now and then: a page drawn between a death and its
    // replacement's start lists one live worker too few, so a mismatch is looked at again.
    let mut attempt = 1;
    loop {
        let before = if attempt == 1 {
            before.clone()
        } else {
            children(parent)
        };
        let dom = browse(&["--dump-dom".to_owned()])?;
        let after = children(parent);
        fs::write(out.join("dom.html"), &dom).map_err(|e| format!("cannot keep the DOM: {e}"))?;
        match check_dom(&dom, &before, &after) {
            Ok(summary) => {
                println!("browser: {summary}");
                break;
            }
            Err(problem) if attempt < ATTEMPTS => {
                println!("browser: attempt {attempt}: {problem}; looking again");
                attempt += 1;
            }
            Err(problem) => {
                return Err(format!(
                    "{problem} (in {ATTEMPTS} attempts; the last DOM is {})",
                    out.join("dom.html").display()
                ));
            }
        }
    }

    let shot = out.join("dashboard.png");
    let _ = fs::remove_file(&shot);
    browse(&[format!("--screenshot={}", shot.display())])?;
    let size = fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    if size < 10_000 {
        return Err(format!(
            "no screenshot at {} ({size} bytes)",
            shot.display()
        ));
    }
    let _ = fs::remove_dir_all(&profile);
    println!(
        "browser: screenshot kept at {} ({size} bytes)",
        shot.display()
    );
    Ok(())
}

/// Checks a rendered page against the example's worker processes seen `before` and `after`
/// the page was loaded; a line saying what held, or what did not.
fn check_dom(dom: &str, before: &BTreeSet<u32>, after: &BTreeSet<u32>) -> Result<String, String> {
    let updates = attribute(dom, "<body", "data-updates")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if updates < UPDATES {
        return Err(format!(
            "the page drew {updates} update(s) in {BUDGET_MS} ms of its time, not {UPDATES}"
        ));
    }
    let rows = worker_rows(dom);
    let live: BTreeSet<u32> = rows
        .iter()
        .filter(|(_, state)| state != "died" && state != "exited")
        .map(|(pid, _)| *pid)
        .collect();
    // A worker may crash while the page loads: those that were there before and after must
    // be listed live, and every live one is real.
    let stable: BTreeSet<u32> = before.intersection(after).copied().collect();
    let missing: Vec<u32> = stable.difference(&live).copied().collect();
    let strangers: Vec<u32> = live
        .iter()
        .filter(|pid| !before.contains(pid) && !after.contains(pid))
        .copied()
        .collect();
    if live.len() != WORKERS || !missing.is_empty() || !strangers.is_empty() {
        return Err(format!(
            "the page lists live workers {live:?}; the example's workers were {before:?} then {after:?} (missing {missing:?}, unknown {strangers:?})"
        ));
    }
    Ok(format!(
        "{updates} updates drawn; live workers {live:?} match the example's processes; {} ended listed",
        rows.len() - live.len()
    ))
}

fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The URL the example prints (`live view: <url>`), within 60 s.
fn read_url(example: &mut Child) -> Result<String, String> {
    let stdout = example
        .stdout
        .take()
        .ok_or("the example's stdout is not piped")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("live view: ") {
                let _ = tx.send(url.trim().to_owned());
            }
            // Keep reading, so that the example never blocks on a full pipe.
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the example printed no `live view:` URL within 60 s".to_owned())
}

/// The pids of `parent`'s children, from `/proc`.
fn children(parent: u32) -> BTreeSet<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    let mut fields = rest.split_whitespace();
                    let state = fields.next()?;
                    let ppid = fields.next()?.parse::<u32>().ok()?;
                    Some(ppid == parent && state != "Z")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Every `<tr class="worker" ...>` of the DOM: its pid and state.
fn worker_rows(dom: &str) -> Vec<(u32, String)> {
    dom.match_indices("<tr ")
        .filter_map(|(at, _)| {
            let tag = &dom[at..=at + dom[at..].find('>')?];
            if attribute(tag, "<tr", "class")? != "worker" {
                return None;
            }
            let pid = attribute(tag, "<tr", "data-pid")?.parse().ok()?;
            Some((pid, attribute(tag, "<tr", "data-state")?))
        })
        .collect()
}

/// The value of attribute `name` of the first tag starting with `open` in `html`.
fn attribute(html: &str, open: &str, name: &str) -> Option<String> {
    let start = html.find(open)?;
    let tag = &html[start..start + html[start..].find('>')?];
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(tag[from..from + len].to_owned())
}

/// The child's stdout once it exits, within `limit` (killed on expiry).
fn output_within(mut child: Child, limit: Duration) -> Result<String, String> {
    let mut stdout = child
        .stdout
        .take()
        .ok_or("the browser's stdout is not piped")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    match util::wait_with_limit(&mut child, limit)? {
        Some(status) if status.success() => {}
        Some(status) => return Err(format!("the browser failed ({status})")),
        None => return Err(format!("the browser ran past {}s", limit.as_secs())),
    }
    reader
        .join()
        .map_err(|_| "the browser's output reader panicked".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_rows_and_attributes_are_read_from_the_dom() {
        let dom = r#"<html><body data-updates="4"><table><tr><th>pid</th></tr>
<tr class="worker" data-pid="12" data-state="busy"><td>12</td></tr>
<tr class="failure"><td>x</td></tr>
<tr class="worker" data-pid="13" data-state="died"><td>13</td></tr></table></body></html>"#;
        assert_eq!(
            attribute(dom, "<body", "data-updates").as_deref(),
            Some("4")
        );
        assert_eq!(
            worker_rows(dom),
            vec![(12, "busy".to_owned()), (13, "died".to_owned())]
        );
        assert_eq!(attribute(dom, "<body", "missing"), None);
    }

    #[test]
    fn the_dom_must_list_exactly_the_live_workers() {
        let row = |pid: u32, state: &str| {
            format!(r#"<tr class="worker" data-pid="{pid}" data-state="{state}"><td></td></tr>"#)
        };
        let page = |updates: u32, rows: &[String]| {
            format!(
                r#"<body data-updates="{updates}"><table>{}</table></body>"#,
                rows.concat()
            )
        };
        let seen: BTreeSet<u32> = [1, 2, 3, 4].into();
        let four = [
            row(1, "busy"),
            row(2, "idle"),
            row(3, "busy"),
            row(4, "busy"),
        ];
        let mut with_dead = four.to_vec();
        with_dead.push(row(9, "died"));
        assert!(check_dom(&page(3, &with_dead), &seen, &seen).is_ok());
        // Too few updates, a worker missing, and a pid that is no worker of the example.
        assert!(check_dom(&page(2, &four), &seen, &seen).is_err());
        assert!(check_dom(&page(3, &four[..3]), &seen, &seen).is_err());
        let stranger = [
            row(1, "busy"),
            row(2, "idle"),
            row(3, "busy"),
            row(8, "busy"),
        ];
        assert!(check_dom(&page(3, &stranger), &seen, &seen).is_err());
        // A worker replaced while the page loaded: listed as live after, it is real.
        let after: BTreeSet<u32> = [1, 2, 3, 5].into();
        let replaced = [
            row(1, "busy"),
            row(2, "idle"),
            row(3, "busy"),
            row(5, "idle"),
        ];
        assert!(check_dom(&page(3, &replaced), &seen, &after).is_ok());
    }
}
