//! The tests and distances other than K-S, each as scipy computes it and as
//! Evidently calls it (its binning, its zero filling, its `1 - cdf`).

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// Pearson's chi-squared test of homogeneity on the 2 × k table of the two
/// samples' counts (`scipy.stats.chi2_contingency(table, correction=False)`),
/// `k - 1` degrees of freedom. Both slices hold one count per category, in
/// the same order. Returns the statistic and the p-value; with one category
/// there is nothing to compare and the p-value is 1.
///
/// Evidently instead tests the current counts against the reference's
/// shares as if those were exact (`scipy.stats.chisquare`), which ignores
/// the reference's own sampling noise: on undrifted data of 800 and 500 rows
/// that raises a false alarm one time in five at α = 0.05 (see
/// tests/calibration.rs). The two-sample test holds its level.
pub fn chi_squared(reference: &[f64], current: &[f64]) -> (f64, f64) {
    let n_ref: f64 = reference.iter().sum();
    let n_cur: f64 = current.iter().sum();
    let total = n_ref + n_cur;
    let mut statistic = 0.0;
    for (r, c) in reference.iter().zip(current) {
        let column = r + c;
        for (observed, row) in [(r, n_ref), (c, n_cur)] {
            let expected = row * column / total;
            let diff = observed - expected;
            statistic += diff * diff / expected;
        }
    }
    let dof = reference.len().saturating_sub(1);
    if dof == 0 {
        return (0.0, 1.0);
    }
    let p = ChiSquared::new(dof as f64).expect("positive degrees of freedom").sf(statistic);
    (statistic, p)
}

/// The two-proportion Z-test, two-sided, as Evidently computes it: the share
/// of values other than the first category in each sample, a pooled
/// standard error, and `p = 2 (1 - Φ(|z|))`. Takes, per sample, how many
/// values are the first category and how many values there are.
pub fn z_test(ref_first: u64, ref_n: u64, cur_first: u64, cur_n: u64) -> (f64, f64) {
    let (n1, n2) = (ref_n as f64, cur_n as f64);
    let p1 = (ref_n - ref_first) as f64 / n1;
    let p2 = (cur_n - cur_first) as f64 / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let denominator = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if denominator == 0.0 {
        // One value in both samples: identical.
        return (0.0, 1.0);
    }
    let z = (p1 - p2) / denominator;
    let normal = Normal::standard();
    (z, 2.0 * (1.0 - normal.cdf(z.abs())))
}

/// The first Wasserstein distance between two samples
/// (`scipy.stats.wasserstein_distance`): the area between their empirical
/// distribution functions. Both slices must be sorted.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut previous: Option<f64> = None;
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        if let Some(prev) = previous {
            total += ((i as f64 / nu) - (j as f64 / nv)).abs() * (x - prev);
        }
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        previous = Some(x);
    }
    total
}

/// The Wasserstein distance divided by the reference's standard deviation
/// (population, at least 0.001), Evidently's `wasserstein` test.
pub fn wasserstein_normed(reference: &[f64], current: &[f64]) -> f64 {
    let mut u = reference.to_vec();
    let mut v = current.to_vec();
    u.sort_by(f64::total_cmp);
    v.sort_by(f64::total_cmp);
    wasserstein_sorted(&u, &v) / std_dev(reference).max(0.001)
}

/// Above this magnitude a value's square, or a sum of such values, may
/// pass `f64::MAX`: sums and squares are then taken of values scaled by
/// [`SCALE_DOWN`] (a power of two, so that scaling is exact).
pub const HUGE: f64 = 3.273390607896142e150; // 2^500
pub const SCALE_DOWN: f64 = 2.409919865102884e-181; // 2^-600

/// Population standard deviation (`numpy.std`), two passes; exact in
/// scaled units where the values are huge.
pub fn std_dev(values: &[f64]) -> f64 {
    let huge = values.iter().any(|x| x.abs() > HUGE);
    let scale = if huge { SCALE_DOWN } else { 1.0 };
    let n = values.len() as f64;
    let mean = values.iter().map(|x| x * scale).sum::<f64>() / n;
    (values.iter().map(|x| (x * scale - mean) * (x * scale - mean)).sum::<f64>() / n).sqrt() / scale
}

/// `x ln(x / y)` with scipy's `rel_entr` conventions.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The Jensen–Shannon distance (`scipy.spatial.distance.jensenshannon`,
/// natural logarithm) between two vectors of weights, each normalised to 1.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    let mut left = 0.0;
    let mut right = 0.0;
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    ((left + right) / 2.0).sqrt()
}

