#!/usr/bin/env python3
"""gourd against DVC and Snakemake, side by side, on identical pipelines.

    bench/run.py [--quick] [--repeat N] [--timeout SECONDS] [--only NAME,...]

Installs DVC 3.x and Snakemake into bench/.venv if missing, builds gourd in
release mode, generates each pipeline once (bench/gen.py writes gourd.ncl,
dvc.yaml and Snakefile side by side), copies it into a fresh workspace per
tool, and times every scenario. Prints medians, the ratio gourd/other and peak
memory, and writes bench/results/results.md, results.json and a plot.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")
WORK = os.path.join(HERE, "work")
RESULTS = os.path.join(HERE, "results")
GOURD = os.path.join(ROOT, "target", "release", "gourd")
TIME = "/usr/bin/time"

# name, shape, stages, files, big-dir MB
PIPELINES = [
    ("chain-10", "chain", 10, 1000, 0),
    ("chain-100", "chain", 100, 1000, 0),
    ("fan-100", "fan", 100, 1000, 0),
    ("fan-500", "fan", 500, 10000, 0),
    ("bigdir-1GB", "fan", 10, 0, 1024),
]
QUICK = [("chain-10", "chain", 10, 1000, 0), ("fan-100", "fan", 100, 1000, 0), ("bigdir-64MB", "fan", 4, 0, 64)]
TOOLS = ["gourd", "dvc", "snakemake"]


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def ensure_tools():
    if not os.path.exists(TIME):
        sh("apt-get install -y -qq time >/dev/null")
    py = os.path.join(VENV, "bin", "python")
    if not (os.path.exists(os.path.join(VENV, "bin", "dvc")) and os.path.exists(os.path.join(VENV, "bin", "snakemake"))):
        print("installing DVC and Snakemake into bench/.venv ...", flush=True)
        sh([sys.executable, "-m", "venv", VENV])
        sh([py, "-m", "pip", "install", "-q", "dvc>=3,<4", "snakemake>=8", "blake3"])
    print("building gourd (release) ...", flush=True)
    sh(["cargo", "build", "--release", "-q", "-p", "gourd-cli"], cwd=ROOT)


def use_gourd(binary, peers=True):
    """Points the harness at `binary` (a path, or None: build
    target/release/gourd and install the tools). `peers`: DVC and Snakemake
    are measured too, so bench/.venv must have them."""
    global GOURD
    if not binary:
        ensure_tools()
        return
    GOURD = os.path.abspath(binary)
    for command in COMMANDS["gourd"].values():
        command[0] = GOURD
    if peers and not os.path.exists(os.path.join(VENV, "bin", "snakemake")):
        sys.exit("bench/.venv has no DVC and Snakemake: run once without --gourd")


def versions():
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
        except Exception as e:  # noqa: BLE001
            return f"unknown ({e})"
    rev = out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    return {
        "gourd": f"{out([GOURD, '--version'])} ({rev})",
        "dvc": out([os.path.join(VENV, "bin", "dvc"), "--version"]),
        "snakemake": out([os.path.join(VENV, "bin", "snakemake"), "--version"]),
        "python": platform.python_version(),
    }


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    fs = subprocess.run(["df", "-T", WORK], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "kernel": platform.release(), "filesystem": fs}


def env_for(tool):
    env = dict(os.environ)
    env["PATH"] = os.path.join(VENV, "bin") + os.pathsep + env["PATH"]
    env.update(DVC_NO_ANALYTICS="1", NO_COLOR="1", GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    return env


COMMANDS = {
    "gourd": {"run": [GOURD, "run", "-j", "2"], "status": [GOURD, "status"]},
    # DVC's own command for bringing deleted outputs back is `dvc checkout`,
    # far faster than letting `dvc repro` find them in its run-cache.
    "dvc": {"run": ["dvc", "repro", "-q"], "status": ["dvc", "status", "-q"], "restore": ["dvc", "checkout", "-q"]},
    "snakemake": {"run": ["snakemake", "--cores", "2", "--quiet", "all"], "status": ["snakemake", "--dry-run", "--quiet", "all"]},
}


def timed(cmd, cwd, tool, timeout):
    """(seconds, peak RSS in MiB, CPU %) of one command; None on timeout."""
    stats = os.path.join(WORK, ".time")
    started = time.perf_counter()
    # A session of its own, so a timeout stops the tool and everything it
    # started (a DVC left running would hold its lock).
    child = subprocess.Popen([TIME, "-f", "%M %P", "-o", stats] + cmd, cwd=cwd, env=env_for(tool),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        child.communicate()
        return None
    elapsed = time.perf_counter() - started
    # Every tool must succeed: a failed stage is a failed benchmark, not a time.
    if child.returncode != 0:
        raise RuntimeError(f"{tool}: {' '.join(cmd)} exited {child.returncode} in {cwd}:\n{stderr.decode()[-2000:]}")
    rss, cpu = open(stats).read().split()[-2:]
    return elapsed, int(rss) / 1024, float(cpu.rstrip("%") or 0)


def prepare(template, tool, dest):
    if os.path.exists(dest):
        shutil.rmtree(dest)
    shutil.copytree(template, dest, symlinks=True)
    for other in ("gourd.ncl", "dvc.yaml", "Snakefile"):
        keep = {"gourd": "gourd.ncl", "dvc": "dvc.yaml", "snakemake": "Snakefile"}[tool]
        if other != keep:
            os.remove(os.path.join(dest, other))
    with open(os.path.join(dest, ".gitignore"), "w") as f:
        f.write("/data/\n/out/\n/ran.log\n/.gourd/\n/.snakemake/\n")
    env = env_for(tool)
    sh("git init -q -b main && git add -A && git commit -qm pipeline", cwd=dest, env=env)
    if tool == "dvc":
        sh("dvc init -q && dvc config core.analytics false && git add -A && git commit -qm dvc", cwd=dest, env=env)


SLOW = 10.0  # seconds: a measurement this long is not repeated


def slow(runs):
    return any(r is None or r[0] > SLOW for r in runs)


def repeated(measure, reps):
    runs = []
    for _ in range(reps):
        if slow(runs):
            break
        runs.append(measure())
    return runs


def executions(ws):
    try:
        return sum(1 for _ in open(os.path.join(ws, "ran.log")))
    except OSError:
        return 0


def load_stages(template):
    stages = []
    for line in open(os.path.join(template, "stages.txt")):
        name, _cmd, deps = line.rstrip("\n").split("\t")
        stages.append((name, deps.split()))
    return stages


def truly_dependent(stages, changed_file):
    """Stages whose inputs change when `changed_file` does: its readers and
    everything downstream of them (every output depends on input content)."""
    dirty_paths = {changed_file}
    count = 0
    for name, deps in stages:  # generated in topological order
        if any(d == p or p.startswith(d + "/") for d in deps for p in dirty_paths):
            count += 1
            dirty_paths.add(f"out/{name}.txt")
    return count


def pick_input(template, stages):
    """A data file read by a stage near the middle of the pipeline."""
    name, deps = stages[len(stages) // 2] if len(stages) > 2 else stages[-1]
    for d in deps:
        path = os.path.join(template, d)
        if os.path.isfile(path):
            return d
        if os.path.isdir(path):
            return os.path.join(d, sorted(os.listdir(path))[0])
    name, deps = stages[0]
    d = deps[0]
    return os.path.join(d, sorted(os.listdir(os.path.join(template, d)))[0]) if os.path.isdir(os.path.join(template, d)) else d


def finish_untimed(tool, ws, template):
    """Brings a workspace up to date after a timed-out cold run, quickly: the
    stage commands from a shell, then the tool records their results (for
    DVC, `dvc commit`). Only the setup of later scenarios; never timed."""
    if tool != "dvc":
        return timed(COMMANDS[tool]["run"], ws, tool, 1800) is not None
    stale_lock = os.path.join(ws, ".dvc", "tmp", "rwlock")
    if os.path.exists(stale_lock):
        os.remove(stale_lock)
    for line in open(os.path.join(template, "stages.txt")):
        _name, cmd, _deps = line.rstrip("\n").split("\t")
        subprocess.run(["sh", "-c", cmd], cwd=ws, check=True)
    return subprocess.run(["dvc", "commit", "-f", "-q"], cwd=ws, env=env_for(tool), timeout=1800).returncode == 0


def clear_outputs(ws):
    out = os.path.join(ws, "out")
    for f in os.listdir(out):
        if f != ".gitignore":
            os.remove(os.path.join(out, f))


def bench_pipeline(spec, repeat, timeout, results, tools=TOOLS):
    name, shape, n, files, big = spec
    template = os.path.join(WORK, "templates", name)
    if not os.path.exists(os.path.join(template, "stages.txt")):
        shutil.rmtree(template, ignore_errors=True)
        args = [sys.executable, os.path.join(HERE, "gen.py"), template, "--stages", str(n), "--files", str(files), "--shape", shape]
        if big:
            args += ["--big-dir-mb", str(big)]
        sh(args)
    stages = load_stages(template)
    changed = pick_input(template, stages)
    expected = truly_dependent(stages, changed)
    reps = repeat  # measurements over SLOW seconds are not repeated
    print(f"\n== {name}: {n} stages, {files} files{f', {big} MB folder' if big else ''}; "
          f"incremental edit of {changed} ({expected} stages depend on it); {reps} repetitions", flush=True)
    for tool in tools:
        ws = os.path.join(WORK, "ws", f"{name}-{tool}")
        prepare(template, tool, ws)
        cmds = COMMANDS[tool]
        row = results.setdefault(name, {}).setdefault(tool, {})

        def record(scenario, runs, ran=None):
            """`ran`: stage executions, one count per repetition (or one in all)."""
            ok = [r for r in runs if r is not None]
            entry = {"timeout": len(ok) < len(runs)}
            if ok:
                entry.update(seconds=statistics.median(r[0] for r in ok), rss_mib=max(r[1] for r in ok),
                             cpu_percent=statistics.median(r[2] for r in ok), runs=[round(r[0], 4) for r in ok])
            if isinstance(ran, int):
                ran = [ran]
            if ran:
                # The fewest and the most any repetition executed: a change
                # missed once, or work redone once, shows.
                entry.update(executed=max(ran), executed_min=min(ran), executed_runs=ran)
            row[scenario] = entry
            shown = "timeout" if not ok else f"{entry['seconds']:.3f}s"
            extra = f" ({executed_text(entry)} executed)" if ran else ""
            print(f"  {tool:<9} {scenario:<13} {shown:>10}  {entry.get('rss_mib', 0):6.1f} MiB{extra}", flush=True)
            return bool(ok)

        before = executions(ws)
        if not record("cold", [timed(cmds["run"], ws, tool, timeout)], executions(ws) - before):
            # Finish the build untimed, so the other scenarios can still be
            # measured; the cold run itself stays reported as a timeout.
            print(f"  {tool:<9} (finishing the cold run untimed)", flush=True)
            if not finish_untimed(tool, ws, template):
                continue
        record("noop-status", repeated(lambda: timed(cmds["status"], ws, tool, timeout), reps))
        before = executions(ws)
        record("noop-run", repeated(lambda: timed(cmds["run"], ws, tool, timeout), reps), executions(ws) - before)

        original = open(os.path.join(ws, changed), "rb").read()
        runs, ran = [], []
        for i in range(reps):
            if slow(runs):
                break
            with open(os.path.join(ws, changed), "ab") as f:
                f.write(f"edit {i}\n".encode())
            before = executions(ws)
            runs.append(timed(cmds["run"], ws, tool, timeout))
            ran.append(executions(ws) - before)
        record("incremental", runs, ran)
        row["incremental"]["expected"] = expected

        runs, ran = [], []
        for _ in range(reps):
            if slow(runs):
                break
            clear_outputs(ws)
            before = executions(ws)
            runs.append(timed(cmds.get("restore", cmds["run"]), ws, tool, timeout))
            ran.append(executions(ws) - before)
        record("restore", runs, ran)

        # Go back and forth between the original content and the last edit:
        # both states have been built before.
        edited = open(os.path.join(ws, changed), "rb").read()
        runs, ran = [], []
        for i in range(reps):
            if slow(runs):
                break
            with open(os.path.join(ws, changed), "wb") as f:
                f.write(original if i % 2 == 0 else edited)
            before = executions(ws)
            runs.append(timed(cmds["run"], ws, tool, timeout))
            ran.append(executions(ws) - before)
        record("revert", runs, ran)


def bench_hashing(big_mb, results):
    """gourd's hashing of a large folder against BLAKE3 itself (single- and
    multi-threaded, memory-mapped), page cache warm for all."""
    name = f"hash-{big_mb}MB"
    ws = os.path.join(WORK, "ws", name)
    if not os.path.exists(os.path.join(ws, "gourd.ncl")):
        shutil.rmtree(ws, ignore_errors=True)
        sh([sys.executable, os.path.join(HERE, "gen.py"), ws, "--stages", "1", "--big-dir-mb", str(big_mb)])
        sh("git init -q", cwd=ws)
    data = os.path.join(ws, "data", "big")
    files = sorted(os.path.join(data, f) for f in os.listdir(data))
    size = sum(os.path.getsize(f) for f in files)
    py = os.path.join(VENV, "bin", "python")
    ref = subprocess.run([py, "-c", f"""
