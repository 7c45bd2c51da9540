#!/usr/bin/env python3
"""Sharing results through a remote: gourd (S3 and REAPI) against DVC (S3).

    bench/remote.py [--stages N] [--files F] [--repeat R]

Alice runs a generated pipeline (bench/gen.py, fan shape) and publishes its
results: gourd publishes as it runs; DVC runs `dvc repro` then `dvc push`.
Bob, on a fresh copy of the repository and its data, brings everything up to
date from the remote without executing a stage: `gourd run` (which restores
from the remote) against `dvc pull`. Bob's time is the measurement; every
tool's workspace is then checked to be complete and up to date.

The servers are the test servers (moto for S3, BuildGrid for REAPI), started
by `tests/servers/*-up.sh` on loopback; DVC gets its S3 plugin (`dvc-s3`) in
bench/.venv. Results go to bench/results/remote.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")
WORK = os.path.join(HERE, "work", "remote")
GOURD = os.path.join(ROOT, "target", "release", "gourd")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def servers():
    env = {}
    for script in ("s3-up.sh", "reapi-up.sh"):
        out = subprocess.run([os.path.join(ROOT, "tests", "servers", script)], check=True, capture_output=True, text=True)
        for word in out.stdout.replace("export ", "").split():
            key, _, value = word.partition("=")
            env[key] = value
    return env


def ensure_tools():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(os.path.join(VENV, "bin", "dvc")):
        sh([sys.executable, "-m", "venv", VENV])
        sh([py, "-m", "pip", "install", "-q", "dvc>=3,<4"])
    if subprocess.run([py, "-c", "import dvc_s3"], capture_output=True).returncode != 0:
        print("installing dvc-s3 into bench/.venv ...", flush=True)
        sh([py, "-m", "pip", "install", "-q", "dvc-s3"])
    print("building gourd (release) ...", flush=True)
    sh(["cargo", "build", "--release", "-q", "-p", "gourd-cli"], cwd=ROOT)


def tool_env(server_env):
    env = dict(os.environ)
    env.update(server_env)
    env["PATH"] = os.path.join(VENV, "bin") + os.pathsep + env["PATH"]
    env.update(DVC_NO_ANALYTICS="1", NO_COLOR="1", GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    return env


def bucket(url, name):
    sh(["curl", "-sf", "-X", "PUT", f"{url}/{name}", "-o", "/dev/null"])
    return name


def workspace(template, dest, keep, env):
    """A copy of the template with only `keep` as its pipeline file, in git."""
    if os.path.exists(dest):
        shutil.rmtree(dest)
    shutil.copytree(template, dest)
    for other in ("gourd.ncl", "dvc.yaml", "Snakefile"):
        if other != keep:
            os.remove(os.path.join(dest, other))
    with open(os.path.join(dest, ".gitignore"), "w") as f:
        f.write("/data/\n/out/\n/ran.log\n/.gourd/\n")
    sh("git init -q -b main && git add -A && git commit -qm pipeline", cwd=dest, env=env)


def fresh_copy(alice, bob, env):
    """Bob: a clone of alice's repository, plus the data (not in git here)."""
    if os.path.exists(bob):
        shutil.rmtree(bob)
    sh(["git", "clone", "-q", alice, bob], env=env)
    shutil.copytree(os.path.join(alice, "data"), os.path.join(bob, "data"))


def timed(cmd, cwd, env):
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr.decode()[-2000:]}")
    return elapsed


