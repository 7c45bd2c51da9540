#!/usr/bin/env python3
"""gourd's drift step next to Evidently on the same generated tables.

Generates a reference and a current CSV of ROWS x COLS numeric columns (a
few distributions; the first SHIFTED columns of the current table moved by
SHIFT standard deviations), then times, on the same files:

- `gourd __step drift CONFIG` (what `gourd run` starts for
  `gourd.steps.drift`), from reading the CSVs to writing the report;
- Evidently's DataDriftPreset (legacy Report API, its default tests), with
  pandas reading the CSVs, the read timed apart;

each in its own process, with its peak resident memory (ru_maxrss), and
compares the verdicts column by column.

    python3 -m venv /tmp/venv-drift
    /tmp/venv-drift/bin/pip install numpy 'pandas<3' evidently
    cargo build --release -p gourd-cli
    /tmp/venv-drift/bin/python bench/drift.py --rows 1000000 --cols 100
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np


def generate(path, rows, cols, seed, shifted=0, shift=0.0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {}
    for j in range(cols):
        kind = j % 4
        if kind == 0:
            x = rng.normal(0.0, 1.0, rows)
        elif kind == 1:
            x = rng.lognormal(1.0, 0.5, rows)
        elif kind == 2:
            x = rng.uniform(-5.0, 5.0, rows)
        else:
            x = rng.gamma(2.0, 3.0, rows)
        if j < shifted:
            x = x + shift * x.std()
        data[f"c{j}"] = x
    pd.DataFrame(data).to_csv(path, index=False, float_format="%.6g")


def run_gourd(gourd, workdir):
    config = workdir / "drift-config.json"
    config.write_text(json.dumps({"reference": "reference.csv", "current": "current.csv", "output": "gourd-report.json"}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([gourd, "__step", "drift", str(config)], cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"gourd failed: {proc.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = after.ru_maxrss / 1024
    report = json.loads((workdir / "gourd-report.json").read_text())
    return wall, cpu, peak, report


EVIDENTLY_CHILD = r"""
import json, resource, sys, time
import pandas as pd
from evidently.legacy.report import Report
from evidently.legacy.metric_preset import DataDriftPreset
from evidently.legacy.pipeline.column_mapping import ColumnMapping
start = time.perf_counter()
reference = pd.read_csv("reference.csv")
current = pd.read_csv("current.csv")
read = time.perf_counter() - start
mapping = ColumnMapping(numerical_features=list(reference.columns), categorical_features=[])
report = Report(metrics=[DataDriftPreset()])
report.run(reference_data=reference, current_data=current, column_mapping=mapping)
result = report.as_dict()
total = time.perf_counter() - start
table = next(m["result"] for m in result["metrics"] if "drift_by_columns" in m["result"])
columns = {name: {"test": c["stattest_name"], "score": c["drift_score"], "drift": c["drift_detected"]}
           for name, c in table["drift_by_columns"].items()}
dataset = next(m["result"] for m in result["metrics"] if "dataset_drift" in m["result"])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"read": read, "total": total, "cpu": usage.ru_utime + usage.ru_stime, "drift": dataset["dataset_drift"],
                  "share": dataset["share_of_drifted_columns"], "columns": columns,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# Evidently's display names of its tests, as gourd names them.
EVIDENTLY_TESTS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chi2",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
}


def run_evidently(workdir):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", EVIDENTLY_CHILD], cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"evidently failed: {proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--shifted", type=int, default=10, help="columns shifted in the current table")
    parser.add_argument("--shift", type=float, default=0.2, help="in standard deviations")
    parser.add_argument("--dir", default="/tmp/gourd-drift-bench")
    parser.add_argument("--gourd", default=str(pathlib.Path(__file__).resolve().parent.parent / "target/release/gourd"))
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of gourd")
    args = parser.parse_args()

    workdir = pathlib.Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    tag = workdir / f"generated-{args.rows}x{args.cols}-{args.shifted}-{args.shift}"
    if not tag.exists():
        start = time.perf_counter()
        generate(workdir / "reference.csv", args.rows, args.cols, seed=1)
        generate(workdir / "current.csv", args.rows, args.cols, seed=2, shifted=args.shifted, shift=args.shift)
        for old in workdir.glob("generated-*"):
            old.unlink()
        tag.write_text("")
        print(f"generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    size = sum((workdir / f).stat().st_size for f in ["reference.csv", "current.csv"]) / 1e9
    print(f"{args.rows:,} rows x {args.cols} columns, {args.shifted} shifted by {args.shift} sd; "
          f"two CSVs of {size:.2f} GB together; {os.cpu_count()} cores")

    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for _ in range(args.repeat):
        wall, cpu, peak, ours = run_gourd(args.gourd, workdir)
        print(f"gourd:     {wall:6.2f} s  CPU {cpu:6.2f} s  peak {peak:7.0f} MB  "
              f"drift={ours['drift']} share={ours['share']:.2f}")
    if args.skip_evidently:
        return
    wall_e, theirs = run_evidently(workdir)
    print(f"evidently: {wall_e:6.2f} s  CPU {theirs['cpu']:6.2f} s  peak {theirs['peak_mb']:7.0f} MB  drift={theirs['drift']} "
          f"share={theirs['share']:.2f}  (of which pandas read_csv {theirs['read']:.2f} s)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    (workdir / "evidently-report.json").write_text(json.dumps(theirs, indent=1))
    differ = []
    worst, worst_column = 0.0, None
    for name, mine in ours["columns"].items():
        other = theirs["columns"][name]
        if mine["drift"] != other["drift"] or mine["test"] != EVIDENTLY_TESTS.get(other["test"], other["test"]):
            differ.append(f"{name}: gourd {mine['test']} {mine['statistic']:.6g} p={mine['p_value']} {mine['drift']} / "
                          f"evidently {other['test']} {other['score']:.6g} {other['drift']}")
        # Evidently's score is the p-value for tests, the distance else.
        score = mine["p_value"] if mine["p_value"] is not None else mine["statistic"]
        if abs(score - other["score"]) > worst:
            worst, worst_column = abs(score - other["score"]), f"{name} ({mine['test']}: {score:.6g} vs {other['score']:.6g})"
    print(f"verdicts: {len(ours['columns']) - len(differ)} of {len(ours['columns'])} columns agree; "
          f"largest difference in the score (p-value or distance) {worst:.2e}, {worst_column}")
    for line in differ:
        print("  " + line)


if __name__ == "__main__":
    main()
