//! Which test a column gets (Evidently's defaults), and running it on what
//! was kept of the column.

use serde::Serialize;

use crate::column::{Accumulator, BINNED_ABOVE, CURRENT, Categorical, Numeric, REFERENCE};
use crate::{Error, ks, stats};

/// Evidently's defaults switch from tests to distances above this many
/// reference rows.
pub const SMALL_REFERENCE: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Test {
    Ks,
    Chi2,
    Z,
    Wasserstein,
    JensenShannon,
    Psi,
    /// Maximum mean discrepancy over a vector (embeddings), not a column.
    Mmd,
}

impl Test {
    pub const ALL: [Test; 6] = [Test::Ks, Test::Chi2, Test::Z, Test::Wasserstein, Test::JensenShannon, Test::Psi];

    pub fn name(self) -> &'static str {
        match self {
            Test::Ks => "ks",
            Test::Chi2 => "chi2",
            Test::Z => "z",
            Test::Wasserstein => "wasserstein",
            Test::JensenShannon => "jensenshannon",
            Test::Psi => "psi",
            Test::Mmd => "mmd",
        }
    }

    pub fn parse(name: &str) -> Option<Test> {
        Test::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Tests give p-values and drift below the threshold; distances drift at
    /// or above it.
    pub fn default_threshold(self) -> f64 {
        match self {
            Test::Ks | Test::Chi2 | Test::Z | Test::Mmd => 0.05,
            Test::Wasserstein | Test::JensenShannon | Test::Psi => 0.1,
        }
    }

    fn numeric_only(self) -> bool {
        matches!(self, Test::Ks | Test::Wasserstein)
    }
}

