//! A parent that starts one worker spinning on the CPU and waits to be killed. The worker
//! prints `spinning <pid>` on the shared stdout once it is in its loop, so the parent-death
//! test kills the parent while the worker is provably busy.

use std::io::Write;

#[offspring::task]
fn spin() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "spinning {}", std::process::id());
    let _ = out.flush();
    drop(out);
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn main() {
    offspring::init();
    let child = match offspring::Process::spawn(spin, ()) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("orphan_parent: {e}");
            std::process::exit(1);
        }
    };
    // Wait to be killed; the join never returns because the task never ends.
    let _ = child.join();
}
