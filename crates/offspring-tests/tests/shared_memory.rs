//! What shared memory costs in memory, measured on Linux: a 256 MiB `SharedBytes` read in full
//! by two workers adds one copy to the proportional set size of the parent and its workers
//! (passing it by value adds three), and the machine's `Shmem` is back once the last handle
//! is gone, also when the last holder was killed. A binary of its own: it measures the whole process's memory.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::time::Duration;

use offspring::{Event, Process, ProcessHandle, Queue, SharedBytes};

offspring::test_support!();

const LEN: usize = 256 << 20;
const MIB: u64 = 1 << 20;
const BY_VALUE: usize = 48 << 20;

/// Reads every page, says so with its pid, and holds `data` until `go` is set.
#[offspring::task]
fn hold_shared(data: SharedBytes, pids: Queue<u32>, go: Event) -> u64 {
    let sum = data.iter().step_by(4096).map(|b| u64::from(*b)).sum();
    let _ = pids.put(&std::process::id());
    go.wait_timeout(Duration::from_secs(120));
    sum
}

/// As `hold_shared`, for a copy of the bytes (a string: postcard copies it whole, where a
/// `Vec<u8>` in a tuple goes byte by byte).
#[offspring::task]
fn hold_value(data: String, pids: Queue<u32>, go: Event) -> u64 {
    let sum = data.bytes().step_by(4096).map(u64::from).sum();
    let _ = pids.put(&std::process::id());
    go.wait_timeout(Duration::from_secs(120));
    sum
}

/// The proportional set size of `pid`, in bytes.
fn pss(pid: u32) -> u64 {
    offspring_tests::proc_kib(format!("/proc/{pid}/smaps_rollup"), "Pss").expect("a Pss line")
        * 1024
}

fn shmem() -> u64 {
    offspring_tests::proc_kib("/proc/meminfo", "Shmem").expect("a Shmem line") * 1024
}

/// Starts two holders with `spawn`, waits until both have read everything, and returns the
/// PSS of this process and both holders together, with `shmem()` then; then lets them end.
fn held_pss(
    spawn: impl Fn(Queue<u32>, Event) -> offspring::Result<ProcessHandle<u64>>,
) -> offspring::Result<(u64, u64)> {
    let pids = Queue::new()?;
    let go = Event::new()?;
    let holders = [
        spawn(pids.clone(), go.clone())?,
        spawn(pids.clone(), go.clone())?,
    ];
    let a = pids.get_timeout(Duration::from_secs(120))?;
    let b = pids.get_timeout(Duration::from_secs(120))?;
    let total = pss(std::process::id()) + pss(a) + pss(b);
    let shared = shmem();
    go.set();
    for holder in holders {
        holder.join()?;
    }
    Ok((total, shared))
}

#[test]
fn a_shared_table_costs_one_copy_and_is_freed_with_its_last_handle() -> offspring::Result<()> {
    let idle_shmem = shmem();
    let tiny = SharedBytes::from_vec(vec![1])?;
    let (base, _) = held_pss(|pids, go| Process::spawn(hold_shared, (tiny.clone(), pids, go)))?;
    drop(tiny);

    let data = SharedBytes::from_vec(vec![1; LEN])?;
    let (shared, shmem_held) =
        held_pss(|pids, go| Process::spawn(hold_shared, (data.clone(), pids, go)))?;
    drop(data);

    // By value, a payload must fit in a frame (65 MiB): the comparison uses 48 MiB.
    let text = "x".repeat(BY_VALUE);
    let (by_value, _) = held_pss(|pids, go| Process::spawn(hold_value, (text.clone(), pids, go)))?;
    drop(text);

    let grew = shared.saturating_sub(base) as f64 / LEN as f64;
    let grew_by_value = by_value.saturating_sub(base) as f64 / BY_VALUE as f64;
    println!(
        "PSS of the parent and two workers that read 256 MiB: grows by {grew:.2} copies shared, \
         and {grew_by_value:.2} copies of 48 MiB passed by value; Shmem {} MiB idle, {} MiB held",
        idle_shmem / MIB,
        shmem_held / MIB
    );
    assert!(grew > 0.8 && grew < 1.3, "shared: {grew:.2} copies");
    assert!(
        shmem_held > idle_shmem + 200 * MIB && shmem_held < idle_shmem + 400 * MIB,
        "Shmem {} MiB idle, {} MiB while held",
        idle_shmem / MIB,
        shmem_held / MIB
    );
    // Every handle is gone: the memory is back once the mappings kept for reuse lapse.
    let back =
        offspring_tests::wait_until(Duration::from_secs(10), || shmem() < idle_shmem + 64 * MIB);
    assert!(
        back.is_some(),
        "Shmem {} MiB idle, still {} MiB after the last handle went",
        idle_shmem / MIB,
        shmem() / MIB
    );
    println!("Shmem back {back:?} after the last handle went");

    // The only handle left is held by a worker that is killed: its lease goes with it.
    let data = SharedBytes::from_vec(vec![1; LEN])?;
    let pids = Queue::new()?;
    let go = Event::new()?;
    let holder = Process::spawn(hold_shared, (data, pids.clone(), go))?;
    pids.get_timeout(Duration::from_secs(120))?;
    assert!(
        shmem() > idle_shmem + 200 * MIB,
        "the worker holds the object"
    );
    holder.kill()?;
    let back =
        offspring_tests::wait_until(Duration::from_secs(10), || shmem() < idle_shmem + 64 * MIB);
    assert!(
        back.is_some(),
        "Shmem {} MiB idle, still {} MiB after the only holder was killed",
        idle_shmem / MIB,
        shmem() / MIB
    );
    println!("Shmem back {back:?} after the only holder was killed");
    Ok(())
}
