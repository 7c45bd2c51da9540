#!/usr/bin/env python3
"""The model registry with many tags: gourd next to GTO on the same repository.

    bench/registry.py [--tags 10000] [--repeat 20] [--gourd PATH] [--no-gto]

Generates a git repository holding N registry tags in GTO's format, written
with `git fast-import` (one pack, like a fresh clone's), every tag annotated
and carrying a gourd record of realistic size, then times, on that one
repository:

- `gourd registry resolve NAME@prod`: the version in prod and its digest;
- `gourd registry history NAME --stage prod --at T`: what prod held at T;
- `gto show NAME#prod` and `gto history NAME`, GTO's nearest commands.

Two layouts of the same number of tags: `spread` (100 artifacts of ~100
moves each: a team's registry) and `one` (all moves on one artifact: the
worst case for reading an artifact's tags). GTO is installed into
bench/work/gto-venv if missing (or taken from GOURD_TEST_GTO, which
scripts/setup-gto.sh prints). The answers of gourd and GTO are compared
(the version in prod now). Results go to bench/results/registry.md.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, "work", "registry")
VENV = os.path.join(HERE, "work", "gto-venv")
T0 = 1_796_040_000  # 2026-11-30T12:00:00Z


def record(action, name, version, stage, i):
    """A gourd record like `gourd registry` writes (about 700 bytes)."""
    body = {
        "action": action,
        "version": version,
        "gourd_version": "0.1.0",
        "when": "2026-11-30T12:00:00Z",
        "via": "command line",
    }
    if stage:
        body["stage"] = stage
    body["digest"] = f"{i:064x}"
    if action == "register":
        body.update(
            path=f"models/{name}",
            kind="dir",
            lineage={"stage": "select", "key": f"{i * 7:064x}", "workspace_commit": f"{i:040x}",
                     "workspace_dirty": False, "finished_at": "2026-11-30T12:00:00.000Z"},
            metrics={"metrics/eval.json": {"accuracy": 0.9 + (i % 100) / 1000, "loss": 0.3}},
            params={"lr": 0.01, "epochs": 3, "batch": 64},
            inputs={"data/train": f"{i * 3:064x}", "train.py": f"{i * 5:064x}"},
        )
    else:
        body["gates"] = [{"gate": "accuracy >= 0.9", "passed": True, "left": 0.93, "right": 0.9}]
    return "Move\n\ngourd-record-v1: " + json.dumps(body, separators=(",", ":")) + "\n"


def moves(name, count):
    """`count` moves of one artifact: a version every fifth move, each
    promoted to staging then prod (unassigning the previous holder)."""
    out, counter, version, holder = [], 0, 0, {}
    while len(out) < count:
        version += 1
        v = f"v1.{version // 100}.{version % 100}"
        out.append((f"{name}@{v}", "register", v, None))
        for stage in ("staging", "prod"):
            if len(out) + 2 > count:
                break
            if stage in holder:
                counter += 1
                out.append((f"{name}#{stage}!#{counter}", "unassign", holder[stage], stage))
            counter += 1
            out.append((f"{name}#{stage}#{counter}", "assign", v, stage))
            holder[stage] = v
    return out[:count], holder.get("prod")


def generate(path, layout, total):
    """The repository, and for each artifact the version in prod now."""
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
    artifacts = {"one": 1, "spread": 100}[layout]
    per = total // artifacts
    plan = {f"model-{a:03d}": moves(f"model-{a:03d}", per) for a in range(artifacts)}
    stream = []
    mark, commit_of, t = 0, {}, T0
    for name, (events, _) in plan.items():
        for tag, action, version, stage in events:
            if action == "register":
                mark += 1
                blob = f"{name} {version}\n"
                stream.append(
                    f"commit refs/heads/main\nmark :{mark}\ncommitter Bench <b@x> {t} +0000\n"
                    f"data {len(version)}\n{version}\nM 644 inline model.txt\ndata {len(blob)}\n{blob}\n"
                )
                commit_of[(name, version)] = mark
    stream_tags = []
    order = []
    for name, (events, _) in plan.items():
        for k, event in enumerate(events):
            order.append((k, name, event))
    order.sort(key=lambda x: (x[0], x[1]))  # interleave artifacts in time
    for n, (_, name, (tag, action, version, stage)) in enumerate(order):
        message = record(action, name, version, stage, n)
        data = message.encode()
        stream_tags.append(
            f"tag {tag}\nfrom :{commit_of[(name, version)]}\ntagger Bench <b@x> {T0 + 60 * n} +0000\n"
            f"data {len(data)}\n{message}\n"
        )
    payload = ("".join(stream) + "".join(stream_tags)).encode()
    subprocess.run(["git", "fast-import", "--quiet"], input=payload, cwd=path, check=True)
    subprocess.run(["git", "pack-refs", "--all"], cwd=path, check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True)
    # What prod held halfway through the moves: for the `--at` query.
    middle = T0 + 60 * (len(order) // 2)
    return {name: prod for name, (_, prod) in plan.items()}, middle


def cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd, cwd, repeat, before=None):
    """Median and p95 wall-clock ms, median CPU ms (user + system: what the
    command itself costs, whatever else the machine runs), and the output."""
    times, cpus, out = [], [], ""
    for _ in range(repeat):
        if before:
            before()
        start, start_cpu = time.perf_counter(), cpu()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append((time.perf_counter() - start) * 1000)
        cpus.append((cpu() - start_cpu) * 1000)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
        out = done.stdout
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return (statistics.median(times), p95, statistics.median(cpus)), out


def gto_bin():
    gto = os.environ.get("GOURD_TEST_GTO") or os.path.join(VENV, "bin", "gto")
    if not os.path.exists(gto):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "gto"], check=True)
    return gto


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--gto-repeat", type=int, default=3)
    parser.add_argument("--gourd", default=os.path.join(ROOT, "target", "release", "gourd"))
    parser.add_argument("--no-gto", action="store_true", help="time gourd only (GTO's rows of an earlier run are kept)")
    args = parser.parse_args()
    args.gourd = os.path.abspath(args.gourd)
    if not os.path.exists(args.gourd):
        subprocess.run(["cargo", "build", "--release", "-p", "gourd-cli", "--bin", "gourd"], cwd=ROOT, check=True)
    gto = None if args.no_gto else gto_bin()
    rows = []
    for layout in ("spread", "one"):
        repo = os.path.join(WORK, layout)
        prods, middle = generate(repo, layout, args.tags)
        name = "model-000" if layout == "one" else "model-050"
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(middle))
        count = len(subprocess.run(["git", "tag", "-l"], cwd=repo, capture_output=True, text=True).stdout.split())
        print(f"{layout}: {count} tags; querying {name}", file=sys.stderr)
        gourd = lambda *a: [args.gourd, "-C", repo, "registry", *a]  # noqa: E731
        stats, out = timed(gourd("resolve", f"{name}@prod"), repo, args.repeat)
        assert out.split()[0] == prods[name], (out, prods[name])
        rows.append((layout, count, f"gourd registry resolve {name}@prod", *stats, args.repeat))
        stats, out = timed(gourd("history", name, "--stage", "prod", "--at", at), repo, args.repeat)
        rows.append((layout, count, f"gourd registry history {name} --stage prod --at {at}", *stats, args.repeat))
        # Without the index of tag objects (a fresh clone's first query).
        index = os.path.join(repo, ".git", "gourd-registry-index-v1")
        drop = lambda: os.path.exists(index) and os.remove(index)  # noqa: E731
        cold = max(3, args.repeat // 4)
        stats, out = timed(gourd("resolve", f"{name}@prod"), repo, cold, before=drop)
        rows.append((layout, count, f"gourd registry resolve {name}@prod (no index yet)", *stats, cold))
        stats, out = timed(gourd("show", name), repo, args.repeat)
        rows.append((layout, count, f"gourd registry show {name}", *stats, args.repeat))
        if gto:
            stats, out = timed([gto, "show", f"{name}#prod", "--version"], repo, args.gto_repeat)
            assert out.split()[0] == prods[name], (out, prods[name])
            rows.append((layout, count, f"gto show {name}#prod --version", *stats, args.gto_repeat))
            stats, out = timed([gto, "history", name], repo, args.gto_repeat)
            rows.append((layout, count, f"gto history {name}", *stats, args.gto_repeat))
    lines = [
        "# The registry with many tags: gourd and GTO on the same repository",
        "",
        f"Measured by `python3 bench/registry.py --tags {args.tags}` on {os.cpu_count()} cores "
        f"({time.strftime('%Y-%m-%d')}); gourd release build, GTO from PyPI. Each repository holds "
        "annotated registry tags in GTO's format, packed (as in a clone), each with a gourd record. "
        "`spread`: 100 artifacts of ~100 moves; `one`: every move on one artifact. "
        "Times are wall clock per command, process start included; CPU is user + system time of "
        f"the command (what it costs whatever else runs: the machine's load average was {os.getloadavg()[0]:.1f} "
        "at the end).",
        "",
        "| layout | tags | command | median ms | p95 ms | median CPU ms | runs |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for layout, count, cmd, med, p95, cpu_ms, n in rows:
        lines.append(f"| {layout} | {count:,} | `{cmd}` | {med:.1f} | {p95:.1f} | {cpu_ms:.1f} | {n} |")
    results = os.path.join(HERE, "results", "registry.md")
    if not gto and os.path.exists(results):
        # Keep GTO's rows of an earlier run (they take minutes), marked.
        with open(results) as f:
            for line in f:
                if line.startswith("| ") and "`gto " in line:
                    cells = line.rstrip("\n").strip("|").split("|")
                    if len(cells) == 6:  # written before the CPU column
                        cells.insert(5, " n/a ")
                    if "(earlier run)" not in cells[2]:
                        cells[2] = cells[2].rstrip() + " (earlier run) "
                    lines.append("|" + "|".join(cells) + "|")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(results, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
