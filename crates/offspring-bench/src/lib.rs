//! The line protocol the bench programs speak to `cargo xtask bench` (see `main.rs`).

#![forbid(unsafe_code)]

/// Declares figure `id`: its unit, whether lower is better, and what it measures.
pub fn figure(id: &str, unit: &str, lower_is_better: bool, description: &str) {
    println!(
        "figure\t{id}\t{unit}\t{}\t{description}",
        u8::from(lower_is_better)
    );
}

/// One sample of figure `id`.
pub fn sample(id: &str, value: f64) {
    println!("sample\t{id}\t{value}");
}

/// A target: median(`a`) / median(`b`) `op` `target`.
pub fn ratio(a: &str, b: &str, op: &str, target: f64, description: &str) {
    println!("ratio\t{a}\t{b}\t{op}\t{target}\t{description}");
}

/// Command-line argument `n` of a profiling loop, parsed, or `default` when it is absent or
/// not a number.
pub fn arg_or<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
