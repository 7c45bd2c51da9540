//! Maximum mean discrepancy between two samples of vectors (a model's
//! embeddings of images), with a permutation test: the multivariate test
//! alibi-detect's `MMDDrift` and "Failing Loudly" (Rabanser et al., 2019)
//! use for images.
//!
//! - Kernel: Gaussian (RBF), `k(a, b) = exp(-|a - b|² / (2σ²))`, with σ the
//!   median distance between distinct vectors of the pooled sample (the
//!   median heuristic).
//! - Statistic: the unbiased estimate of MMD² (Gretton et al., 2012,
//!   Lemma 6), which is about 0 when both samples come from one
//!   distribution.
//! - p-value: the share of random relabellings of the pooled sample whose
//!   statistic is at least the observed one, counting the observed labelling
//!   itself, `(1 + #{≥}) / (1 + permutations)`: a valid p-value for any number
//!   of permutations (Phipson and Smyth, 2010). Seeded: the same data and
//!   seed give the same p-value.
//!
//! Memory and time grow with the square of the pooled sample, so each side
//! is first cut to at most `max_rows` vectors by a seeded random choice.

/// A vector sample: `rows` vectors of `dim` values, row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub dim: usize,
    pub values: Vec<f32>,
}

impl Sample {
    pub fn new(dim: usize) -> Sample {
        Sample { dim, values: Vec::new() }
    }

    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// Keeps a uniform random subset of at most `capacity` rows of a stream
/// (reservoir sampling, seeded).
pub struct Reservoir {
    pub sample: Sample,
    capacity: usize,
    seen: u64,
    rng: SplitMix,
}

impl Reservoir {
    pub fn new(dim: usize, capacity: usize, seed: u64) -> Reservoir {
        Reservoir { sample: Sample::new(dim), capacity: capacity.max(1), seen: 0, rng: SplitMix(seed) }
    }

    pub fn push(&mut self, row: &[f32]) {
        debug_assert_eq!(row.len(), self.sample.dim);
        self.seen += 1;
        if self.sample.rows() < self.capacity {
            self.sample.values.extend_from_slice(row);
            return;
        }
        let j = self.rng.below(self.seen) as usize;
        if j < self.capacity {
            let dim = self.sample.dim;
            self.sample.values[j * dim..(j + 1) * dim].copy_from_slice(row);
        }
    }

