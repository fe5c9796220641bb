//! Summary statistics of a figure's samples.

/// Summary statistics of one figure's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub(crate) n: usize,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stats {
    /// Computes the statistics, or `None` for no samples.
    pub(crate) fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = median_of_sorted(&sorted)?;
        Some(Self {
            n: sorted.len(),
            median,
            min: *sorted.first()?,
            max: *sorted.last()?,
        })
    }

    /// The spread `(max - min) / median` in percent, or `None` when the median is zero and the spread has no meaning.
    pub(crate) fn spread_percent(&self) -> Option<f64> {
        if self.median == 0.0 {
            None
        } else {
            Some((self.max - self.min) / self.median.abs() * 100.0)
        }
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
pub(crate) fn median_of_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    if n % 2 == 1 {
        Some(sorted[mid])
    } else {
        // Halving before adding keeps the mean of two huge values from overflowing.
        Some(sorted[mid - 1] / 2.0 + sorted[mid] / 2.0)
    }
}
