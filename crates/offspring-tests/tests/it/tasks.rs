//! A task stays a plain function: its name can be shadowed and used as a parameter name, its
//! body is callable in-process, and the parent finds it by its function item's type, never
//! by its code (two tasks with identical bodies are told apart).

use offspring::{Error, Pool, Process};

#[offspring::task]
fn square(n: u64) -> u64 {
    n * n
}

#[offspring::task]
fn pid() -> u32 {
    std::process::id()
}

/// These two compile to the same machine code (a register move); the linker may fold them
/// into one address. They must still be two tasks.
#[offspring::task]
fn same_u32(n: u32) -> u32 {
    n
}

#[offspring::task]
fn same_u64(n: u64) -> u64 {
    n
}

/// Identical bodies and identical types: only the names differ.
#[offspring::task]
fn twin_a(n: u64) -> u64 {
    n + 1
}

#[offspring::task]
fn twin_b(n: u64) -> u64 {
    n + 1
}

/// A parameter named like a task in this module.
fn cpu_ticks(pid: u32) -> u32 {
    pid + 1
}

/// A plain function, without the attribute.
fn not_a_task(n: u64) -> u64 {
    n
}

#[test]
fn a_task_name_can_be_shadowed_and_used_as_a_parameter() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let square = pool.apply(square, 7)?;
    assert_eq!(square, 49);
    let pid = pool.apply(pid, ())?;
    assert_ne!(pid, std::process::id());
    assert_eq!(cpu_ticks(pid), pid + 1);
    Ok(())
}

#[test]
fn a_task_body_runs_in_process_as_a_plain_call() {
    assert_eq!(square(7), 49);
    assert_eq!(square::call(7), 49);
    assert_eq!(pid(), std::process::id());
    let as_fn: fn(u64) -> u64 = square;
    assert_eq!(as_fn(3), 9);
}

#[test]
fn tasks_with_identical_bodies_are_told_apart() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    assert_eq!(pool.apply(same_u32, u32::MAX)?, u32::MAX);
    assert_eq!(pool.apply(same_u64, u64::MAX)?, u64::MAX);
    assert_eq!(pool.map(same_u32, 0..100u32)?, (0..100).collect::<Vec<_>>());
    assert_eq!(pool.map(same_u64, 0..100u64)?, (0..100).collect::<Vec<_>>());
    assert_eq!(pool.apply(twin_a, 1)?, 2);
    assert_eq!(pool.apply(twin_b, 1)?, 2);
    // The spans and errors name the task that was asked for.
    let child = Process::spawn(same_u64, 5)?;
    assert_eq!(child.join()?, 5);
    Ok(())
}

fn assert_not_a_task<T: std::fmt::Debug>(result: offspring::Result<T>) {
    match result {
        Err(e @ Error::NotATask { .. }) => {
            let message = e.to_string();
            assert!(message.contains("not_a_task"), "{message}");
            assert!(message.contains("#[offspring::task]"), "{message}");
        }
        other => panic!("expected NotATask, got {other:?}"),
    }
}

#[test]
fn a_function_without_the_attribute_fails_at_the_call_before_anything_is_sent()
-> offspring::Result<()> {
    let pool = Pool::new(1)?;
    assert_not_a_task(pool.apply(not_a_task, 1));
    assert_not_a_task(pool.apply_async(not_a_task, 1).get());
    assert_not_a_task(pool.map(not_a_task, 0..10));
    assert_not_a_task(pool.map_async(not_a_task, 0..10).get());
    let items: Vec<_> = pool.imap(not_a_task, 0..3).collect();
    assert_eq!(items.len(), 3);
    for item in items {
        assert_not_a_task(item);
    }
    assert_not_a_task(Process::spawn(not_a_task, 1).map(drop));
    // A closure is no task either.
    match pool.apply(|n: u64| n + 1, 1) {
        Err(e @ Error::NotATask { .. }) => println!("{e}"),
        other => panic!("expected NotATask, got {other:?}"),
    }
    // Nothing reached the worker: it ran nothing and the pool still works.
    let counters = pool.counters();
    assert_eq!(counters.done + counters.failed, 0, "{counters:?}");
    assert_eq!(pool.apply(square, 3)?, 9);
    let with_bad_initializer = Pool::builder()
        .processes(1)
        .initializer(not_a_task, 1)
        .build();
    assert_not_a_task(with_bad_initializer.map(drop));
    Ok(())
}
