//! A large read-only table shared by a pool's workers: 32 MiB of `f32`, read by 20 tasks, each
//! summing one band of it. Shared, each task gets a handle and maps the same pages (nothing
//! is copied, and the workers' memory grows by no copy of their own); passed by value, each
//! task's argument is a copy of all 32 MiB through the socket. The example prints both runs'
//! time and the workers' peak memory, and checks that they agree.

use std::time::Instant;

use offspring::{Pool, SharedSlice};

const VALUES: usize = 8 * 1024 * 1024;
const BANDS: usize = 20;

/// The range of band `band` of a table of `len` values.
fn band_range(len: usize, band: usize) -> std::ops::Range<usize> {
    len * band / BANDS..len * (band + 1) / BANDS
}

/// Sums one band of the shared table.
#[offspring::task]
fn band_sum(table: SharedSlice<f32>, band: usize) -> f64 {
    table[band_range(table.len(), band)]
        .iter()
        .map(|v| f64::from(*v))
        .sum()
}

/// The same, for a table passed by value.
#[offspring::task]
fn band_sum_copied(table: Vec<f32>, band: usize) -> f64 {
    table[band_range(table.len(), band)]
        .iter()
        .map(|v| f64::from(*v))
        .sum()
}

/// The worker's peak resident memory in MiB, where the OS reports it (Linux).
#[offspring::task]
fn peak_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn peaks(pool: &Pool) -> offspring::Result<String> {
    let peaks = pool.map_chunked(peak_mib, vec![(); 2], 1)?;
    Ok(match peaks.iter().copied().collect::<Option<Vec<_>>>() {
        Some(mib) => format!("workers' peak memory {} MiB", mib.iter().sum::<u64>()),
        None => "workers' peak memory not reported on this OS".to_owned(),
    })
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let values: Vec<f32> = (0..VALUES).map(|i| (i % 1000) as f32 / 8.0).collect();
    let expected: Vec<f64> = (0..BANDS)
        .map(|band| {
            values[band_range(VALUES, band)]
                .iter()
                .map(|v| f64::from(*v))
                .sum()
        })
        .collect();

    let pool = Pool::new(2)?;
    let started = Instant::now();
    let table = SharedSlice::copy_from_slice(&values)?;
    let sums = pool.map_chunked(band_sum, (0..BANDS).map(|b| (table.clone(), b)), 1)?;
    let shared_took = started.elapsed();
    assert_eq!(sums, expected, "the shared table's sums");
    println!(
        "shared:   {BANDS} tasks over a 32 MiB table in {:>7.1} ms, {}",
        shared_took.as_secs_f64() * 1e3,
        peaks(&pool)?
    );
    drop(pool);

    let pool = Pool::new(2)?;
    let started = Instant::now();
    let sums = pool.map_chunked(band_sum_copied, (0..BANDS).map(|b| (values.clone(), b)), 1)?;
    let copied_took = started.elapsed();
    assert_eq!(sums, expected, "the copied table's sums");
    println!(
        "by value: {BANDS} tasks over a 32 MiB table in {:>7.1} ms, {}",
        copied_took.as_secs_f64() * 1e3,
        peaks(&pool)?
    );
    println!(
        "sharing the table was {:.0}x faster",
        copied_took.as_secs_f64() / shared_took.as_secs_f64()
    );
    Ok(())
}
