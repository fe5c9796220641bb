//! A task's name stays free: a local named like it, a parameter named like it, the body
//! called in-process both ways, and the pool given the task by that name.

#[offspring::task]
fn square(n: u64) -> u64 {
    n * n
}

#[offspring::task]
fn pid() -> u32 {
    std::process::id()
}

#[offspring::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn cpu_ticks(pid: u32) -> u32 {
    pid / 2
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let pool = offspring::Pool::new(2)?;
    let square = pool.apply(square, 7)?;
    assert_eq!(square, 49);
    let pid = pool.apply(pid, ())?;
    assert_ne!(pid, std::process::id());
    let _ = cpu_ticks(pid);
    let add = pool.apply(add, (2, 3))?;
    assert_eq!(add, 5);
    assert_eq!(self::square(3), 9);
    assert_eq!(self::square::call(4), 16);
    let child = offspring::Process::spawn(self::square, 5)?;
    assert_eq!(child.join()?, 25);
    Ok(())
}
