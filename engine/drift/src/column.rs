//! What is kept of one column while the two files stream past, in memory
//! that does not grow with the number of rows: the values themselves while
//! there are few (every test is then exact, as scipy computes it), counts
//! per value while there are few distinct ones, the reference's moments, and
//! a fixed histogram ([`Grid`]) for the rest.

use std::collections::HashMap;

use crate::grid::Grid;
use crate::stats;

/// Values of a column kept exactly, per file; past this, the histogram.
pub const EXACT_LIMIT: usize = 20_000;
/// Distinct values of a numeric column counted one by one; past this, only
/// the histogram knows the distribution.
pub const DISTINCT_LIMIT: usize = 10_000;
/// Evidently bins a numeric column for PSI and Jensen–Shannon when its
/// reference has more distinct values than this; else it compares values.
pub const BINNED_ABOVE: usize = 20;

pub const REFERENCE: usize = 0;
pub const CURRENT: usize = 1;

#[derive(Debug, Default)]
pub struct Numeric {
    pub n: [u64; 2],
    /// The running mean and sum of squared deviations, per file; of the
    /// values times `scale` (1, or [`stats::SCALE_DOWN`] from the first
    /// huge value on).
    mean: [f64; 2],
    m2: [f64; 2],
    scale: [f64; 2],
    pub min: f64,
    pub max: f64,
    pub exact: [Option<Vec<f64>>; 2],
    /// Counts per distinct value (by its bits, -0 read as 0), both files.
    pub distinct: Option<HashMap<u64, [u64; 2]>>,
    /// The reference's distinct values, up to `BINNED_ABOVE + 1`.
    reference_distinct: Vec<u64>,
    /// Once either file's values are too many to keep: both files' values.
    pub grid: Option<Grid>,
    /// With the reference kept whole: its sorted distinct values and
    /// cumulative counts, and the current values counted at and between
    /// them, which give the exact K-S statistic for a current of any length.
    pub points: Option<Points>,
}

#[derive(Debug)]
pub struct Points {
    pub values: Vec<f64>,
    /// Reference values at or below each point.
    pub cumulative: Vec<u64>,
    /// Current values equal to each point.
    pub at: Vec<u64>,
    /// Current values below each point and above the previous one; the last
    /// entry counts those above every point.
    pub below: Vec<u64>,
}

impl Numeric {
    pub fn new() -> Self {
        Numeric {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            exact: [Some(Vec::new()), Some(Vec::new())],
            distinct: Some(HashMap::new()),
            scale: [1.0; 2],
            ..Default::default()
        }
    }

    /// Adds finite values to one side.
    pub fn add(&mut self, side: usize, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        // Chan's update: the batch's own mean and squared deviations,
        // merged into the running ones (no division per value).
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &x in values {
            lo = lo.min(x);
            hi = hi.max(x);
        }
        if self.scale[side] == 1.0 && (hi > stats::HUGE || lo < -stats::HUGE) {
            // From here on in scaled units (exact: a power of two).
            self.scale[side] = stats::SCALE_DOWN;
            self.mean[side] *= stats::SCALE_DOWN;
            self.m2[side] *= stats::SCALE_DOWN * stats::SCALE_DOWN;
        }
        let scale = self.scale[side];
        let sum: f64 = values.iter().map(|x| x * scale).sum();
        let count = values.len() as f64;
        let batch_mean = sum / count;
        let batch_m2: f64 = values.iter().map(|x| (x * scale - batch_mean) * (x * scale - batch_mean)).sum();
        let before = self.n[side] as f64;
        self.n[side] += values.len() as u64;
        let total = self.n[side] as f64;
        let delta = batch_mean - self.mean[side];
        self.mean[side] += delta * count / total;
        self.m2[side] += batch_m2 + delta * delta * before * count / total;
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        let mut in_grid = false;
        match &mut self.exact[side] {
            Some(exact) if exact.len() + values.len() <= EXACT_LIMIT => exact.extend_from_slice(values),
            Some(_) => {
                // Too long to keep: from here on the histogram holds the
                // column. A new one starts with everything kept so far (an
                // existing one has this side's values already).
                let mut grid = self.grid.take().unwrap_or_else(|| {
                    let mut grid = Grid::new(lo, hi);
                    for (s, kept) in self.exact.iter().enumerate() {
                        if let Some(kept) = kept {
                            grid.add(s, kept);
                        }
                    }
                    grid
                });
                grid.add(side, values);
                in_grid = true;
                self.grid = Some(grid);
                self.exact[side] = None;
            }
            None => {}
        }
        if let Some(map) = &mut self.distinct {
            for &x in values {
                map.entry(key(x)).or_default()[side] += 1;
            }
            if map.len() > DISTINCT_LIMIT {
                self.distinct = None;
            }
        }
        if side == REFERENCE && self.reference_distinct.len() <= BINNED_ABOVE {
            for &x in values {
                let k = key(x);
                if !self.reference_distinct.contains(&k) {
                    self.reference_distinct.push(k);
                    if self.reference_distinct.len() > BINNED_ABOVE {
                        break;
                    }
                }
            }
        }
        if let Some(points) = &mut self.points {
            for &x in values {
                let i = points.values.partition_point(|&p| p < x);
                if i < points.values.len() && points.values[i] == x {
                    points.at[i] += 1;
                } else {
                    points.below[i] += 1;
                }
            }
        }
        if !in_grid && let Some(grid) = &mut self.grid {
            grid.add(side, values);
        }
    }

