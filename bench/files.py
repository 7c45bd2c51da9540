#!/usr/bin/env python3
"""A million small files in folder deps, and the evaluation of generated
pipelines: gourd, DVC and Snakemake at the sizes of per-shard preprocessing.

    bench/files.py [--sizes 10000,100000,1000000] [--tools gourd,dvc,snakemake] [--timeout SECONDS]
                   [--repeat N] [--gourd BINARY]
    bench/files.py --eval [--eval-sizes 1000,10000,100000] [--literal-sizes 1000,10000] [--gourd BINARY]
    bench/files.py --render

**files**: N stages, each reading its own folder of 1,000 small files
(`data/sNNNN/fNNN.txt`, one line each) through a folder dep and writing
`out/sNNNN.txt` (`cat data/sNNNN/* | cksum`); the same pipeline as
gourd.ncl (`deps = ["data/sNNNN"]`), dvc.yaml (folder deps) and Snakefile
(the folder as input). For each size (in files) and tool: the cold run
(`-j 2`, `--cores 2`), then with nothing changed the status check and the
run again, and for gourd and DVC the status after one file of one folder
changed (Snakemake sees a folder input by the folder's own mtime, which
editing a file in it does not change). Each tool's workspace is generated
in turn and deleted after it is measured (1,000,000 files take ~4 GB).

**eval** (`--eval`): `gourd check` on pipelines of N stages generated with
`gourd.record_from_array (std.array.generate ...)` as docs/pipeline.md shows,
and on the same stages written literally, each repetition with the
evaluation cache deleted (`cold`), then with it kept (`cached`).

Uses bench/run.py's harness (its tools, environment and workspace folder).
Writes bench/results/files.md, files.json and files.svg. Measuring a subset
(`--sizes`, `--tools`, `--eval`) replaces those entries in files.json and
keeps the others; a replaced entry is kept under `earlier` with its load.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as harness  # noqa: E402

FILES_PER_FOLDER = 1000
# Where the files scenario's data and workspaces go (`--work`).
FILES_WORK = harness.WORK
# `--nice N`: every measured command runs under `nice -n N`.
NICE = None
SCENARIOS = ["cold", "noop-status", "noop-run", "changed-status"]


def load_now():
    """The 1-minute load average, and whether a cargo-mutants run shares the
    machine."""
    mutants = subprocess.run(["pgrep", "-f", "cargo-mutants|cargo mutants"], capture_output=True).returncode == 0
    return {"load1": round(os.getloadavg()[0], 2), "mutants": mutants,
            "at": time.strftime("%H:%M:%S UTC", time.gmtime())}


def filesystem(path):
    return subprocess.run(["df", "-T", path], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]


def timed(cmd, cwd, tool, timeout, ok_codes=(0,)):
    """(seconds, peak RSS in MiB, CPU %, stdout, exit code, user and system
    CPU seconds) of one command,
    with GNU time as the harness measures; None on timeout. An exit code
    outside `ok_codes` stops the benchmark with the tool's output."""
    # A file of this process's own: bench/run.py and bench/scale.py, maybe
    # running at the same time, write theirs to bench/work/.time.
    stats = os.path.join(harness.WORK, f".time-files-{os.getpid()}")
    env = harness.env_for(tool)
    for name in ("GOURD_EVAL_TIMEOUT", "GOURD_EVAL_MEMORY_MB"):
        env.pop(name, None)  # the defaults are what is measured
    if NICE is not None:
        cmd = ["nice", "-n", str(NICE)] + cmd
    started = time.perf_counter()
    child = subprocess.Popen([harness.TIME, "-f", "%M %P %U %S", "-o", stats] + cmd, cwd=cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        child.communicate()
        return None
    elapsed = time.perf_counter() - started
    if child.returncode not in ok_codes:
        raise RuntimeError(f"{tool}: {' '.join(cmd)} exited {child.returncode} in {cwd}:\n"
                           f"{stdout.decode()[-1000:]}\n{stderr.decode()[-2000:]}")
    rss, cpu, user, system = open(stats).read().split()[-4:]
    os.remove(stats)
    return (elapsed, int(rss) / 1024, float(cpu.rstrip("%") or 0), stdout.decode(errors="replace"), child.returncode,
            float(user), float(system))


def median(runs):
    """The median run (by time) of those that finished; None when none did."""
    done = sorted((r for r in runs if r is not None), key=lambda r: r[0])
    return done[len(done) // 2] if done else None


# ---------------------------------------------------------------- files


def generate_data(data, stages):
    """`stages` folders of 1,000 one-line files under `data`: the same bytes
    for every tool."""
    shutil.rmtree(data, ignore_errors=True)
    for i in range(stages):
        folder = os.path.join(data, f"s{i:04d}")
        os.makedirs(folder)
        for j in range(FILES_PER_FOLDER):
            fd = os.open(os.path.join(folder, f"f{j:03d}.txt"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, f"s{i:04d} {j} {(i * FILES_PER_FOLDER + j) * 2654435761 % 2 ** 32}\n".encode())
            os.close(fd)


def workspace(ws, stages, tool):
    """The tool's pipeline file in `ws`, a fresh git repository (data and
    outputs ignored by git, as with DVC); the data is moved in afterwards."""
    shutil.rmtree(ws, ignore_errors=True)
    os.makedirs(os.path.join(ws, "out"))
    names = [f"s{i:04d}" for i in range(stages)]

    def cmd(name):
        return f"cat data/{name}/* | cksum > out/{name}.txt && echo {name} >> ran.log"

    if tool == "gourd":
        with open(os.path.join(ws, "gourd.ncl"), "w") as f:
            f.write("{\n  stages = {\n")
            for n in names:
                f.write(f'    {n} = {{ cmd = "{cmd(n)}", deps = ["data/{n}"], outs = ["out/{n}.txt"] }},\n')
            f.write("  },\n}\n")
    elif tool == "dvc":
        with open(os.path.join(ws, "dvc.yaml"), "w") as f:
            f.write("stages:\n")
            for n in names:
                f.write(f"  {n}:\n    cmd: {json.dumps(cmd(n))}\n    deps:\n    - data/{n}\n    outs:\n    - out/{n}.txt\n")
    else:
        with open(os.path.join(ws, "Snakefile"), "w") as f:
            f.write("rule all:\n    input: " + ", ".join(f'"out/{n}.txt"' for n in names) + "\n\n")
            for n in names:
                f.write(f'rule {n}:\n    input: "data/{n}"\n    output: "out/{n}.txt"\n    shell: "{cmd(n)}"\n\n')
    with open(os.path.join(ws, ".gitignore"), "w") as f:
        f.write("/data/\n/out/\n/ran.log\n/.gourd/\n/.snakemake/\n")
    env = harness.env_for(tool)
    harness.sh("git init -q -b main && git add -A && git commit -qm pipeline", cwd=ws, env=env)
    if tool == "dvc":
        harness.sh("dvc init -q && dvc config core.analytics false && git add -A && git commit -qm dvc", cwd=ws, env=env)


def changed_status_command(tool):
    # `dvc status -q` prints nothing and exits 1 on a change: without -q it
    # names the changed stage, which is checked.
    return {"gourd": [harness.GOURD, "status"], "dvc": ["dvc", "status"]}[tool]


def detects(tool, stdout, stage):
    """Whether a status output reports exactly `stage` as changed."""
    if tool == "gourd":
        # `NAME  stale: dep ... changed`, then a summary line.
        stale = [line.split()[0] for line in stdout.splitlines() if line.split()[1:2] == ["stale:"]]
    else:
        stale = [line.rstrip(":") for line in stdout.splitlines() if line.endswith(":") and not line.startswith("\t")]
    return stale == [stage]


def measure_files(tool, size, timeout, reps, data):
    """Measures `tool` in a workspace of its own, into which the folder
    `data` is moved (a rename) and out of which it is moved back after, with
    the edited file as it was: one copy of a million files on the disk, and
    each tool meets it as freshly generated (no cache of its own, pages as
    warm as after writing them)."""
    stages = size // FILES_PER_FOLDER
    ws = os.path.join(FILES_WORK, f"files-{size}", tool)
    workspace(ws, stages, tool)
    os.rename(data, os.path.join(ws, "data"))
    entry = {"stages": stages, "load_before": load_now(), "filesystem": filesystem(ws)}
    if NICE is not None:
        entry["nice"] = NICE
    try:
        measure_in(tool, ws, stages, entry, size, timeout, reps)
    finally:
        os.rename(os.path.join(ws, "data"), data)
    shutil.rmtree(ws, ignore_errors=True)
    return entry


def measure_in(tool, ws, stages, entry, size, timeout, reps):
    commands = harness.COMMANDS[tool]

    def keep(scenario, run, **extra):
        entry[scenario] = None if run is None else {"seconds": run[0], "rss_mib": run[1], "cpu_percent": run[2],
                                                    "user_s": run[5], "system_s": run[6], **extra}
        shown = "timeout" if run is None else f"{run[0]:.2f}s {run[1]:.0f} MiB"
        print(f"  {tool:10} {size:>9,} files  {scenario:15} {shown}", flush=True)

    cold = timed(commands["run"], ws, tool, timeout)
    keep("cold", cold, executed=harness.executions(ws))
    if cold is not None:
        runs = harness.repeated(lambda: timed(commands["status"], ws, tool, timeout), reps)
        keep("noop-status", median(runs), runs=[round(r[0], 3) for r in runs if r])
        before = harness.executions(ws)
        runs = harness.repeated(lambda: timed(commands["run"], ws, tool, timeout), reps)
        keep("noop-run", median(runs), executed=harness.executions(ws) - before, runs=[round(r[0], 3) for r in runs if r])
        if tool in ("gourd", "dvc"):
            stage = f"s{stages // 2:04d}"
            path = os.path.join(ws, "data", stage, f"f{FILES_PER_FOLDER // 2:03d}.txt")
            original = open(path, "rb").read()
            runs, seen = [], []
            for k in range(reps):
                if harness.slow(runs):
                    break
                with open(path, "a") as f:
                    f.write(f"edit {k}\n")
                run = timed(changed_status_command(tool), ws, tool, timeout, ok_codes=(0, 1))
                runs.append(run)
                if run is not None:
                    seen.append(detects(tool, run[3], stage))
            keep("changed-status", median(runs), detected=all(seen) and bool(seen), runs=[round(r[0], 3) for r in runs if r])
            with open(path, "wb") as f:
                f.write(original)
    entry["load_after"] = load_now()


# ---------------------------------------------------------------- eval


def eval_source(n, literal):
    cmd_of = "echo %{std.to_string i} > out/%{std.to_string i}.txt"
    if not literal:
        return ("let gourd = import \"gourd-std.ncl\" in\n{\n  stages = gourd.record_from_array (std.array.generate (fun i => {\n"
                "    field = \"shard-%{std.to_string i}\",\n"
                f"    value = {{ cmd = \"{cmd_of}\", outs = [\"out/%{{std.to_string i}}.txt\"] }},\n"
                f"  }}) {n}),\n}}\n")
    lines = ["{", "  stages = {"]
    lines += [f'    "shard-{i}" = {{ cmd = "echo {i} > out/{i}.txt", outs = ["out/{i}.txt"] }},' for i in range(n)]
    lines += ["  },", "}", ""]
    return "\n".join(lines)


def measure_eval(n, literal, reps, timeout):
    kind = "literal" if literal else "generated"
    ws = os.path.join(harness.WORK, f"eval-{kind}-{n}")
    shutil.rmtree(ws, ignore_errors=True)
    os.makedirs(ws)
    with open(os.path.join(ws, "gourd.ncl"), "w") as f:
        f.write(eval_source(n, literal))
    harness.sh("git init -q -b main && git add -A && git commit -qm pipeline", cwd=ws, env=harness.env_for("gourd"))
    entry = {"stages": n, "kind": kind, "source_bytes": os.path.getsize(os.path.join(ws, "gourd.ncl")),
             "load_before": load_now()}
    cache = os.path.join(ws, ".gourd", "state-v1", "eval")
    cold, error = [], None
    for _ in range(reps):
        shutil.rmtree(cache, ignore_errors=True)
        run = timed([harness.GOURD, "check"], ws, "gourd", timeout, ok_codes=(0, 1))
        if run is not None and run[4] != 0:
            error = run[3][-500:]
            cold.append(run)
            break
        if run is not None and f"{n} stages" not in run[3]:
            raise RuntimeError(f"gourd check in {ws} does not report {n} stages:\n{run[3][-1000:]}")
        cold.append(run)
        if run is None:
            break
    cached = []
    if error is None and all(r is not None for r in cold):
        cached = [timed([harness.GOURD, "check"], ws, "gourd", timeout) for _ in range(reps)]
    for name, runs in (("cold", cold), ("cached", cached)):
        m = median(runs)
        entry[name] = None if m is None else {"seconds": m[0], "rss_mib": m[1], "cpu_percent": m[2], "user_s": m[5],
                                              "system_s": m[6], "runs": [round(r[0], 3) for r in runs if r]}
    if error is not None:
        entry["error"] = error
    entry["load_after"] = load_now()
    shown = ", ".join(f"{k} " + ("timeout" if entry[k] is None else fmt(entry[k])) for k in ("cold", "cached"))
    print(f"  eval {kind:9} {n:>7,} stages: {shown}{' ERROR ' + error if error else ''}", flush=True)
    shutil.rmtree(ws, ignore_errors=True)
    return entry


# ---------------------------------------------------------------- output


def fmt(e):
    return f"{e['seconds']:.2f} ({e['rss_mib']:.0f})"


def load_text(entry):
    b, a = entry["load_before"], entry["load_after"]
    m = " (cargo-mutants running)" if b["mutants"] or a["mutants"] else ""
    if "nice" in entry:
        m += f", under `nice -n {entry['nice']}`"
    return f"{b['load1']:.1f}–{a['load1']:.1f}{m}, {b['at'][:5]}–{a['at'][:5]}"


def render(saved):
    info, files, ev = saved["info"], saved.get("files", {}), saved.get("eval", {})
    lines = ["# A million files, and evaluating generated pipelines", ""]
    m = info["machine"]
    lines += [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['filesystem']}. "
              + ", ".join(v if v.startswith(k) else f"{k} {v}" for k, v in info["versions"].items()) + ".", ""]
    if files:
        tools = [t for t in ("gourd", "dvc", "snakemake") if any(t in files[s] for s in files)]
        lines += ["## A million files in folder deps", "",
                  "Measured by " + "; ".join(f"`{c}`" for c in dict.fromkeys(
                      e.get("command", info.get("files_command", "bench/files.py")) for r in files.values() for e in r.values()))
                  + " (bench/README.md). Each stage reads its own folder "
                  "of 1,000 small files through a folder dep and writes one output. Seconds (peak RSS in MiB); "
                  f"no-op and changed: median of {info['repeat']}; `timeout` past {info['timeout']:.0f} s; `-` not run "
                  "(after a timeout at a smaller size, or not applicable: Snakemake sees a folder input by the folder's "
                  "own mtime, which editing a file in it does not change). **changed-status**: the status after one "
                  "line appended to one file of the middle folder (✓: exactly that stage reported).", "",
                  "| files | stages | scenario | " + " | ".join(tools) + " |", "|---|---|---|" + "---|" * len(tools)]
        for size in sorted(files, key=int):
            row = files[size]
            stages = int(size) // FILES_PER_FOLDER
            for scenario in SCENARIOS:
                cells = []
                for tool in tools:
                    e = row.get(tool)
                    if e is None or scenario not in e:
                        cells.append("-")
                    elif e[scenario] is None:
                        ran = e.get("stages_run_before_timeout")
                        cells.append("timeout" + (f" [~{ran} ran]" if scenario == "cold" and ran else ""))
                    else:
                        s = e[scenario]
                        extra = ""
                        if scenario == "changed-status":
                            extra = " ✓" if s.get("detected") else " ✗ (missed)"
                        if scenario in ("cold", "noop-run"):
                            extra = f" [{s.get('executed', '?')} ran]"
                        cells.append(fmt(s) + extra)
                lines.append(f"| {int(size):,} | {stages:,} | {scenario} | " + " | ".join(cells) + " |")
            lines.append(f"| {int(size):,} | {stages:,} | filesystem | "
                         + " | ".join(row[t].get("filesystem", m["filesystem"]) if t in row else "-" for t in tools) + " |")
            lines.append(f"| {int(size):,} | {stages:,} | load (1 min) | "
                         + " | ".join(load_text(row[t]) if t in row else "-" for t in tools) + " |")
        lines += ["", "![time against files](files.svg)", ""]
        earlier = [e for e in saved.get("earlier", []) if e.get("what") == "files"]
        if earlier:
            lines += ["Earlier measurements of the same entries (replaced above):", ""]
            for e in earlier:
                x = e["entry"]
                cells = ", ".join(f"{sc} {fmt(x[sc]) if x[sc] else 'timeout'}" for sc in SCENARIOS if sc in x)
                lines.append(f"- {e['tool']} at {int(e['size']):,} files on {x.get('filesystem', m['filesystem'])} "
                             f"(load {load_text(x)}; `{x.get('command', '')}`): {cells}")
            lines.append("")
    if ev:
        lines += ["## Evaluating generated pipelines", "",
                  "Measured by " + "; ".join(f"`{c}`" for c in dict.fromkeys(
                      e.get("command", info.get("eval_command", "bench/files.py --eval")) for e in ev.values()))
                  + ". `gourd check` on N stages "
                  "`{ cmd, outs }` generated with `gourd.record_from_array (std.array.generate (fun i => { field, value }) N)` "
                  "(docs/pipeline.md), and the same stages written literally. **cold**: the evaluation cache deleted "
                  f"before each repetition; **cached**: kept. Seconds (peak RSS in MiB), median of {info.get('eval_repeat', 3)}; "
                  "the default limits (GOURD_EVAL_TIMEOUT 60 s, GOURD_EVAL_MEMORY_MB 4096).", "",
                  "| stages | written | source | cold | cached | load (1 min) |", "|---|---|---|---|---|---|"]
        for key in sorted(ev, key=lambda k: (ev[k]["kind"], ev[k]["stages"])):
            e = ev[key]
            cold = "timeout" if e["cold"] is None else fmt(e["cold"])
            if e.get("error"):
                cold = f"failed: {e['error'].strip().splitlines()[-1][:120]}"
            cached = "-" if not e.get("cached") else fmt(e["cached"])
            lines.append(f"| {e['stages']:,} | {e['kind']} | {e['source_bytes'] / 1024:,.1f} KiB | {cold} | {cached} | {load_text(e)} |")
        lines.append("")
        earlier = [e for e in saved.get("earlier", []) if e.get("what") == "eval"]
        if earlier:
            lines += ["Earlier measurements of the same entries (replaced above):", ""]
            for e in earlier:
                x = e["entry"]
                cells = ", ".join(f"{sc} {fmt(x[sc])}" for sc in ("cold", "cached") if x.get(sc))
                lines.append(f"- {x['stages']:,} {x['kind']} stages (load {load_text(x)}): {cells}")
            lines.append("")
    lines += goals(files, ev)
    notes = info.get("notes")
    if notes:
        lines += ["## Notes", "", notes, ""]
    return "\n".join(lines)


def cpu_s(e):
    """CPU seconds (user + system) of a measurement: wall time is what the
    machine's other work leaves, CPU time mostly is not."""
    if "user_s" in e:
        return e["user_s"] + e["system_s"]
    return e["seconds"] * e["cpu_percent"] / 100


def goals(files, ev):
    """Issue 16's goals for what is measured here, met or missed."""
    rows = []

    def row(what, e, seconds, mib):
        if e is None:
            rows.append(f"| {what} | not measured | | |")
            return
        ok = e["seconds"] < seconds and e["rss_mib"] < mib
        rows.append(f"| {what} | {e['seconds']:.2f} s, {cpu_s(e):.2f} CPU-s, {e['rss_mib']:.0f} MiB | "
                    f"< {seconds} s, < {mib} MB | {'met' if ok else 'MISSED'} |")

    million = files.get("1000000", {}).get("gourd") or {}
    row("no-op `gourd status`, 1,000,000 files", million.get("noop-status"), 1, 200)
    for key in ("generated-10000", "literal-10000"):
        e = ev.get(key)
        row(f"`gourd check`, 10,000 stages {key.split('-')[0]} (evaluation cache deleted)", e and e.get("cold"), 1, 200)
    e = ev.get("generated-100000")
    if e is not None:
        loaded = e.get("cold") is not None and not e.get("error")
        shown = "failed" if e.get("error") else ("timeout" if e.get("cold") is None else
                                                   f"{e['cold']['seconds']:.2f} s, {e['cold']['rss_mib']:.0f} MiB")
        rows.append(f"| 100,000 generated stages load within the default limits | {shown} | 60 s, 4096 MB | "
                    f"{'met' if loaded else 'MISSED'} |")
    if not rows:
        return []
    return ["## Goals (issue 16)", "", "| goal | measured | target | |", "|---|---|---|---|", *rows, ""]


def plot(saved, path):
    files = saved.get("files", {})
    if not files:
        return
    try:
        import matplotlib
    except ImportError:
        print("no matplotlib here: `bench/.venv/bin/pip install matplotlib`, then "
              "`bench/.venv/bin/python bench/files.py --render` draws files.svg", file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"gourd": "#2f9e55", "dvc": "#945dd6", "snakemake": "#d97706"}
    styles = {"cold": "-", "noop-status": ":", "noop-run": "--", "changed-status": "-."}
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    sizes = sorted(files, key=int)
    for ax, key, label in ((axes[0], "seconds", "seconds"), (axes[1], "rss_mib", "peak RSS (MiB)")):
        for tool in ("gourd", "dvc", "snakemake"):
            for scenario in SCENARIOS:
                xs, ys = [], []
                for size in sizes:
                    e = (files[size].get(tool) or {}).get(scenario)
                    if e:
                        xs.append(int(size))
                        ys.append(e[key])
                if xs:
                    ax.plot(xs, ys, styles[scenario], color=colors[tool], marker="o", label=f"{tool} {scenario}")
                # A timeout: an x at the timeout.
                timeouts = [int(size) for size in sizes if tool in files[size] and scenario in files[size][tool]
                            and files[size][tool][scenario] is None]
                if timeouts and key == "seconds":
                    ax.plot(timeouts, [saved["info"]["timeout"]] * len(timeouts), "x", color=colors[tool],
                            markersize=10, label=f"{tool} {scenario} timeout")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("files (1,000 per folder, one stage per folder)")
        ax.set_ylabel(label)
        ax.set_title(f"{label}, 2 jobs")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    fig.savefig(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000", help="files (1,000 per stage)")
    p.add_argument("--tools", default="gourd,dvc,snakemake")
    p.add_argument("--timeout", type=float, default=600, help="seconds per measurement")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--eval", action="store_true", help="measure the evaluation of generated pipelines instead")
    p.add_argument("--eval-sizes", default="1000,10000,100000", help="generated pipelines' stages")
    p.add_argument("--literal-sizes", default="1000,10000", help="the same stages written literally")
    p.add_argument("--render", action="store_true", help="only rewrite files.md and files.svg from files.json")
    p.add_argument("--gourd", help="a gourd binary to measure instead of building target/release/gourd")
    p.add_argument("--work", default=harness.WORK,
                   help="where the files scenario's data and workspaces go (another filesystem when this one is full)")
    p.add_argument("--nice", type=int, help="run every measured command under `nice -n N` (a negative N gives "
                   "the tools priority over other work on a shared machine; needs root)")
    p.add_argument("--keep-data", action="store_true",
                   help="keep bench/work/files-SIZE/data for the next run (else deleted after each size)")
    p.add_argument("--results", default=harness.RESULTS, help="where files.json, files.md and files.svg go")
    a = p.parse_args()
    os.makedirs(a.results, exist_ok=True)
    json_path = os.path.join(a.results, "files.json")
    saved = {}
    if os.path.exists(json_path):
        saved = json.load(open(json_path))
    if not a.render:
        harness.use_gourd(a.gourd)
        os.makedirs(harness.WORK, exist_ok=True)
        global FILES_WORK, NICE
        FILES_WORK = os.path.abspath(a.work)
        NICE = a.nice
        os.makedirs(FILES_WORK, exist_ok=True)
        info = saved.setdefault("info", {})
        versions = harness.versions()
        # The binary measured, by the commit it was built from (not the
        # checkout's, which --gourd may differ from).
        versions["gourd"] = subprocess.run([harness.GOURD, "--version"], capture_output=True, text=True).stdout.strip()
        info.update(machine=harness.machine(), versions=versions)
        command = "python3 bench/files.py " + " ".join(sys.argv[1:])
        earlier = saved.setdefault("earlier", [])
        if a.eval:
            info.update(eval_command=command, eval_repeat=a.repeat)
            ev = saved.setdefault("eval", {})
            jobs = [(n, False) for n in map(int, a.eval_sizes.split(",") if a.eval_sizes else [])]
            jobs += [(n, True) for n in map(int, a.literal_sizes.split(",") if a.literal_sizes else [])]
            for n, literal in jobs:
                key = f"{'literal' if literal else 'generated'}-{n}"
                entry = measure_eval(n, literal, a.repeat, a.timeout)
                entry.update(gourd=versions["gourd"], command=command)
                if key in ev:
                    earlier.append({"what": "eval", "key": key, "entry": ev[key]})
                ev[key] = entry
                with open(json_path, "w") as f:
                    json.dump(saved, f, indent=1)
        else:
            info.update(files_command=command, repeat=a.repeat, timeout=a.timeout)
            files = saved.setdefault("files", {})
            gave_up = set()
            for size in map(int, a.sizes.split(",")):
                tools = [t for t in a.tools.split(",") if t not in gave_up]
                if not tools:
                    continue
                data = os.path.join(FILES_WORK, f"files-{size}", "data")
                done = data + ".complete"
                if not os.path.exists(done):
                    started = time.perf_counter()
                    generate_data(data, size // FILES_PER_FOLDER)
                    open(done, "w").close()
                    print(f"  generated {size:,} files in {time.perf_counter() - started:.0f}s", flush=True)
                for tool in tools:
                    started = time.perf_counter()
                    entry = measure_files(tool, size, a.timeout, a.repeat, data)
                    entry.update(gourd=versions["gourd"], command=command)
                    if any(entry.get(s, 0) is None for s in SCENARIOS):
                        gave_up.add(tool)
                    old = files.setdefault(str(size), {}).get(tool)
                    if old is not None:
                        earlier.append({"what": "files", "size": str(size), "tool": tool, "gourd": old.get("gourd"), "entry": old})
                    files[str(size)][tool] = entry
                    print(f"  {tool:10} {size:>9,} files: {time.perf_counter() - started:.0f}s in all "
                          f"(load {load_text(entry)})", flush=True)
                    with open(json_path, "w") as f:
                        json.dump(saved, f, indent=1)
                if not a.keep_data:
                    # `rm -rf` of a million files takes minutes on a busy disk.
                    started = time.perf_counter()
                    os.remove(done)
                    shutil.rmtree(os.path.dirname(data), ignore_errors=True)
                    print(f"  deleted {size:,} files in {time.perf_counter() - started:.0f}s", flush=True)
    with open(os.path.join(a.results, "files.md"), "w") as f:
        f.write(render(saved))
    plot(saved, os.path.join(a.results, "files.svg"))


if __name__ == "__main__":
    main()
