#!/usr/bin/env python3
"""Writes engine/drift/tests/golden.json: drift statistics computed by scipy
and by Evidently's own test functions, for gourd-drift's golden test.

Samples are not stored: each case names a generator (splitmix64, uniforms
scaled and shifted, integers, sums of uniforms) that the Rust test runs
too, with the same IEEE operations in the same order, so both sides see
bit-identical data.

    python3 -m venv /tmp/venv-drift
    /tmp/venv-drift/bin/pip install scipy numpy 'pandas<3' evidently
    /tmp/venv-drift/bin/python scripts/drift-golden.py
"""

import json
import math
import pathlib
import sys

import numpy as np
import pandas as pd
import scipy
from scipy import stats
from scipy.spatial import distance

from evidently.legacy.core import ColumnType
from evidently.legacy.calculations.stattests import registry
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.calculations.stattests.z_stattest import proportions_diff_z_stat_ind, proportions_diff_z_test

MASK = (1 << 64) - 1


def splitmix64(seed):
    state = seed & MASK
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def uniform(rng):
    return (next(rng) >> 11) * (1.0 / 9007199254740992.0)


def sample(spec):
    """The sample a generator spec describes (mirrored in tests/golden.rs)."""
    rng = splitmix64(spec["seed"])
    kind, n = spec["dist"], spec["n"]
    out = []
    for _ in range(n):
        if kind == "uniform":
            out.append(spec["shift"] + spec["scale"] * uniform(rng))
        elif kind == "int":
            out.append(float(math.floor(uniform(rng) * spec["k"])))
        elif kind == "sum4":
            s = uniform(rng) + uniform(rng) + uniform(rng) + uniform(rng)
            out.append(spec["shift"] + spec["scale"] * (s - 2.0))
        else:
            raise ValueError(kind)
    return out


def gen(seed, n, dist, **params):
    return {"seed": seed, "n": n, "dist": dist, **params}


def evidently_default(ref, cur, categorical):
    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    test = registry._get_default_stattest(ref, cur, kind)
    return {
        "ks": "ks",
        "chisquare": "chi2",
        "z": "z",
        "wasserstein": "wasserstein",
        "jensenshannon": "jensenshannon",
    }[test.name]


def chi2(ref, cur):
    # The two-sample test of homogeneity on the 2 x k table (not Evidently's
    # one-sample chisquare against the reference's shares, which does not
    # hold its level: see engine/drift/src/stats.rs).
    keys = sorted(set(ref.unique()) | set(cur.unique()))
    rc, cc = ref.value_counts(), cur.value_counts()
    table = [[rc.get(k, 0) for k in keys], [cc.get(k, 0) for k in keys]]
    result = stats.chi2_contingency(table, correction=False)
    return float(result[0]), float(result[1])


def z(ref, cur):
    keys = sorted(set(ref.unique()) | set(cur.unique()))
    if ref.nunique() == 1 and cur.nunique() == 1 and ref.unique()[0] == cur.unique()[0]:
        return 0.0, 1.0
    zs = proportions_diff_z_stat_ind(
        ref.apply(lambda x, key=keys[0]: 0 if x == key else 1),
        cur.apply(lambda x, key=keys[0]: 0 if x == key else 1),
    )
    return float(zs), float(proportions_diff_z_test(zs))


def case(name, a, b, tests, categorical=False):
    ra, rb = sample(a), sample(b)
    if categorical:
        ref = pd.Series([f"c{int(x)}" for x in ra])
        cur = pd.Series([f"c{int(x)}" for x in rb])
    else:
        ref, cur = pd.Series(ra), pd.Series(rb)
    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    expected = {}
    for test in tests:
        if test == "ks":
            r = stats.ks_2samp(ra, rb)
            expected["ks"] = [float(r.statistic), float(r.pvalue)]
        elif test == "chi2":
            expected["chi2"] = list(chi2(ref, cur))
        elif test == "z":
            expected["z"] = list(z(ref, cur))
        elif test == "wasserstein":
            expected["wasserstein"] = [float(_wasserstein_distance_norm(ref, cur, kind, 0.1)[0]), None]
        elif test == "jensenshannon":
            expected["jensenshannon"] = [float(_jensenshannon(ref, cur, kind, 0.1)[0]), None]
        elif test == "psi":
            expected["psi"] = [float(_psi(ref, cur, kind, 0.1)[0]), None]
    return {
        "name": name,
        "reference": a,
        "current": b,
        "categorical": categorical,
        "default": evidently_default(ref, cur, categorical),
        "expected": expected,
    }