    /// Called once the reference is read: prepares the exact K-S counts.
    pub fn reference_done(&mut self) {
        if let Some(reference) = &self.exact[REFERENCE] {
            let mut sorted = reference.clone();
            sorted.sort_by(f64::total_cmp);
            let mut values = Vec::new();
            let mut cumulative = Vec::new();
            for (i, &x) in sorted.iter().enumerate() {
                if values.last() == Some(&x) {
                    *cumulative.last_mut().unwrap() = i as u64 + 1;
                } else {
                    values.push(x);
                    cumulative.push(i as u64 + 1);
                }
            }
            let k = values.len();
            self.points = Some(Points { values, cumulative, at: vec![0; k], below: vec![0; k + 1] });
        }
    }

    pub fn reference_std(&self) -> f64 {
        match &self.exact[REFERENCE] {
            Some(values) => crate::stats::std_dev(values),
            None => (self.m2[REFERENCE] / self.n[REFERENCE] as f64).sqrt() / self.scale[REFERENCE],
        }
    }

    /// Distinct values in the reference, when at most `BINNED_ABOVE + 1`.
    pub fn reference_distinct(&self) -> usize {
        self.reference_distinct.len()
    }

    /// Distinct values in both files together, `None` past `DISTINCT_LIMIT`.
    pub fn distinct_count(&self) -> Option<usize> {
        self.distinct.as_ref().map(HashMap::len)
    }

    /// Counts per distinct value, in increasing order of value.
    pub fn value_counts(&self) -> Option<Vec<(f64, [u64; 2])>> {
        let map = self.distinct.as_ref()?;
        let mut counts: Vec<(f64, [u64; 2])> = map.iter().map(|(k, c)| (f64::from_bits(*k), *c)).collect();
        counts.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(counts)
    }
}

fn key(x: f64) -> u64 {
    if x == 0.0 { 0f64.to_bits() } else { x.to_bits() }
}

#[derive(Debug, Default)]
pub struct Categorical {
    pub n: [u64; 2],
    pub counts: HashMap<String, [u64; 2]>,
}

impl Categorical {
    pub fn add(&mut self, side: usize, value: &str) {
        self.n[side] += 1;
        if let Some(c) = self.counts.get_mut(value) {
            c[side] += 1;
        } else {
            let mut c = [0; 2];
            c[side] = 1;
            self.counts.insert(value.to_string(), c);
        }
    }

    /// Counts per category, in the categories' order.
    pub fn value_counts(&self) -> Vec<(&str, [u64; 2])> {
        let mut counts: Vec<(&str, [u64; 2])> = self.counts.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        counts.sort_by(|a, b| a.0.cmp(b.0));
        counts
    }
}

#[derive(Debug)]
pub enum Accumulator {
    Numeric(Box<Numeric>),
    Categorical(Categorical),
}

impl Accumulator {
    pub fn n(&self) -> [u64; 2] {
        match self {
            Accumulator::Numeric(c) => c.n,
            Accumulator::Categorical(c) => c.n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_column_read_in_batches_keeps_every_value_in_its_histogram() {
        // A skewed column, as the readers feed it: batch by batch.
        let draw = |seed: u64, n: usize| -> Vec<f64> {
            let mut state = seed;
            (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    -3.0 * u.ln()
                })
                .collect()
        };
        let (reference, current) = (draw(1, 60_000), draw(2, 45_000));
        let mut column = Numeric::new();
        for batch in reference.chunks(128) {
            column.add(REFERENCE, batch);
        }
        column.reference_done();
        for batch in current.chunks(128) {
            column.add(CURRENT, batch);
        }
        let grid = column.grid.as_ref().expect("past the exact limit");
        assert_eq!(grid.totals(), (60_000, 45_000));
        let exact = crate::stats::wasserstein_normed(&reference, &current);
        let binned = grid.wasserstein() / column.reference_std();
        assert!((binned - exact).abs() <= grid.width() / column.reference_std(), "{binned} vs {exact}");
        assert!((column.reference_std() - crate::stats::std_dev(&reference)).abs() < 1e-9);
    }

    #[test]
    fn a_huge_value_in_a_long_column_does_not_overflow_its_standard_deviation() {
        let reference: Vec<f64> = (0..30_000).map(|i| f64::from(i % 100)).chain([1e300]).collect();
        let mut column = Numeric::new();
        for batch in reference.chunks(128) {
            column.add(REFERENCE, batch);
        }
        let (streamed, exact) = (column.reference_std(), crate::stats::std_dev(&reference));
        assert!(streamed.is_finite() && (streamed - exact).abs() <= 1e-9 * exact, "{streamed} vs {exact}");
    }
}
