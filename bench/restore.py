#!/usr/bin/env python3
"""Restoring deleted outputs from the cache: gourd's link types against
`dvc checkout` with DVC's cache types, on the same outputs.

    bench/restore.py [--stages 50] [--mb 20] [--repeat 3] [--gourd BINARY]

Each of N stages writes one file of M MiB of random bytes; after the cold
run, every output is deleted and brought back: `gourd run` with
`cache.link` set to 'copy and to 'hardlink, `dvc checkout` with
`cache.type` copy (DVC's default on a file system without reflinks) and
hardlink. Medians of the repetitions, each after deleting the outputs
again. Uses bench/run.py's harness; writes bench/results/restore.md.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as harness  # noqa: E402


def write_pipeline(ws, stages, mb, link):
    names = [f"s{i:03d}" for i in range(stages)]
    cmd = "head -c {size} /dev/urandom > out/{name}.bin"
    size = mb * 1024 * 1024
    with open(os.path.join(ws, "gourd.ncl"), "w") as f:
        f.write(f"{{\n  cache = {{ link = '{link} }},\n  stages = {{\n")
        for n in names:
            f.write(f'    {n} = {{ cmd = "mkdir -p out && {cmd.format(size=size, name=n)}", outs = ["out/{n}.bin"] }},\n')
        f.write("  },\n}\n")
    with open(os.path.join(ws, "dvc.yaml"), "w") as f:
        f.write("stages:\n")
        for n in names:
            f.write(f"  {n}:\n    cmd: mkdir -p out && {cmd.format(size=size, name=n)}\n    outs:\n    - out/{n}.bin\n")


def setup(tool, variant, a):
    ws = os.path.join(harness.WORK, "restore", f"{tool}-{variant}")
    if os.path.exists(ws):
        subprocess.run(["chmod", "-R", "u+w", ws])
        shutil.rmtree(ws)
    os.makedirs(ws)
    write_pipeline(ws, a.stages, a.mb, variant)
    os.remove(os.path.join(ws, "dvc.yaml" if tool == "gourd" else "gourd.ncl"))
    with open(os.path.join(ws, ".gitignore"), "w") as f:
        f.write("/out/\n/.gourd/\n")
    env = harness.env_for(tool)
    harness.sh("git init -q -b main && git add -A && git commit -qm pipeline", cwd=ws, env=env)
    if tool == "dvc":
        harness.sh(f"dvc init -q && dvc config core.analytics false && dvc config cache.type {variant} "
                   "&& git add -A && git commit -qm dvc", cwd=ws, env=env)
    return ws


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stages", type=int, default=50)
    p.add_argument("--mb", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--gourd", help="a gourd binary to measure instead of building target/release/gourd")
    a = p.parse_args()
    harness.use_gourd(a.gourd, peers=False)
    cases = [("gourd", "copy"), ("gourd", "hardlink"), ("dvc", "copy"), ("dvc", "hardlink")]
    rows = []
    for tool, variant in cases:
        ws = setup(tool, variant, a)
        cold = harness.timed(harness.COMMANDS[tool]["run"], ws, tool, a.timeout)
        # Past gourd's racy window (2 s): objects stored within it are
        # hashed on every use, as files are by the stat cache.
        time.sleep(2.5)
        restore = harness.COMMANDS[tool]["restore" if tool == "dvc" else "run"]
        times = []
        for _ in range(a.repeat):
            # As a user deletes them: `rm -rf out`. No `chmod -R u+w`
            # first: on hard links that would make the cache's objects
            # writable too, and each tool would then have to hash (gourd)
            # or relink what it can no longer trust.
            shutil.rmtree(os.path.join(ws, "out"))
            if tool == "gourd":
                # Restored, not executed: the outputs come from the cache.
                before = subprocess.run([harness.GOURD, "status", "--json"], cwd=ws, capture_output=True, text=True)
                assert '"stale"' in before.stdout, before.stdout[:500]
            times.append(harness.timed(restore, ws, tool, a.timeout))
        done = [t for t in times if t is not None]
        median = statistics.median(t[0] for t in done) if done else None
        rss = max(t[1] for t in done) if done else None
        print(f"{tool:6} {variant:9} cold {cold[0] if cold else 'timeout'}  restore {median}", flush=True)
        rows.append((tool, variant, median, rss))
        subprocess.run(["chmod", "-R", "u+w", ws])
        shutil.rmtree(ws)
    info = {"versions": harness.versions(), "machine": harness.machine()}
    m = info["machine"]
    dvc_copy = next(r[2] for r in rows if r[:2] == ("dvc", "copy"))
    lines = [
        "# Restore: gourd's link types against `dvc checkout`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['filesystem']} (no reflinks). "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        f"`python3 bench/restore.py --stages {a.stages} --mb {a.mb}`: {a.stages} outputs of {a.mb} MiB "
        f"({a.stages * a.mb / 1024:.1f} GiB), all deleted, then restored: `gourd run` (every stage restored, "
        "none executed) and `dvc checkout`. Median of "
        f"{a.repeat} (seconds), peak RSS, and how many times faster than `dvc checkout` with DVC's default (copy).",
        "",
        "gourd hashes each cache object it restores or calls restorable (a `gourd status` runs before each "
        "restore) and stamps it with its size, mtime and inode; a read-only object that still shows its "
        "stamp is not hashed again (docs/cache.md). A copy is hashed after copying, always. DVC does not "
        "hash what `dvc checkout` links or copies.",
        "",
        "| tool | link / cache type | restore (s) | peak RSS (MiB) | vs dvc checkout (copy) |",
        "|---|---|---|---|---|",
    ]
    for tool, variant, median, rss in rows:
        ratio = f"{dvc_copy / median:.1f}×" if median and dvc_copy else "-"
        shown = f"{median:.3f}" if median is not None else "timeout"
        lines.append(f"| {tool} | {variant} | {shown} | {rss:.0f} | {ratio} |" if rss else f"| {tool} | {variant} | {shown} | - | - |")
    lines.append("")
    os.makedirs(harness.RESULTS, exist_ok=True)
    with open(os.path.join(harness.RESULTS, "restore.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
