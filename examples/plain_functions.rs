//! A task stays a plain function: its name is free for locals and parameters, its body runs
//! in-process as a call, and two tasks whose bodies compile to the same machine code (which
//! the compiler and linker may fold into one address in a release build) are still two
//! tasks, because workers find tasks by name and the parent finds the name by the function's
//! own type, never by its address.

#[offspring::task]
fn square(n: u64) -> u64 {
    n * n
}

/// The same code as `same_u64` once compiled: a register move.
#[offspring::task]
fn same_u32(n: u32) -> u32 {
    n
}

#[offspring::task]
fn same_u64(n: u64) -> u64 {
    n
}

/// A parameter named like a task is an ordinary parameter.
fn describe(square: u64) -> String {
    format!("{square} is a square")
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let pool = offspring::Pool::new(2)?;
    let square = pool.apply(square, 12)?;
    println!("{}", describe(square));
    assert_eq!(self::square(12), square, "the body, run in this process");

    let small = pool.apply(same_u32, u32::MAX)?;
    let large = pool.apply(same_u64, u64::MAX)?;
    assert_eq!((small, large), (u32::MAX, u64::MAX));
    println!("same_u32 gave {small}, same_u64 gave {large}: two tasks, one body");
    Ok(())
}
