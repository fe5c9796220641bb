//! A minimal offspring program: one task in a child, one on a pool, values printed. Tests run
//! it with settings that only take effect at start (such as `OFFSPRING_SOCKET_KIND=fs`).

#[offspring::task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let child = offspring::Process::spawn(add, (2, 3))?.join()?;
    let pool = offspring::Pool::new(2)?;
    let mapped: u64 = pool.map(add, (0..10).map(|n| (n, n)))?.into_iter().sum();
    println!("process {child} pool {mapped}");
    Ok(())
}