def kstwo_cases():
    """`kstwo.sf(x, n)` in each region of Simard and L'Ecuyer's method."""
    out = []
    for n in [1, 2, 5, 10, 50, 100, 140, 141, 500, 1000, 5000, 20000, 100001, 250000]:
        for x in [0.001, 0.3 / n, 0.6 / n, 0.9 / n, 1.5 / n, 0.5 / math.sqrt(n), 0.8 / math.sqrt(n),
                  1.0 / math.sqrt(n), 1.36 / math.sqrt(n), 1.6 / math.sqrt(n), 2.0 / math.sqrt(n),
                  3.0 / math.sqrt(n), 0.2, 0.45, 0.5, 0.7, 0.99]:
            if 0 < x < 1:
                out.append({"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n))})
    return out


def main():
    cases = []
    # K-S: tiny to large, equal and unequal sizes, ties, shifts; exact
    # (n <= 10,000) and asymptotic.
    sizes = [(5, 5), (7, 13), (20, 20), (30, 45), (100, 100), (150, 90), (1000, 1000), (1000, 700),
             (999, 10000), (3000, 2000)]
    seed = 1
    for n1, n2 in sizes:
        for shift in [0.0, 0.05, 0.3]:
            cases.append(case(f"ks-{n1}x{n2}-shift{shift}", gen(seed, n1, "sum4", scale=1.0, shift=0.0),
                              gen(seed + 1000, n2, "sum4", scale=1.0, shift=shift), ["ks", "wasserstein", "psi", "jensenshannon"]))
            seed += 1
    for n1, n2 in [(12000, 300), (20000, 15000), (10001, 10001), (50000, 1000)]:
        for shift in [0.0, 0.02, 0.1]:
            # Past 20,000 values gourd bins PSI and Jensen-Shannon on a
            # histogram (tested apart); K-S and Wasserstein are exact here.
            tests = ["ks", "wasserstein"] + (["psi", "jensenshannon"] if max(n1, n2) <= 20000 else [])
            cases.append(case(f"ks-asymp-{n1}x{n2}-shift{shift}", gen(seed, n1, "uniform", scale=1.0, shift=0.0),
                              gen(seed + 1000, n2, "uniform", scale=1.0, shift=shift), tests))
            seed += 1
    # Ties: integers.
    for n1, n2, k in [(40, 60, 8), (500, 500, 30), (800, 1200, 12), (20000, 3000, 50)]:
        cases.append(case(f"ks-ties-{n1}x{n2}-k{k}", gen(seed, n1, "int", k=k), gen(seed + 1000, n2, "int", k=k),
                          ["ks", "wasserstein", "psi", "jensenshannon", "chi2"]))
        seed += 1
    # Few values: chi-squared and Z, numeric and categorical.
    for n1, n2, k in [(200, 150, 2), (600, 600, 3), (1000, 400, 5), (5000, 5000, 4), (50, 70, 2)]:
        for categorical in [False, True]:
            cases.append(case(f"counts-{n1}x{n2}-k{k}-{'cat' if categorical else 'num'}", gen(seed, n1, "int", k=k),
                              gen(seed + 1000, n2, "int", k=k), ["chi2", "z", "psi", "jensenshannon"], categorical))
            seed += 1
    # Shifted categories (drift).
    cases.append(case("counts-shifted-cat", gen(seed, 700, "int", k=6), gen(seed + 1, 500, "int", k=4),
                      ["chi2", "z", "psi", "jensenshannon"], True))
    # A wide scale and a large offset.
    cases.append(case("wide", gen(seed + 2, 3000, "sum4", scale=1e6, shift=5e7),
                      gen(seed + 3, 2500, "sum4", scale=1.1e6, shift=5e7), ["ks", "wasserstein", "psi", "jensenshannon"]))
    out = {
        "generated_by": "scripts/drift-golden.py",
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "cases": cases,
        "kstwo": kstwo_cases(),
    }
    path = pathlib.Path(__file__).resolve().parent.parent / "engine/drift/tests/golden.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(cases)} cases, {len(out['kstwo'])} kstwo points -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
