//! Argument and result types are checked at compile time.

#[offspring::task]
fn square(n: u64) -> u64 {
    n * n
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let pool = offspring::Pool::new(1)?;
    let _ = pool.apply(square, "seven");
    let _: String = pool.apply(square, 7)?;
    Ok(())
}
