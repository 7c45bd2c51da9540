//! Calibration: on data that has not drifted, each test raises a false alarm
//! at its level (5 % at α = 0.05, within 1.5 points over 1,000 seeded
//! resamples), and it sees a real shift (power).

use gourd_drift::column::{Accumulator, CURRENT, Categorical, Numeric, REFERENCE};
use gourd_drift::{Test, select};

const RESAMPLES: usize = 1000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }

    /// One of `shares.len()` categories, by their shares.
    fn category(&mut self, shares: &[f64]) -> usize {
        let u = self.uniform();
        let mut total = 0.0;
        for (i, s) in shares.iter().enumerate() {
            total += s;
            if u < total {
                return i;
            }
        }
        shares.len() - 1
    }
}

fn numeric(reference: &[f64], current: &[f64]) -> Accumulator {
    let mut c = Numeric::new();
    c.add(REFERENCE, reference);
    c.reference_done();
    c.add(CURRENT, current);
    Accumulator::Numeric(Box::new(c))
}

fn categorical(reference: &[usize], current: &[usize]) -> Accumulator {
    let mut c = Categorical::default();
    for x in reference {
        c.add(REFERENCE, &format!("c{x}"));
    }
    for x in current {
        c.add(CURRENT, &format!("c{x}"));
    }
    Accumulator::Categorical(c)
}

/// The share of `RESAMPLES` draws in which the column's default test
/// drifts, checking that the default is `expected`.
fn alarm_rate(seed: u64, expected: Test, mut draw: impl FnMut(&mut Rng) -> Accumulator) -> f64 {
    let mut rng = Rng(seed);
    let mut alarms = 0;
    for _ in 0..RESAMPLES {
        let column = draw(&mut rng);
        let test = select::default_test(&column);
        assert_eq!(test, expected);
        if select::run("x", &column, test, test.default_threshold()).unwrap().drift {
            alarms += 1;
        }
    }
    alarms as f64 / RESAMPLES as f64
}

fn normals(rng: &mut Rng, n: usize, shift: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() + shift).collect()
}

fn categories(rng: &mut Rng, n: usize, shares: &[f64]) -> Vec<usize> {
    (0..n).map(|_| rng.category(shares)).collect()
}

fn assert_calibrated(name: &str, rate: f64) {
    eprintln!("{name}: false-alarm rate {rate}");
    assert!((0.035..=0.065).contains(&rate), "{name}: false-alarm rate {rate} on undrifted data");
}

#[test]
fn kolmogorov_smirnov_holds_its_level_and_sees_a_shift() {
    // Continuous values, an unequal split: the exact p-value.
    let rate = alarm_rate(1, Test::Ks, |rng| numeric(&normals(rng, 600, 0.0), &normals(rng, 400, 0.0)));
    assert_calibrated("K-S", rate);
    let power = alarm_rate(2, Test::Ks, |rng| numeric(&normals(rng, 600, 0.0), &normals(rng, 400, 0.3)));
    eprintln!("K-S: power {power} against a shift of 0.3 sd");
    assert!(power > 0.9, "K-S power against a shift of 0.3 sd: {power}");
}

#[test]
fn kolmogorov_smirnov_with_a_long_current_holds_its_level() {
    // 12,000 current values: the asymptotic p-value, the gap counted
    // against the kept reference.
    let rate = alarm_rate(3, Test::Ks, |rng| numeric(&normals(rng, 300, 0.0), &normals(rng, 12_000, 0.0)));
    assert_calibrated("K-S, asymptotic", rate);
}

#[test]
fn chi_squared_holds_its_level_and_sees_a_shift() {
    let shares = [0.4, 0.3, 0.2, 0.1];
    let rate =
        alarm_rate(4, Test::Chi2, |rng| categorical(&categories(rng, 800, &shares), &categories(rng, 500, &shares)));
    assert_calibrated("chi-squared", rate);
    let shifted = [0.3, 0.3, 0.2, 0.2];
    let power =
        alarm_rate(5, Test::Chi2, |rng| categorical(&categories(rng, 800, &shares), &categories(rng, 500, &shifted)));
    eprintln!("chi-squared: power {power}");
    assert!(power > 0.9, "chi-squared power: {power}");
}

#[test]
fn z_test_holds_its_level_and_sees_a_shift() {
    let rate = alarm_rate(6, Test::Z, |rng| {
        let reference: Vec<f64> = categories(rng, 900, &[0.7, 0.3]).into_iter().map(|c| c as f64).collect();
        let current: Vec<f64> = categories(rng, 700, &[0.7, 0.3]).into_iter().map(|c| c as f64).collect();
        numeric(&reference, &current)
    });
    assert_calibrated("Z", rate);
    let power = alarm_rate(7, Test::Z, |rng| {
        let reference: Vec<f64> = categories(rng, 900, &[0.7, 0.3]).into_iter().map(|c| c as f64).collect();
        let current: Vec<f64> = categories(rng, 700, &[0.6, 0.4]).into_iter().map(|c| c as f64).collect();
        numeric(&reference, &current)
    });
    eprintln!("Z: power {power}");
    assert!(power > 0.9, "Z power: {power}");
}

#[test]
fn distances_on_large_references_do_not_alarm_on_identical_distributions() {
    // Evidently's issue 50: tests on large data flag negligible shifts.
    // Above 1,000 reference rows the defaults are distances, which stay
    // below their threshold on undrifted data and cross it on a real shift.
    let rate = alarm_rate(8, Test::Wasserstein, |rng| numeric(&normals(rng, 5000, 0.0), &normals(rng, 3000, 0.0)));
    assert_eq!(rate, 0.0, "Wasserstein alarms on undrifted data");
    let power = alarm_rate(9, Test::Wasserstein, |rng| numeric(&normals(rng, 5000, 0.0), &normals(rng, 3000, 0.2)));
    assert_eq!(power, 1.0, "Wasserstein misses a shift of 0.2 sd");
}