def executions(ws):
    path = os.path.join(ws, "ran.log")
    return len(open(path).read().split()) if os.path.exists(path) else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stages", type=int, default=100)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    ensure_tools()
    server_env = servers()
    env = tool_env(server_env)
    s3 = server_env["GOURD_TEST_S3"]
    reapi = server_env["GOURD_TEST_REAPI"]
    template = os.path.join(WORK, "template")
    if os.path.exists(template):
        shutil.rmtree(template)
    sh([sys.executable, os.path.join(HERE, "gen.py"), template, "--stages", str(a.stages), "--files", str(a.files),
        "--shape", "fan"])
    pipeline = open(os.path.join(template, "gourd.ncl")).read()

    rows = {"gourd (S3)": [], "gourd (REAPI)": [], "dvc pull (S3)": []}
    alice_times = {k: [] for k in rows}
    for rep in range(a.repeat):
        tag = f"{os.getpid()}-{rep}"
        for label, remote in (
            ("gourd (S3)", f'{{ kind = \'s3, endpoint = "{s3}", bucket = "{bucket(s3, "bench-g-" + tag)}" }}'),
            ("gourd (REAPI)", f'{{ kind = \'reapi, endpoint = "{reapi}" }}'),
        ):
            alice = os.path.join(WORK, "alice-gourd")
            workspace(template, alice, "gourd.ncl", env)
            # A salt per repetition: REAPI's action cache outlives the run.
            with open(os.path.join(alice, "gourd.ncl"), "w") as f:
                f.write(pipeline.replace("{\n  stages", f"{{\n  remote = {remote},\n  stages", 1)
                        .replace("outs = [", f'env = {{ BENCH_SALT = "{tag}" }}, outs = ['))
            sh("git add -A && git commit -qm remote", cwd=alice, env=env)
            alice_times[label].append(timed([GOURD, "run", "-j", "2"], alice, env))
            bob = os.path.join(WORK, "bob-gourd")
            fresh_copy(alice, bob, env)
            rows[label].append(timed([GOURD, "run", "-j", "2"], bob, env))
            assert executions(bob) == 0, f"{label}: bob executed {executions(bob)} stages"
            assert subprocess.run([GOURD, "status", "--exit-code"], cwd=bob, env=env, capture_output=True).returncode == 0

        alice = os.path.join(WORK, "alice-dvc")
        workspace(template, alice, "dvc.yaml", env)
        name = bucket(s3, "bench-d-" + tag)
        sh(f"dvc init -q && dvc remote add -q -d store s3://{name}/dvc && "
           f"dvc remote modify store endpointurl {s3} && git add -A && git commit -qm dvc", cwd=alice, env=env)
        started = time.perf_counter()
        sh(["dvc", "repro", "-q"], cwd=alice, env=env, capture_output=True)
        sh(["dvc", "push", "-q"], cwd=alice, env=env, capture_output=True)
        alice_times["dvc pull (S3)"].append(time.perf_counter() - started)
        sh("git add -A && git commit -qm lock", cwd=alice, env=env)
        bob = os.path.join(WORK, "bob-dvc")
        fresh_copy(alice, bob, env)
        rows["dvc pull (S3)"].append(timed(["dvc", "pull", "-q"], bob, env))
        status = subprocess.run(["dvc", "status", "-q"], cwd=bob, env=env, capture_output=True)
        assert status.returncode == 0 and executions(bob) == 0, "dvc: bob's workspace is not up to date"

    med = {k: statistics.median(v) for k, v in rows.items()}
    lines = [
        "# Sharing results through a remote",
        "",
        f"`python3 bench/remote.py --stages {a.stages} --files {a.files} --repeat {a.repeat}` "
        f"(fan of {a.stages} stages over {a.files} input files; servers on loopback; median of {a.repeat}).",
        "Alice runs and publishes; Bob, on a fresh clone with the data, brings every output up to date "
        "from the remote without executing anything.",
        "",
        "| tool | Alice: run + publish (s) | Bob: restore (s) | Bob vs DVC |",
        "|---|---|---|---|",
    ]
    for label in rows:
        ratio = med["dvc pull (S3)"] / med[label]
        lines.append(f"| {label} | {statistics.median(alice_times[label]):.2f} | {med[label]:.2f} | "
                     f"{ratio:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "remote.md"), "w") as f:
        f.write(text)
    with open(os.path.join(HERE, "results", "remote.json"), "w") as f:
        json.dump({"bob": rows, "alice": alice_times, "stages": a.stages, "files": a.files}, f, indent=1)


if __name__ == "__main__":
    main()