    /// Rows offered, kept or not.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

/// SplitMix64: small, fast, and good enough to shuffle.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's method, without its rare rejection: the
    /// bias is below 2⁻³² for the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MmdResult {
    /// The unbiased MMD² estimate.
    pub statistic: f64,
    pub p_value: f64,
    /// The kernel's bandwidth.
    pub sigma: f64,
}

/// Tests whether `x` and `y` come from one distribution. Both need at least
/// two rows of the same dimension.
pub fn test(x: &Sample, y: &Sample, permutations: usize, seed: u64) -> MmdResult {
    assert_eq!(x.dim, y.dim, "samples of different dimensions");
    let (n, m) = (x.rows(), y.rows());
    assert!(n >= 2 && m >= 2, "each sample needs two rows");
    let total = n + m;
    let row = |i: usize| if i < n { x.row(i) } else { y.row(i - n) };
    // Squared distances of the pooled sample (upper triangle mirrored).
    let mut d2 = vec![0f64; total * total];
    for i in 0..total {
        let a = row(i);
        for j in i + 1..total {
            let b = row(j);
            let s: f64 = a.iter().zip(b).map(|(p, q)| f64::from(p - q).powi(2)).sum();
            d2[i * total + j] = s;
            d2[j * total + i] = s;
        }
    }
    let mut distances: Vec<f64> =
        (0..total).flat_map(|i| (i + 1..total).map(move |j| (i, j))).map(|(i, j)| d2[i * total + j]).collect();
    let middle = distances.len() / 2;
    let (_, median, _) = distances.select_nth_unstable_by(middle, f64::total_cmp);
    let sigma = median.sqrt().max(1e-12);
    drop(distances);
    let gamma = 1.0 / (2.0 * sigma * sigma);
    let kernel: Vec<f64> = d2.iter().map(|&s| (-gamma * s).exp()).collect();
    drop(d2);

    let observed = statistic(&kernel, total, &(0..total).collect::<Vec<_>>(), n);
    let mut order: Vec<usize> = (0..total).collect();
    let mut rng = SplitMix(seed);
    let mut at_least = 0usize;
    for _ in 0..permutations {
        // Fisher–Yates.
        for i in (1..total).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        if statistic(&kernel, total, &order, n) >= observed {
            at_least += 1;
        }
    }
    MmdResult { statistic: observed, p_value: (1 + at_least) as f64 / (1 + permutations) as f64, sigma }
}

/// Unbiased MMD² with the first `n` of `order` as one sample and the rest as
/// the other.
fn statistic(kernel: &[f64], total: usize, order: &[usize], n: usize) -> f64 {
    let m = total - n;
    let (mut xx, mut yy, mut xy) = (0f64, 0f64, 0f64);
    for (a, &i) in order.iter().enumerate() {
        let k_row = &kernel[i * total..(i + 1) * total];
        for (b, &j) in order.iter().enumerate().skip(a + 1) {
            let k = k_row[j];
            match (a < n, b < n) {
                (true, true) => xx += k,
                (false, false) => yy += k,
                _ => xy += k,
            }
        }
    }
    // Each unordered pair was counted once: the sums over i ≠ j are twice that.
    2.0 * xx / (n * (n - 1)) as f64 + 2.0 * yy / (m * (m - 1)) as f64 - 2.0 * xy / (n * m) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normal draws (Box–Muller) with `shift` added to the first coordinate.
    fn normal(rows: usize, dim: usize, shift: f32, rng: &mut SplitMix) -> Sample {
        let mut sample = Sample::new(dim);
        for _ in 0..rows * dim {
            let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let z = (-2.0 * (u1.max(1e-300)).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            sample.values.push(z as f32);
        }
        for r in 0..rows {
            sample.values[r * dim] += shift;
        }
        sample
    }

    #[test]
    fn the_statistic_is_the_unbiased_estimate_written_out() {
        // Two tiny samples in one dimension, by hand.
        let x = Sample { dim: 1, values: vec![0.0, 1.0] };
        let y = Sample { dim: 1, values: vec![3.0, 5.0] };
        let result = test(&x, &y, 0, 1);
        // Pairwise distances: 1, 3, 5, 2, 4, 2 → median (of six, the upper middle) 3.
        let sigma: f64 = 3.0;
        let k = |d: f64| (-d * d / (2.0 * sigma * sigma)).exp();
        let xx = k(1.0);
        let yy = k(2.0);
        let xy = (k(3.0) + k(5.0) + k(2.0) + k(4.0)) / 4.0;
        let expected = xx + yy - 2.0 * xy;
        assert!((result.sigma - sigma).abs() < 1e-12, "{result:?}");
        assert!((result.statistic - expected).abs() < 1e-12, "{result:?} vs {expected}");
        assert_eq!(result.p_value, 1.0);
    }

    #[test]
    fn same_data_and_seed_give_the_same_p_value() {
        let mut rng = SplitMix(3);
        let x = normal(40, 4, 0.0, &mut rng);
        let y = normal(30, 4, 0.3, &mut rng);
        assert_eq!(test(&x, &y, 200, 9), test(&x, &y, 200, 9));
        assert_ne!(test(&x, &y, 200, 9).p_value, test(&x, &y, 200, 10).p_value);
    }

    #[test]
    fn false_alarms_hold_alpha_and_a_shift_is_found() {
        // 400 resamples of undrifted data: the share with p < 0.05 is near
        // 5 % (binomial sd 1.1 %: 5 ± 3 % is beyond 2.7 sd).
        let mut rng = SplitMix(42);
        let trials = 400;
        let mut alarms = 0;
        for t in 0..trials {
            let x = normal(30, 3, 0.0, &mut rng);
            let y = normal(30, 3, 0.0, &mut rng);
            if test(&x, &y, 99, t).p_value < 0.05 {
                alarms += 1;
            }
        }
        let rate = alarms as f64 / trials as f64;
        assert!((0.02..=0.08).contains(&rate), "false-alarm rate {rate}");
        // A one-sd shift in one of three coordinates is found nearly always
        // with 60 rows a side.
        let mut found = 0;
        for t in 0..50 {
            let x = normal(60, 3, 0.0, &mut rng);
            let y = normal(60, 3, 1.0, &mut rng);
            if test(&x, &y, 99, t).p_value < 0.05 {
                found += 1;
            }
        }
        assert!(found >= 45, "power {found}/50");
    }

    #[test]
    fn a_reservoir_keeps_a_seeded_uniform_subset() {
        let mut reservoir = Reservoir::new(1, 100, 5);
        for i in 0..10_000 {
            reservoir.push(&[i as f32]);
        }
        assert_eq!(reservoir.sample.rows(), 100);
        assert_eq!(reservoir.seen(), 10_000);
        let mean = reservoir.sample.values.iter().map(|&v| f64::from(v)).sum::<f64>() / 100.0;
        // Uniform over 0..10,000: mean 5,000, sd of the mean ~289.
        assert!((mean - 5000.0).abs() < 1200.0, "{mean}");
        let mut again = Reservoir::new(1, 100, 5);
        for i in 0..10_000 {
            again.push(&[i as f32]);
        }
        assert_eq!(again.sample, reservoir.sample);
    }
}