/// Evidently's zero filling before PSI: a share of 0 becomes 0.0001, or a
/// millionth of the smallest non-zero share when that is smaller.
pub fn fill_zeroes(shares: &mut [f64]) {
    let smallest = shares.iter().cloned().filter(|&s| s != 0.0).fold(f64::INFINITY, f64::min);
    let fill = if smallest <= 0.0001 { smallest / 1e6 } else { 0.0001 };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = fill;
    }
}

/// The population stability index of two vectors of shares, zeroes filled
/// as Evidently does.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let mut r = reference.to_vec();
    let mut c = current.to_vec();
    fill_zeroes(&mut r);
    fill_zeroes(&mut c);
    r.iter().zip(&c).map(|(a, b)| (a - b) * (a / b).ln()).sum()
}

/// Equal-width bin edges over `[lo, hi]` (`numpy.linspace`, widened by
/// 0.5 each way when the range is empty, as `numpy.histogram_bin_edges`).
pub fn bin_edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step + lo).collect();
    edges[bins] = hi;
    edges
}

/// The number of bins of `numpy.histogram_bin_edges(bins="sturges")` for
/// `n` values spanning `ptp`.
pub fn sturges_bins(n: usize, ptp: f64) -> usize {
    let width = ptp / ((n as f64).log2() + 1.0);
    if width > 0.0 { (ptp / width).ceil() as usize } else { 1 }
}

/// The bin of `x` among `edges` as `numpy.histogram` places it: the last bin
/// holds its right edge; values outside are `None`.
pub fn bin_of(edges: &[f64], x: f64) -> Option<usize> {
    let bins = edges.len() - 1;
    if x < edges[0] || x > edges[bins] {
        return None;
    }
    let upper = edges.partition_point(|&e| e <= x);
    Some(upper.saturating_sub(1).min(bins - 1))
}

/// Counts of sorted-or-not `values` in equal-width bins (`numpy.histogram`).
pub fn histogram(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() - 1];
    for &x in values {
        if let Some(b) = bin_of(edges, x) {
            counts[b] += 1.0;
        }
    }
    counts
}

/// Evidently's binned shares for PSI and Jensen–Shannon on numeric columns
/// with more than 20 distinct reference values: Sturges' number of bins over
/// the range of both samples together.
pub fn numeric_shares(reference: &[f64], current: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let lo = reference.iter().chain(current).cloned().fold(f64::INFINITY, f64::min);
    let hi = reference.iter().chain(current).cloned().fold(f64::NEG_INFINITY, f64::max);
    let edges = bin_edges(lo, hi, sturges_bins(reference.len() + current.len(), hi - lo));
    let r = histogram(reference, &edges).into_iter().map(|c| c / reference.len() as f64).collect();
    let c = histogram(current, &edges).into_iter().map(|c| c / current.len() as f64).collect();
    (r, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_value_does_not_overflow_the_standard_deviation() {
        assert_eq!(std_dev(&[1e300, -1e300]), 1e300);
        assert_eq!(std_dev(&[f64::MAX, -f64::MAX]), f64::MAX);
        assert_eq!(std_dev(&[-3.0, 1.0]), 2.0);
        // The normalised distance does not depend on the unit.
        let reference: Vec<f64> = (0..1000).map(f64::from).chain([1e300]).collect();
        let current: Vec<f64> = (0..1000).map(|i| f64::from(i) + 0.5).collect();
        let shrunk = |v: &[f64]| v.iter().map(|x| x * 1e-200).collect::<Vec<_>>();
        let huge = wasserstein_normed(&reference, &current);
        let small = wasserstein_normed(&shrunk(&reference), &shrunk(&current));
        assert!(huge.is_finite() && (huge - small).abs() <= 1e-9 * small, "{huge} vs {small}");
    }

    #[test]
    fn wasserstein_of_a_shift_is_the_shift() {
        let u = [0.0, 1.0, 2.0];
        let v = [0.5, 1.5, 2.5];
        assert!((wasserstein_sorted(&u, &v) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn jensen_shannon_of_disjoint_supports_is_sqrt_ln2() {
        let d = jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]);
        assert!((d - std::f64::consts::LN_2.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn numpy_places_the_right_edge_in_the_last_bin() {
        let edges = bin_edges(0.0, 1.0, 4);
        assert_eq!(bin_of(&edges, 1.0), Some(3));
        assert_eq!(bin_of(&edges, 0.25), Some(1));
        assert_eq!(bin_of(&edges, -0.1), None);
    }

    #[test]
    fn z_test_of_one_shared_value_is_no_evidence() {
        assert_eq!(z_test(10, 10, 5, 5), (0.0, 1.0));
    }
}
