//! Two tasks whose bodies compile to the same code, with different argument types, each get
//! their own values back from workers.

#[offspring::task]
fn id32(n: u32) -> u32 {
    n
}

#[offspring::task]
fn id64(n: u64) -> u64 {
    n
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let pool = offspring::Pool::new(2)?;
    assert_eq!(pool.apply(id32, u32::MAX)?, u32::MAX);
    assert_eq!(pool.apply(id64, u64::MAX)?, u64::MAX);
    assert_eq!(pool.map(id64, [1u64 << 40])?, vec![1u64 << 40]);
    Ok(())
}
