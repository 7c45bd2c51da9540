//! A fixed-size histogram of a numeric column, shared by the reference and
//! the current data, for columns too long to keep: 65,536 equal bins whose
//! range doubles (pairs of bins merged) whenever a value falls outside.
//!
//! Memory is fixed (512 KiB a column) and every value is placed in O(1).
//! Reading a value as its bin's centre moves it by at most half a bin, so a
//! Wasserstein distance computed from the grid is within one bin width of
//! the exact one (the distance is a metric, and each sample moves by at most
//! half a width); K-S gaps are within the largest share of one bin.

pub const BINS: usize = 1 << 16;

/// The grid works on values divided by 8 (exact: a power of two), so that
/// no span, bin edge or growth between the largest values of opposite sign
/// (±1.8e308) overflows to infinity, which would leave a value in no bin.
const SHRINK: f64 = 0.125;

#[derive(Clone, Debug)]
pub struct Grid {
    lo: f64,
    width: f64,
    /// `1 / width`: a multiplication per value instead of a division.
    scale: f64,
    counts: [Vec<u32>; 2],
}

impl Grid {
    /// A grid covering `[min, max]` (the first values seen).
    pub fn new(min: f64, max: f64) -> Self {
        let (min, max) = (min * SHRINK, max * SHRINK);
        let span = max - min;
        let width = if span > 0.0 {
            // A little room, so that `max` itself falls inside.
            span / (BINS as f64 - 1.0)
        } else {
            (min.abs() * f64::EPSILON * 1024.0).max(f64::MIN_POSITIVE)
        };
        Grid { lo: min, width, scale: 1.0 / width, counts: [vec![0; BINS], vec![0; BINS]] }
    }

    /// Adds `values` (finite: the readers take anything else as missing)
    /// to side 0 (reference) or 1 (current).
    pub fn add(&mut self, side: usize, values: &[f64]) {
        for &x in values {
            assert!(x.is_finite(), "a value that is not finite reached the grid: {x}");
            let x = x * SHRINK;
            let mut index = (x - self.lo) * self.scale;
            // From the narrowest width to the widest span there are fewer
            // than 2,100 doublings.
            let mut grown = 0;
            while !(0.0..BINS as f64).contains(&index) {
                assert!(grown < 2100, "the grid cannot hold {x} (lo {}, width {})", self.lo, self.width);
                self.grow(x);
                grown += 1;
                index = (x - self.lo) * self.scale;
            }
            self.counts[side][index as usize] += 1;
        }
    }

    /// Doubles the bin width, towards `x`.
    fn grow(&mut self, x: f64) {
        let half = BINS / 2;
        let downward = x < self.lo;
        for counts in &mut self.counts {
            let mut merged = vec![0u32; BINS];
            for (i, &c) in counts.iter().enumerate() {
                let target = if downward { half + i / 2 } else { i / 2 };
                merged[target] += c;
            }
            *counts = merged;
        }
        if downward {
            self.lo -= BINS as f64 * self.width;
        }
        self.width *= 2.0;
        self.scale = 1.0 / self.width;
    }

    pub fn width(&self) -> f64 {
        self.width / SHRINK
    }