/// Evidently's choice: with a reference of at most 1,000 rows, K-S for a
/// numeric column of more than 5 distinct values (both files together),
/// chi-squared for 3 to 5 values or a categorical column of more than 2,
/// else the Z-test; with a larger reference, the normalised Wasserstein
/// distance for a numeric column of more than 5 values, else Jensen–Shannon.
pub fn default_test(column: &Accumulator) -> Test {
    let small = column.n()[REFERENCE] <= SMALL_REFERENCE;
    match column {
        Accumulator::Numeric(c) => {
            let few = c.distinct_count().is_some_and(|d| d <= 5);
            match (small, few) {
                (true, true) if c.distinct_count() > Some(2) => Test::Chi2,
                (true, true) => Test::Z,
                (true, false) => Test::Ks,
                (false, true) => Test::JensenShannon,
                (false, false) => Test::Wasserstein,
            }
        }
        Accumulator::Categorical(c) => {
            if !small {
                Test::JensenShannon
            } else if c.counts.len() > 2 {
                Test::Chi2
            } else {
                Test::Z
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnReport {
    pub test: Test,
    pub statistic: f64,
    pub p_value: Option<f64>,
    pub threshold: f64,
    pub drift: bool,
}

/// A test's threshold is a p-value (between 0 and 1) or a distance (above
/// 0): `threshold = 7` on a p-value would call every column drifted, and a
/// negative one none.
pub fn check_threshold(name: &str, test: Test, threshold: f64) -> Result<(), Error> {
    let p_value = matches!(test, Test::Ks | Test::Chi2 | Test::Z | Test::Mmd);
    let fits = threshold.is_finite() && threshold > 0.0 && (!p_value || threshold < 1.0);
    if fits {
        return Ok(());
    }
    let wanted = if p_value { "a p-value, between 0 and 1" } else { "a distance, above 0" };
    Err(Error::Config(format!("column `{name}`: the threshold of `{}` is {wanted}, not {threshold}", test.name())))
}

/// Runs `test` on `column`.
pub fn run(name: &str, column: &Accumulator, test: Test, threshold: f64) -> Result<ColumnReport, Error> {
    check_threshold(name, test, threshold)?;
    if test.numeric_only() && matches!(column, Accumulator::Categorical(_)) {
        return Err(Error::NeedsNumeric { column: name.to_string(), test: test.name() });
    }
    let (statistic, p_value) = match (test, column) {
        (Test::Ks, Accumulator::Numeric(c)) => {
            let r = ks_numeric(c);
            (r.statistic, Some(r.p_value))
        }
        (Test::Wasserstein, Accumulator::Numeric(c)) => (wasserstein_numeric(c), None),
        (Test::Chi2 | Test::Z, _) => {
            let counts = counts(name, column, test)?;
            let (s, p) = if test == Test::Chi2 {
                let reference: Vec<f64> = counts.iter().map(|c| c[0] as f64).collect();
                let current: Vec<f64> = counts.iter().map(|c| c[1] as f64).collect();
                stats::chi_squared(&reference, &current)
            } else {
                let n = column.n();
                stats::z_test(counts[0][0], n[REFERENCE], counts[0][1], n[CURRENT])
            };
            (s, Some(p))
        }
        (Test::JensenShannon | Test::Psi, _) => {
            let (reference, current) = shares(column);
            let d = if test == Test::Psi {
                stats::psi(&reference, &current)
            } else {
                stats::jensen_shannon(&reference, &current)
            };
            (d, None)
        }
        (Test::Ks | Test::Wasserstein, Accumulator::Categorical(_)) => unreachable!("checked above"),
        (Test::Mmd, _) => {
            return Err(Error::Config(format!(
                "column `{name}`: `mmd` compares embeddings as a whole; set `embedding` to their fields' prefix"
            )));
        }
    };
    let drift = match (test, p_value) {
        // Evidently: K-S drifts at p <= threshold, chi-squared and Z below it.
        (Test::Ks, Some(p)) => p <= threshold,
        (_, Some(p)) => p < threshold,
        (_, None) => statistic >= threshold,
    };
    Ok(ColumnReport { test, statistic, p_value, threshold, drift })
}

fn ks_numeric(c: &Numeric) -> ks::KsResult {
    if let (Some(r), Some(k)) = (&c.exact[REFERENCE], &c.exact[CURRENT]) {
        return ks::ks_2samp(r, k);
    }
    let (n1, n2) = (c.n[REFERENCE], c.n[CURRENT]);
    if let Some(points) = &c.points {
        // The gap can only peak at a reference value or just below one.
        let g = ks::gcd(n1, n2);
        let (n1g, n2g) = (i128::from(n1 / g), i128::from(n2 / g));
        let gap = |r: u64, k: u64| (i128::from(r) * n2g - i128::from(k) * n1g).abs();
        let (mut below_ref, mut seen) = (0u64, 0u64);
        let mut h = 0i128;
        for i in 0..points.values.len() {
            seen += points.below[i];
            h = h.max(gap(below_ref, seen));
            seen += points.at[i];
            below_ref = points.cumulative[i];
            h = h.max(gap(below_ref, seen));
        }
        return ks::from_gap(n1, n2, h as u64);
    }
    let grid = c.grid.as_ref().expect("a column not kept whole has a histogram");
    ks::from_gap(n1, n2, grid.ks_gap())
}

fn wasserstein_numeric(c: &Numeric) -> f64 {
    let norm = c.reference_std().max(0.001);
    if let (Some(r), Some(k)) = (&c.exact[REFERENCE], &c.exact[CURRENT]) {
        let mut u = r.clone();
        let mut v = k.clone();
        u.sort_by(f64::total_cmp);
        v.sort_by(f64::total_cmp);
        return stats::wasserstein_sorted(&u, &v) / norm;
    }
    c.grid.as_ref().expect("a column not kept whole has a histogram").wasserstein() / norm
}

/// Counts per value (reference, current), in increasing order of value.
fn counts(name: &str, column: &Accumulator, test: Test) -> Result<Vec<[u64; 2]>, Error> {
    match column {
        Accumulator::Numeric(c) => c
            .value_counts()
            .map(|v| v.into_iter().map(|(_, c)| c).collect())
            .ok_or_else(|| Error::TooManyValues { column: name.to_string(), test: test.name() }),
        Accumulator::Categorical(c) => Ok(c.value_counts().into_iter().map(|(_, c)| c).collect()),
    }
}

/// Evidently's shares for PSI and Jensen–Shannon: per value for categorical
/// columns and numeric ones of at most 20 distinct reference values, else in
/// Sturges' bins over both files' range.
fn shares(column: &Accumulator) -> (Vec<f64>, Vec<f64>) {
    let n = column.n();
    let per_value = |counts: Vec<[u64; 2]>| -> (Vec<f64>, Vec<f64>) {
        (
            counts.iter().map(|c| c[0] as f64 / n[REFERENCE] as f64).collect(),
            counts.iter().map(|c| c[1] as f64 / n[CURRENT] as f64).collect(),
        )
    };
    match column {
        Accumulator::Categorical(Categorical { .. }) => {
            let Accumulator::Categorical(c) = column else { unreachable!() };
            per_value(c.value_counts().into_iter().map(|(_, c)| c).collect())
        }
        Accumulator::Numeric(c) => {
            if c.reference_distinct() <= BINNED_ABOVE
                && let Some(counts) = c.value_counts()
            {
                return per_value(counts.into_iter().map(|(_, c)| c).collect());
            }
            if let (Some(r), Some(k)) = (&c.exact[REFERENCE], &c.exact[CURRENT]) {
                return stats::numeric_shares(r, k);
            }
            let grid = c.grid.as_ref().expect("a column not kept whole has a histogram");
            let total = (n[REFERENCE] + n[CURRENT]) as usize;
            let edges = stats::bin_edges(c.min, c.max, stats::sturges_bins(total, c.max - c.min));
            let mut reference = vec![0.0; edges.len() - 1];
            let mut current = vec![0.0; edges.len() - 1];
            for (centre, r, k) in grid.bins() {
                let b = stats::bin_of(&edges, centre.clamp(c.min, c.max)).expect("clamped into range");
                reference[b] += f64::from(r);
                current[b] += f64::from(k);
            }
            (
                reference.into_iter().map(|x| x / n[REFERENCE] as f64).collect(),
                current.into_iter().map(|x| x / n[CURRENT] as f64).collect(),
            )
        }
    }
}
