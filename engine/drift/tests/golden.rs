//! gourd-drift against scipy and Evidently: the values in golden.json were
//! computed by `scripts/drift-golden.py` (scipy's `ks_2samp`, `kstwo`,
//! `chisquare`, `wasserstein_distance`, `jensenshannon`, and Evidently's own
//! test functions and default choice), on samples both sides generate
//! bit-identically. Every value must agree to 1e-9 (relative above 1).

use gourd_drift::column::{Accumulator, CURRENT, Categorical, Numeric, REFERENCE};
use gourd_drift::{Test, ks, select, stats};
use serde_json::Value;

const GOLDEN: &str = include_str!("golden.json");
const TOLERANCE: f64 = 1e-9;

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / 9007199254740992.0)
    }
}

/// The sample a spec describes, as scripts/drift-golden.py draws it.
fn sample(spec: &Value) -> Vec<f64> {
    let mut rng = SplitMix64(spec["seed"].as_u64().unwrap());
    let n = spec["n"].as_u64().unwrap();
    let f = |k: &str| spec[k].as_f64().unwrap();
    (0..n)
        .map(|_| match spec["dist"].as_str().unwrap() {
            "uniform" => f("shift") + f("scale") * rng.uniform(),
            "int" => (rng.uniform() * f("k")).floor(),
            "sum4" => {
                let s = rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform();
                f("shift") + f("scale") * (s - 2.0)
            }
            other => panic!("unknown generator {other}"),
        })
        .collect()
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= TOLERANCE * expected.abs().max(1.0)
}

fn accumulator(reference: &[f64], current: &[f64], categorical: bool) -> Accumulator {
    if categorical {
        let mut c = Categorical::default();
        for x in reference {
            c.add(REFERENCE, &format!("c{x}"));
        }
        for x in current {
            c.add(CURRENT, &format!("c{x}"));
        }
        Accumulator::Categorical(c)
    } else {
        let mut c = Numeric::new();
        c.add(REFERENCE, reference);
        c.reference_done();
        c.add(CURRENT, current);
        Accumulator::Numeric(Box::new(c))
    }
}

#[test]
fn statistics_match_scipy_and_evidently() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let reference = sample(&case["reference"]);
        let current = sample(&case["current"]);
        let categorical = case["categorical"].as_bool().unwrap();
        let column = accumulator(&reference, &current, categorical);
        let default = select::default_test(&column);
        if default.name() != case["default"].as_str().unwrap() {
            failures.push(format!("{name}: default test {} but Evidently picks {}", default.name(), case["default"]));
        }
        for (test, expected) in case["expected"].as_object().unwrap() {
            let test = Test::parse(test).unwrap();
            let report = select::run(name, &column, test, test.default_threshold()).unwrap();
            let want_stat = expected[0].as_f64().unwrap();
            let want_p = expected[1].as_f64();
            checked += 1;
            if reference.len().max(current.len()) > gourd_drift::column::EXACT_LIMIT {
                // Too long to keep: the column was read into its histogram.
                // A Wasserstein distance is then within one bin width (over
                // the reference's deviation); a K-S gap within one bin's
                // share of each sample.
                let Accumulator::Numeric(c) = &column else { unreachable!() };
                let grid = c.grid.as_ref().unwrap();
                assert_eq!(grid.totals(), (reference.len() as u64, current.len() as u64), "{name}: every value binned");
                let bound = match test {
                    Test::Wasserstein => grid.width() / stats::std_dev(&reference),
                    _ => 2.0 / reference.len().min(current.len()) as f64,
                };
                if (report.statistic - want_stat).abs() > bound {
                    failures.push(format!("{name} {} (histogram): {} vs {want_stat}", test.name(), report.statistic));
                }
            } else if !close(report.statistic, want_stat) {
                failures.push(format!("{name} {}: statistic {} vs {want_stat}", test.name(), report.statistic));
            }
            match (report.p_value, want_p) {
                _ if reference.len().max(current.len()) > gourd_drift::column::EXACT_LIMIT => {}
                (Some(p), Some(want)) if !close(p, want) => {
                    failures.push(format!("{name} {}: p {p} vs {want}", test.name()))
                }
                (None, None) | (Some(_), Some(_)) => {}
                (p, want) => failures.push(format!("{name} {}: p {p:?} vs {want:?}", test.name())),
            }
            // The raw functions, on the raw samples, agree too.
            if test == Test::Ks {
                let r = ks::ks_2samp(&reference, &current);
                if !close(r.statistic, want_stat) || !close(r.p_value, want_p.unwrap()) {
                    failures.push(format!("{name} ks_2samp: {r:?}"));
                }
            }
            if test == Test::Wasserstein && !close(stats::wasserstein_normed(&reference, &current), want_stat) {
                failures.push(format!("{name} wasserstein_normed"));
            }
        }
    }
    for point in golden["kstwo"].as_array().unwrap() {
        let (n, x, want) = (point["n"].as_u64().unwrap(), point["x"].as_f64().unwrap(), point["sf"].as_f64().unwrap());
        let got = ks::kolmogorov_sf(n, x);
        checked += 1;
        if !close(got, want) {
            failures.push(format!("kstwo.sf({x}, {n}): {got} vs {want}"));
        }
    }
    assert!(checked > 200, "only {checked} values checked");
    assert!(failures.is_empty(), "{} of {checked} values differ:\n{}", failures.len(), failures.join("\n"));
}