    /// Each bin's centre and its two counts, for non-empty bins.
    pub fn bins(&self) -> impl Iterator<Item = (f64, u32, u32)> + '_ {
        (0..BINS)
            .filter(|&i| self.counts[0][i] + self.counts[1][i] > 0)
            // The centre of a bin that holds `f64::MAX` may lie above it.
            .map(|i| {
                let centre = ((self.lo + (i as f64 + 0.5) * self.width) / SHRINK).clamp(f64::MIN, f64::MAX);
                (centre, self.counts[0][i], self.counts[1][i])
            })
    }

    /// The Wasserstein distance between the two sides, values read as their
    /// bins' centres: `width · Σ |F_i - G_i|`.
    pub fn wasserstein(&self) -> f64 {
        let (n0, n1) = self.totals();
        let (mut c0, mut c1) = (0u64, 0u64);
        let mut total = 0.0;
        for i in 0..BINS {
            c0 += u64::from(self.counts[0][i]);
            c1 += u64::from(self.counts[1][i]);
            total += (c0 as f64 / n0 as f64 - c1 as f64 / n1 as f64).abs();
        }
        total * self.width()
    }

    /// The largest gap between the two sides' distribution functions at the
    /// bins' edges, in units of `1 / lcm(n0, n1)`.
    pub fn ks_gap(&self) -> u64 {
        let (n0, n1) = self.totals();
        let g = crate::ks::gcd(n0, n1);
        let (n0g, n1g) = (i128::from(n0 / g), i128::from(n1 / g));
        let (mut c0, mut c1) = (0i128, 0i128);
        let mut gap = 0i128;
        for i in 0..BINS {
            c0 += i128::from(self.counts[0][i]);
            c1 += i128::from(self.counts[1][i]);
            gap = gap.max((c0 * n1g - c1 * n0g).abs());
        }
        gap as u64
    }

    pub fn totals(&self) -> (u64, u64) {
        let sum = |c: &Vec<u32>| c.iter().map(|&x| u64::from(x)).sum::<u64>();
        (sum(&self.counts[0]), sum(&self.counts[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_wasserstein_is_within_one_bin_of_exact() {
        let u: Vec<f64> = (0..5000).map(|i| ((i * 7919) % 5000) as f64 / 100.0).collect();
        let v: Vec<f64> = u.iter().map(|x| x * 1.3 + 2.0).collect();
        let mut grid = Grid::new(0.0, 1.0);
        grid.add(0, &u);
        grid.add(1, &v);
        let mut su = u.clone();
        let mut sv = v.clone();
        su.sort_by(f64::total_cmp);
        sv.sort_by(f64::total_cmp);
        let exact = crate::stats::wasserstein_sorted(&su, &sv);
        assert!((grid.wasserstein() - exact).abs() <= grid.width(), "{} vs {exact}", grid.wasserstein());
        assert_eq!(grid.totals(), (5000, 5000));
    }

    #[test]
    fn growing_downwards_keeps_every_count() {
        let mut grid = Grid::new(10.0, 11.0);
        grid.add(0, &[10.0, 10.5, 11.0]);
        grid.add(1, &[-1000.0, 1e6]);
        assert_eq!(grid.totals(), (3, 2));
        let centres: Vec<f64> = grid.bins().map(|(c, _, _)| c).collect();
        assert!(centres.windows(2).all(|w| w[0] < w[1]));
        assert!((centres[0] + 1000.0).abs() <= grid.width());
    }

    /// The span between the largest values of opposite sign is more than
    /// a float holds; the grid still places every value, at once.
    #[test]
    fn the_widest_values_of_both_signs_are_placed() {
        for (first, then) in [
            ((0.0, 99.0), vec![1e308, -1e308, f64::MAX, f64::MIN]),
            ((f64::MIN, f64::MAX), vec![0.0, 5e-324, -5e-324, 1.0]),
            ((-1e308, -1e308), vec![1e308, f64::MAX]),
            ((5e-324, 5e-324), vec![f64::MIN, f64::MAX]),
        ] {
            let mut grid = Grid::new(first.0, first.1);
            grid.add(0, &[first.0, first.1]);
            grid.add(1, &then);
            assert_eq!(grid.totals(), (2, then.len() as u64));
            // (The distance between such sides may itself be past what a
            // float holds.)
            assert!(grid.width().is_finite(), "{first:?} {then:?}");
            let centres: Vec<f64> = grid.bins().map(|(c, _, _)| c).collect();
            assert!(centres.iter().all(|c| c.is_finite()), "{centres:?}");
            let (lowest, highest) = then.iter().fold((first.0, first.1), |(l, h), &x| (l.min(x), h.max(x)));
            assert!((centres[0] - lowest).abs() <= grid.width(), "{centres:?} {lowest}");
            assert!((centres[centres.len() - 1] - highest).abs() <= grid.width(), "{centres:?} {highest}");
        }
    }
}
