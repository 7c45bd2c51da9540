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
        let span = max - min;
        let width = if span > 0.0 {
            // A little room, so that `max` itself falls inside.
            span / (BINS as f64 - 1.0)
        } else {
            (min.abs() * f64::EPSILON * 1024.0).max(f64::MIN_POSITIVE)
        };
        Grid { lo: min, width, scale: 1.0 / width, counts: [vec![0; BINS], vec![0; BINS]] }
    }

    /// Adds `values` to side 0 (reference) or 1 (current).
    pub fn add(&mut self, side: usize, values: &[f64]) {
        for &x in values {
            let mut index = (x - self.lo) * self.scale;
            while !(0.0..BINS as f64).contains(&index) {
                self.grow(x);
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
        self.width
    }

    /// Each bin's centre and its two counts, for non-empty bins.
    pub fn bins(&self) -> impl Iterator<Item = (f64, u32, u32)> + '_ {
        (0..BINS)
            .filter(|&i| self.counts[0][i] + self.counts[1][i] > 0)
            .map(|i| (self.lo + (i as f64 + 0.5) * self.width, self.counts[0][i], self.counts[1][i]))
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
        total * self.width
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
}
