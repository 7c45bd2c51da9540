#!/usr/bin/env python3
"""How busy a parallel cold run keeps both cores: gourd, Snakemake and DVC
on the same per-shard pipeline, next to `xargs -P 2` running the same
commands with no tool at all (what this machine allows).

    bench/cpu.py [--stages 300] [--files-per-stage 100] [--work-ms 0,50] [--repeat 3]
                 [--tools gourd,snakemake] [--timeout SECONDS] [--gourd BINARY]

The pipeline is bench/gen.py's **shard** shape: independent stages, each
reading its own 100 input files (`cat ... | cksum`). With `--work-ms W`
each stage also computes for about W ms (an awk loop), as a light real
stage would; with 0 the stages are almost nothing but process start-ups,
and a tool's own cost per stage shows. For each amount of work and each
tool: the cold run, in a fresh copy of the pipeline each time (`gourd run
-j 2`, `snakemake --cores 2`; `--tools gourd,snakemake,dvc` adds `dvc
repro`, which runs one stage at a time and takes minutes at this size),
timed by GNU time: wall seconds, CPU seconds (user + system, the stages'
processes included) and CPU use, their ratio (200% = both cores busy the
whole time). Medians of `--repeat` runs; a run over 10 s is not repeated.
Uses bench/run.py's harness; writes bench/results/cpu.md and cpu.json.
"""
import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as harness  # noqa: E402

GOAL = 190.0  # % CPU on a parallel cold run (issue 16)


def ceiling(template, ws, timeout):
    """(seconds, CPU seconds, CPU %, stages run) of `xargs -P 2` running the
    stages' commands in a fresh copy: no tool, no hashing, no records."""
    if os.path.exists(ws):
        shutil.rmtree(ws)
    shutil.copytree(template, ws, symlinks=True)
    os.makedirs(os.path.join(ws, "out"), exist_ok=True)
    # The copy's writeback is not the run's to wait for.
    os.sync()
    script = "cut -f2 stages.txt | xargs -d '\\n' -P 2 -n 1 sh -c"
    run = harness.timed(["bash", "-c", script], ws, "xargs", timeout)
    ran = harness.executions(ws)
    shutil.rmtree(ws, ignore_errors=True)
    return None if run is None else (run[0], run[0] * run[2] / 100, run[2], ran)


def cold(template, tool, ws, timeout):
    harness.prepare(template, tool, ws)
    os.sync()
    run = harness.timed(harness.COMMANDS[tool]["run"], ws, tool, timeout)
    ran = harness.executions(ws)
    shutil.rmtree(ws, ignore_errors=True)
    return None if run is None else (run[0], run[0] * run[2] / 100, run[2], ran)


def median_run(measure, reps):
    runs = harness.repeated(measure, reps)
    done = sorted(r for r in runs if r is not None)
    return done[len(done) // 2] if done else None


def render(results, info):
    m = info["machine"]
    lines = [
        "# Parallel cold run: how busy both cores are",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['filesystem']}. "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        f"`python3 bench/cpu.py` (bench/README.md), {info['date']}: {info['stages']} independent stages "
        f"(bench/gen.py's shard shape), each reading its own {info['files_per_stage']} files; a fresh copy for "
        f"each cold run; medians of {info['repeat']}. CPU is user + system time, the stages' processes included; "
        "CPU use is CPU over wall time (200% = both cores busy throughout). `xargs -P 2` runs the same commands "
        "with no tool: what the machine allows.",
        "",
        "| work per stage | runner | wall s | CPU s | CPU use | stages run |",
        "|---|---|---|---|---|---|",
    ]
    for work in info["work_ms"]:
        row = results[str(work)]
        for name in ["xargs"] + info["tools"]:
            e = row.get(name)
            label = "`xargs -P 2` (no tool)" if name == "xargs" else name
            if e is None:
                lines.append(f"| {work} ms | {label} | timeout | | | |")
                continue
            ran = e.get("ran", "-")
            lines.append(f"| {work} ms | {label} | {e['seconds']:.2f} | {e['cpu_s']:.2f} | {e['cpu_percent']:.0f}% | {ran} |")
    lines += ["", "## Goal (issue 16): CPU use above 190% on a parallel cold run", ""]
    for work in info["work_ms"]:
        e = results[str(work)].get("gourd")
        if e is not None:
            verdict = "met" if e["cpu_percent"] > GOAL else "missed"
            lines.append(f"- {work} ms of work per stage: gourd {e['cpu_percent']:.0f}% ({verdict}); "
                         f"`xargs -P 2` {results[str(work)]['xargs']['cpu_percent']:.0f}%.")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", type=int, default=300)
    p.add_argument("--files-per-stage", type=int, default=100)
    p.add_argument("--work-ms", default="0,50")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tools", default="gourd,snakemake")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--gourd", help="a gourd binary to measure instead of building target/release/gourd")
    a = p.parse_args()
    harness.use_gourd(a.gourd)
    tools = a.tools.split(",")
    os.makedirs(harness.WORK, exist_ok=True)
    info = {"stages": a.stages, "files_per_stage": a.files_per_stage, "work_ms": [int(w) for w in a.work_ms.split(",")],
            "repeat": a.repeat, "tools": tools, "versions": harness.versions(), "machine": harness.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results = {}
    for work in info["work_ms"]:
        base = os.path.join(harness.WORK, f"cpu-{work}ms")
        template = os.path.join(base, "template")
        if os.path.exists(template):
            shutil.rmtree(template)
        harness.sh([sys.executable, os.path.join(harness.HERE, "gen.py"), template, "--stages", str(a.stages),
                    "--files", str(a.stages * a.files_per_stage), "--shape", "shard", "--work-ms", str(work)])
        row = results.setdefault(str(work), {})
        measured = [("xargs", lambda: ceiling(template, os.path.join(base, "xargs"), a.timeout))]
        measured += [(tool, lambda tool=tool: cold(template, tool, os.path.join(base, tool), a.timeout)) for tool in tools]
        for name, measure in measured:
            run = median_run(measure, a.repeat)
            row[name] = None if run is None else {"seconds": run[0], "cpu_s": run[1], "cpu_percent": run[2], "ran": run[3]}
            shown = "timeout" if run is None else f"{run[0]:.2f} s, {run[1]:.2f} CPU-s, {run[2]:.0f}%"
            print(f"{work:>4} ms  {name:10} {shown}", flush=True)
        shutil.rmtree(base, ignore_errors=True)
    os.makedirs(harness.RESULTS, exist_ok=True)
    with open(os.path.join(harness.RESULTS, "cpu.json"), "w") as f:
        json.dump({"info": info, "results": results}, f, indent=1)
    with open(os.path.join(harness.RESULTS, "cpu.md"), "w") as f:
        f.write(render(results, info))
    print(f"wrote {os.path.relpath(os.path.join(harness.RESULTS, 'cpu.md'), harness.ROOT)}")


if __name__ == "__main__":
    main()