import blake3, os, sys, time
files = {files!r}
for f in files: open(f, 'rb').read()
def run(threads):
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        for f in files:
            h = blake3.blake3(max_threads=threads); h.update_mmap(f); h.digest()
        best = min(best, time.perf_counter() - t)
    return best
def across():
    from concurrent.futures import ThreadPoolExecutor
    def one(f):
        h = blake3.blake3(); h.update_mmap(f); return h.digest()
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            list(pool.map(one, files))
        best = min(best, time.perf_counter() - t)
    return best
print(run(1), min(run(blake3.blake3.AUTO), across()))
"""], capture_output=True, text=True, check=True).stdout.split()
    single, multi = float(ref[0]), min(float(ref[0]), float(ref[1]))
    # Files must be older than gourd's racy-timestamp window to be cached.
    past = time.time() - 3600
    for f in files:
        os.utime(f, (past, past))
    state = os.path.join(ws, ".gourd", "state-v1")
    sh([GOURD, "status"], cwd=ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cold, warm = [], []
    for _ in range(5):
        # The stat cache and the entries of files in folders (stat-cache.nested/).
        for f in os.listdir(state) if os.path.isdir(state) else []:
            if f.startswith("stat-cache"):
                shutil.rmtree(os.path.join(state, f), ignore_errors=True)
                if os.path.exists(os.path.join(state, f)):
                    os.remove(os.path.join(state, f))
        cold.append(timed([GOURD, "status"], ws, "gourd", 600)[0])
        warm.append(timed([GOURD, "status"], ws, "gourd", 600)[0])
    # The warm status does everything but hashing (start-up, evaluation,
    # stat calls): the difference is the time spent hashing.
    gourd_hash = max(statistics.median(cold) - statistics.median(warm), 1e-9)
    gb = size / 1e9
    results["hashing"] = {
        "bytes": size, "files": len(files),
        "blake3_single_gbps": gb / single, "blake3_multi_gbps": gb / multi,
        "gourd_gbps": gb / gourd_hash, "gourd_status_cold_s": statistics.median(cold), "gourd_status_warm_s": statistics.median(warm),
        "fraction_of_multi": (gb / gourd_hash) / (gb / multi),
    }
    h = results["hashing"]
    print(f"\n== hashing {size / 1e6:.0f} MB in {len(files)} files: BLAKE3 1 thread {h['blake3_single_gbps']:.2f} GB/s, "
          f"all threads {h['blake3_multi_gbps']:.2f} GB/s, gourd {h['gourd_gbps']:.2f} GB/s "
          f"({100 * h['fraction_of_multi']:.0f}% of the multi-threaded limit)", flush=True)


def bench_scheduler(n, repeat, results):
    """Per-stage overhead: n trivial stages, against the same commands
    spawned one by one from a shell loop."""
    template = os.path.join(WORK, "templates", f"trivial-{n}")
    if not os.path.exists(os.path.join(template, "stages.txt")):
        shutil.rmtree(template, ignore_errors=True)
        sh([sys.executable, os.path.join(HERE, "gen.py"), template, "--stages", str(n), "--shape", "fan", "--trivial"])
    loop = ["sh", "-c", "cut -f2 stages.txt | while IFS= read -r c; do sh -c \"$c\"; done"]
    # The baseline for -j2: the same commands split in two halves, each
    # spawned by its own shell loop, both at once (the first stage, which
    # the others read, is in the first half and only creates its file).
    loops = ["sh", "-c", "cut -f2 stages.txt > .cmds && split -n l/2 .cmds .half && "
             "for h in .halfaa .halfab; do (while IFS= read -r c; do sh -c \"$c\"; done < $h) & done; wait"]
    rows = {"gourd -j1": [], "gourd -j2": [], "shell loop": [], "two shell loops": []}
    cpu = {label: [] for label in rows}
    commands = [("shell loop", loop), ("two shell loops", loops), ("gourd -j1", [GOURD, "run", "-j", "1"]),
                ("gourd -j2", [GOURD, "run", "-j", "2"])]
    # Every run gets its own fresh copy, all made before any is timed, and
    # nothing is deleted until the end: on ext4, creating files within a
    # minute of deleting thousands is several times slower (inode allocation
    # scans recently freed inodes), which would measure the harness rather
    # than the tools.
    base = os.path.join(WORK, "ws", f"trivial-{n}-{int(time.time())}")
    copies = {}
    for rep in range(repeat):
        for label, _ in commands:
            dest = os.path.join(base, f"{label.replace(' ', '-')}-{rep}")
            shutil.copytree(template, dest)
            # Its own repository, as in the other scenarios (gourd records
            # lineage), and never the one holding this benchmark.
            sh("git init -q", cwd=dest)
            copies[(label, rep)] = dest
    time.sleep(2)
    for rep in range(repeat):
        for label, cmd in commands:
            seconds, _, percent = timed(cmd, copies[(label, rep)], "gourd", 600)
            rows[label].append(seconds)
            cpu[label].append(percent)
    shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    per_stage = (med["gourd -j1"] - med["shell loop"]) / n * 1000
    per_stage_j2 = (med["gourd -j2"] - med["two shell loops"]) / n * 1000
    # CPU use (user + system over wall, of 100% per core): what keeps both
    # cores busy on a parallel run, gourd's own work included.
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    results["scheduler"] = {"stages": n, "seconds": med, "overhead_ms_per_stage": per_stage,
                            "overhead_ms_per_stage_j2": per_stage_j2, "cpu_percent": cpu_med}
    print(f"\n== scheduler: {n} trivial stages: shell loop {med['shell loop']:.2f}s, two shell loops "
          f"{med['two shell loops']:.2f}s, gourd -j1 {med['gourd -j1']:.2f}s, -j2 {med['gourd -j2']:.2f}s: "
          f"{per_stage:.2f} ms per stage beyond process spawn at -j1, {per_stage_j2:.2f} at -j2; CPU use "
          f"{cpu_med['gourd -j2']:.0f}% for gourd -j2, {cpu_med['two shell loops']:.0f}% for two shell loops", flush=True)


def executed_text(entry):
    """How many stages a scenario executed: `N`, or `MIN-MAX` when the
    repetitions differ."""
    most = entry.get("executed")
    if most is None:
        return "-"
    least = entry.get("executed_min", most)
    return str(most) if least == most else f"{least}-{most}"


def ratio(results, name, scenario, other):
    try:
        g = results[name]["gourd"][scenario]["seconds"]
        o = results[name][other][scenario]
    except KeyError:
        return "-"
    if o.get("timeout") and "seconds" not in o:
        return "other timed out"
    expected = results[name]["gourd"][scenario].get("expected")
    if expected is not None and o.get("executed_min", o.get("executed", expected)) < expected:
        return f"{other} missed the change ({executed_text(o)} of {expected} stages ran)"
    speedup = o["seconds"] / g
    shown = f"{speedup:.1f}" if speedup < 10 else f"{speedup:.0f}"
    return f"{g / o['seconds']:.4f} ({shown}× faster)" if g < o["seconds"] else f"{g / o['seconds']:.2f} (slower)"


def write_markdown(results, meta, args):
    os.makedirs(RESULTS, exist_ok=True)
    lines = ["# gourd vs DVC vs Snakemake", "",
             f"Run on {meta['date']} with `bench/run.py{' --quick' if args.quick else ''}` (repeat {args.repeat}, timeout {args.timeout}s), "
             f"{meta['elapsed_min']:.1f} minutes in all.", "",
             "## Machine and versions", ""]
    for k, v in meta["machine"].items():
        lines.append(f"- {k}: {v}")
    for k, v in meta["versions"].items():
        lines.append(f"- {k}: {v}")
    def show(cmd):
        return " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd))
    lines += ["", "## Commands", "", "| tool | run | no-op check | restore |", "|---|---|---|---|"]
    for tool in TOOLS:
        c = COMMANDS[tool]
        lines.append(f"| {tool} | `{show(c['run'])}` | `{show(c['status'])}` | `{show(c.get('restore', c['run']))}` |")
    lines += ["", "Each tool gets its own copy of the same generated pipeline (`bench/gen.py`), in a git repository with",
              "the data ignored. Scenarios: **cold** (first run), **noop-status** and **noop-run** (nothing changed),",
              "**incremental** (one input file edited; `executed` counts stage executions, `expected` is how many",
              "stages truly depend on the file), **restore** (all outputs deleted, cache present), **revert** (inputs",
              "switched back to a state built before). Times are medians in seconds; ratio is gourd/other.", ""]
    for name, tools in results.items():
        if name in ("hashing", "scheduler"):
            continue
        lines += [f"### {name}", "", "| scenario | gourd | DVC | Snakemake | gourd/DVC | gourd/Snakemake | executed (g/d/s) | peak MiB (g/d/s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for scenario in ["cold", "noop-status", "noop-run", "incremental", "restore", "revert"]:
            def cell(tool):
                e = tools.get(tool, {}).get(scenario)
                if e is None:
                    return "-"
                return "timeout" if "seconds" not in e else f"{e['seconds']:.3f}"
            def executed(tool):
                return executed_text(tools.get(tool, {}).get(scenario, {}))
            def rss(tool):
                e = tools.get(tool, {}).get(scenario, {})
                return f"{e['rss_mib']:.0f}" if "rss_mib" in e else "-"
            exp = tools.get("gourd", {}).get(scenario, {}).get("expected")
            ex = "/".join(executed(t) for t in TOOLS) + (f" (expected {exp})" if exp is not None else "")
            lines.append(f"| {scenario} | {cell('gourd')} | {cell('dvc')} | {cell('snakemake')} | {ratio(results, name, scenario, 'dvc')} | "
                         f"{ratio(results, name, scenario, 'snakemake')} | {ex} | {'/'.join(rss(t) for t in TOOLS)} |")
        cpu = tools.get("gourd", {}).get("cold", {}).get("cpu_percent")
        if cpu is not None:
            lines += ["", f"gourd's cold run used {cpu:.0f}% CPU (200% = both cores busy)."]
        lines.append("")
    if "hashing" in results:
        h = results["hashing"]
        lines += ["## Hashing", "",
                  f"{h['bytes'] / 1e6:.0f} MB in {h['files']} files, page cache warm. BLAKE3 (the `blake3` package, memory-mapped, like `b3sum`):",
                  f"{h['blake3_single_gbps']:.2f} GB/s on one thread; the limit on all cores, the best of one file at a time on all threads and all files at once, {h['blake3_multi_gbps']:.2f} GB/s. gourd (a cold `gourd status` minus a warm one):",
                  f"{h['gourd_gbps']:.2f} GB/s, **{100 * h['fraction_of_multi']:.0f}%** of the multi-threaded limit.", ""]
    if "scheduler" in results:
        s = results["scheduler"]
        lines += ["## Scheduler overhead", "",
                  f"{s['stages']} trivial stages (each creates one file): shell loop spawning the same commands {s['seconds']['shell loop']:.2f} s, "
                  f"`gourd run -j1` {s['seconds']['gourd -j1']:.2f} s: "
                  f"**{s['overhead_ms_per_stage']:.2f} ms per stage** beyond process spawn (hashing, storing and recording each output included)."]
        if "two shell loops" in s["seconds"]:
            lines += [f"Two shell loops at once, each spawning half of the commands, {s['seconds']['two shell loops']:.2f} s; "
                      f"`gourd run -j2` {s['seconds']['gourd -j2']:.2f} s: **{s['overhead_ms_per_stage_j2']:.2f} ms per stage** beyond them."]
        if "cpu_percent" in s:
            c = s["cpu_percent"]
            lines += [f"CPU use (user + system time over wall time; 200% is both cores): `gourd run -j2` **{c['gourd -j2']:.0f}%**, "
                      f"two shell loops {c['two shell loops']:.0f}%."]
        lines += [""]
    lines += ["![no-op and incremental times against pipeline size](noop-incremental.svg)", ""]
    with open(os.path.join(RESULTS, "results.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(RESULTS, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)


def write_plot(results):
    """No-op status and incremental time against pipeline size, log scale."""
    sizes = [(name, n) for name, _, n, _, big in PIPELINES if not big and name in results and name != "fan-100"]
    if len(sizes) < 2:
        return
    import math
    w, h, left, bottom = 640, 360, 60, 40
    panels = [("noop-status", "no-op status"), ("incremental", "incremental run")]
    colors = {"gourd": "#2f9e55", "dvc": "#945dd6", "snakemake": "#d97706"}
    values = [results[nm][t][sc]["seconds"] for nm, _ in sizes for t in TOOLS for sc, _ in panels
              if "seconds" in results[nm].get(t, {}).get(sc, {})]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    pw = (w - left - 20) / 2
    def y(v):
        return 20 + (h - bottom - 20) * (1 - (math.log10(v) - lo) / max(hi - lo, 1))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    for p, (scenario, title) in enumerate(panels):
        x0 = left + p * pw
        out.append(f'<text x="{x0 + pw / 2}" y="14" text-anchor="middle" font-weight="bold">{title} (s, log)</text>')
        for e in range(lo, hi + 1):
            out.append(f'<line x1="{x0}" x2="{x0 + pw - 20}" y1="{y(10 ** e)}" y2="{y(10 ** e)}" stroke="#eee"/>')
            if p == 0:
                out.append(f'<text x="{x0 - 6}" y="{y(10 ** e) + 4}" text-anchor="end">{10 ** e:g}</text>')
        xs = {nm: x0 + 10 + i * (pw - 40) / (len(sizes) - 1) for i, (nm, _) in enumerate(sizes)}
        for nm, n in sizes:
            out.append(f'<text x="{xs[nm]}" y="{h - bottom + 16}" text-anchor="middle">{n} stages</text>')
        for t in TOOLS:
            pts = [(xs[nm], y(results[nm][t][scenario]["seconds"])) for nm, _ in sizes
                   if "seconds" in results[nm].get(t, {}).get(scenario, {})]
            if pts:
                out.append(f'<polyline fill="none" stroke="{colors[t]}" stroke-width="2" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')
                out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colors[t]}"/>' for a, b in pts]
    for i, t in enumerate(TOOLS):
        out.append(f'<text x="{left + i * 110}" y="{h - 8}" fill="{colors[t]}" font-weight="bold">■ {t}</text>')
    out.append("</svg>")
    with open(os.path.join(RESULTS, "noop-incremental.svg"), "w") as f:
        f.write("\n".join(out))


def check_targets(results):
    """Prints each target; returns how many were missed."""
    print("\n== targets")
    missed = []
    def line(ok, text):
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
        if not ok:
            missed.append(text)
    for name in ("chain-100", "fan-100", "fan-500"):
        if name not in results:
            continue
        g = results[name]["gourd"]["noop-status"]["seconds"]
        for tool, target in (("dvc", 50), ("snakemake", 20)):
            o = results[name].get(tool, {}).get("noop-status", {})
            if "seconds" in o:
                line(o["seconds"] / g >= target, f"{name}: no-op status {o['seconds'] / g:.0f}x faster than {tool} (target {target}x)")
        inc = results[name]["gourd"]["incremental"]
        line(inc.get("executed_min", inc.get("executed")) == inc.get("executed") == inc.get("expected"),
             f"{name}: incremental executed {executed_text(inc)} of {inc.get('expected')} dependent stages")
    # Correctness, on every pipeline gourd ran: nothing changed, or only
    # outputs deleted, or inputs back to a state built before, executes nothing.
    for name, tools in results.items():
        if name in ("hashing", "scheduler") or "gourd" not in tools:
            continue
        for scenario in ("noop-run", "restore", "revert"):
            e = tools["gourd"].get(scenario)
            if e is not None and "executed" in e:
                line(e["executed"] == 0, f"{name}: {scenario} executed {executed_text(e)} stages (target 0)")
    if "fan-500" in results:
        rss = results["fan-500"]["gourd"]["noop-status"]["rss_mib"]
        line(rss < 50, f"fan-500 no-op status peak memory {rss:.0f} MiB (target < 50)")
    if "hashing" in results:
        f = results["hashing"]["fraction_of_multi"]
        line(f >= 0.8, f"hashing at {100 * f:.0f}% of multi-threaded BLAKE3 (target 80%)")
    if "scheduler" in results:
        o = results["scheduler"]["overhead_ms_per_stage"]
        line(o < 2, f"scheduler overhead {o:.2f} ms per stage (target < 2)")
    return len(missed)


def exit_on_missed(missed):
    if missed:
        print(f"\n{missed} target(s) missed", file=sys.stderr)
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--scheduler-stages", type=int, default=1000, help="trivial stages in the scheduler measurement")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--timeout", type=int, default=180, help="seconds per measurement")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated tools to measure; with --only, "
                   "the others keep their previous results")
    p.add_argument("--render", action="store_true", help="rewrite results.md and the plot from results.json")
    p.add_argument("--only", help="comma-separated pipeline names (and `hashing`, `scheduler`); "
                   "updates those in the existing results")
    args = p.parse_args()
    started = time.time()
    if args.quick and not args.render:
        # A smoke test or a gate (.ci/run): the committed results stay.
        global RESULTS
        RESULTS = os.path.join(WORK, "quick-results")
        os.makedirs(RESULTS, exist_ok=True)
    if args.render:
        saved = json.load(open(os.path.join(RESULTS, "results.json")))
        write_markdown(saved["results"], saved["meta"], args)
        write_plot(saved["results"])
        exit_on_missed(check_targets(saved["results"]))
        return
    os.makedirs(WORK, exist_ok=True)
    ensure_tools()
    results = {}
    specs = QUICK if args.quick else PIPELINES
    only = set(args.only.split(",")) if args.only else None
    previous_elapsed = 0.0
    if only:
        specs = [s for s in specs if s[0] in only]
        try:
            saved = json.load(open(os.path.join(RESULTS, "results.json")))
            results = saved["results"]
            previous_elapsed = saved["meta"].get("elapsed_min", 0.0)
        except (OSError, ValueError, KeyError):
            pass
    tools = [t for t in TOOLS if t in args.tools.split(",")]
    for spec in specs:
        for tool in tools:
            results.get(spec[0], {}).pop(tool, None)
        bench_pipeline(spec, args.repeat, args.timeout, results, tools)
    if not only or "hashing" in only:
        bench_hashing(64 if args.quick else 1024, results)
    if not only or "scheduler" in only:
        bench_scheduler(args.scheduler_stages, args.repeat, results)
    # Keep the pipelines in their usual order.
    order = [s[0] for s in PIPELINES + QUICK] + ["hashing", "scheduler"]
    results = {k: results[k] for k in sorted(results, key=lambda k: order.index(k) if k in order else len(order))}
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "versions": versions(),
            "elapsed_min": (time.time() - started) / 60 + (previous_elapsed if only else 0.0)}
    write_markdown(results, meta, args)
    write_plot(results)
    missed = check_targets(results)
    print(f"\nwrote {os.path.relpath(RESULTS, ROOT)}/results.md in {(time.time() - started) / 60:.1f} minutes")
    exit_on_missed(missed)


if __name__ == "__main__":
    main()
