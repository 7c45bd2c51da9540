#!/usr/bin/env python3
"""gourd's built-in `train` step next to the same training in a PyTorch script.

    bench/train.py [--quick] [--device cpu|cuda] [--threads 1,2] [--repeat N]
                   [--bin DIR] [--python PATH] [--out PATH]

Both train the pumpkin example's CNN (examples/pumpkin/gourd.ncl) on the same
`dataset.safetensors`, from the same JSON configuration: `gourd-step train
CONFIG` (target/release, or DIR/gourd-step) and `python bench/train_torch.py
CONFIG`, which does what engine/torch/src/train.rs does, operation for
operation (same layers and initialisation, Adam, batch size, epochs, a seeded
`randperm` per epoch, seed and threads). On the CPU the two print the same
losses; the table says whether they did.

Two datasets, made by the pipeline's own steps from `pumpkin-photos`:
`example`, the example's photos (validated, 32x32: ~180 training images),
and `large`, a clean labelled delivery of 1,000 photos per label (300 with
--quick) at 32x32, 75% for training. For each dataset, thread count and
repetition (the two programs alternate), measured from outside:

- images/s: training images after the first batch over the time between
  the `train: first step` line and the last epoch's line, as they arrive;
- first step: from process start to the `train: first step` line (start-up,
  loading the data, building the model and one batch);
- wall time, and peak RSS (from wait4);
- test accuracy: `gourd-step evaluate` on each program's model (the script
  writes its weights under tch's names).

Medians are reported. Goals (per thread count): gourd's first step earlier
than the script's on both datasets, and its throughput at least the script's
on the large one (the example's trains in well under a second). Each is
printed as PASS or MISS; the script exits 1 on a miss, and 2 when a run
fails or a device is missing (before any result).

The script runs in a virtual environment with the PyPI torch 2.11.0 wheel:
--python, else bench/work/serve-venv (bench/serve.py's, when it has torch
2.11 and safetensors), else bench/work/train-venv, made on first use. With
`--device cuda` both train on the first CUDA device (gourd-step built with
`--features cuda`; tests/gpu/run.sh runs it so), and the run stops at once
when either sees no device. Results: bench/results/train.md and train.json
(train-cuda.* on CUDA; --quick: bench/work/train/quick/), with the
machine's load average during the runs.
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
WORK = os.path.join(HERE, "work", "train")
TORCH_VERSION = "2.11"
PACKAGES = ["torch==2.11.0", "safetensors"]

# The example's CNN and training settings (examples/pumpkin/gourd.ncl, the
# sweep point with lr 0.004).
CNN = [
    {"type": "conv2d", "out": 12, "kernel": 3, "padding": 1},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel": 2},
    {"type": "conv2d", "out": 24, "kernel": 3, "padding": 1},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel": 2},
    {"type": "flatten"},
    {"type": "dropout", "p": 0.2},
    {"type": "linear", "out": 3},
]
TRAIN = {"model": CNN, "lr": 0.004, "batch_size": 32, "seed": 42, "optimizer": "adam"}
VALIDATE = {"min_size": 24, "min_sharpness": 40, "max_green_fraction": 0.1, "min_per_class": 30, "max_imbalance": 1.5}
IMAGES = {"size": 32, "test_fraction": 0.25, "seed": 7}


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load():
    return os.getloadavg()[0]


# ---------------------------------------------------------------- set-up


def find_python(args):
    if args.python:
        return args.python
    probe = f"import torch, safetensors, sys; sys.exit(0 if torch.__version__.startswith('{TORCH_VERSION}.') else 1)"
    for venv in ("serve-venv", "train-venv"):
        python = os.path.join(HERE, "work", venv, "bin", "python")
        if os.path.exists(python) and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
            return python
    venv = os.path.join(HERE, "work", "train-venv")
    print(f"installing {' '.join(PACKAGES)} into {venv} (a few minutes, ~5 GB)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", *PACKAGES], check=True)
    return os.path.join(venv, "bin", "python")


def binaries(args):
    if args.bin:
        folder = os.path.abspath(args.bin)
    else:
        folder = os.path.join(ROOT, "target", "release")
        for command in (
            ["cargo", "build", "--release", "-p", "gourd-cli", "--features", "torch"],
            ["cargo", "build", "--release", "-p", "pumpkin-photos"],
        ):
            print("$ " + " ".join(command), file=sys.stderr)
            if subprocess.run(command, cwd=ROOT).returncode != 0:
                fail(f"`{' '.join(command)}` failed")
    step, photos = os.path.join(folder, "gourd-step"), os.path.join(folder, "pumpkin-photos")
    for path in (step, photos):
        if not os.access(path, os.X_OK):
            fail(f"{path} is missing (build it, or point --bin at a folder holding gourd-step and pumpkin-photos)")
    return step, photos


def step_env(device):
    env = dict(os.environ)
    env.pop("GOURD_EXECUTOR", None)
    if device == "cuda":
        env["GOURD_EXECUTOR"] = "cuda"
        env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES") or "0"
    else:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def check_cuda(step, python):
    """Stops at once, saying which side sees no device."""
    seen = subprocess.run([step, "--cuda-devices"], capture_output=True, text=True, env=step_env("cuda"))
    count = seen.stdout.strip()
    if seen.returncode != 0 or not count.isdigit() or int(count) < 1:
        fail(
            f"--device cuda, but `{step} --cuda-devices` sees {count or 'no'} CUDA device "
            f"(exit {seen.returncode}{': ' + seen.stderr.strip() if seen.stderr.strip() else ''}); "
            "it needs a build with `--features cuda` and libtorch's CUDA libraries on LD_LIBRARY_PATH"
        )
    probe = "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    name = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if name.returncode != 0 or not name.stdout.strip():
        fail(f"--device cuda, but PyTorch ({python}) sees no CUDA device {name.stderr.strip()[-300:]}")
    return name.stdout.strip()


def run_step(step, name, config, cwd, env=None):
    path = os.path.join(cwd, f"{name}.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    done = subprocess.run([step, name, path], cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        fail(f"`gourd-step {name} {path}` failed (exit {done.returncode}):\n{done.stderr}")
    return done.stderr


def make_datasets(step, photos, quick):
    """The example's photos, validated, and a large clean delivery."""
    os.makedirs(WORK, exist_ok=True)
    per_class = 300 if quick else 1000
    sets = {}
    for name, photo_args, validate in (
        ("example", [], True),
        (f"large-{per_class}", ["--batch", "home", "--per-class", str(per_class)], False),
    ):
        folder = os.path.join(WORK, name)
        dataset = os.path.join(folder, "data", "dataset")
        if not os.path.exists(os.path.join(dataset, "dataset.safetensors")):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            subprocess.run([photos, os.path.join(folder, "photos"), *photo_args], check=True, capture_output=True)
            images = {"input": "photos", "output": "data/dataset", **IMAGES}
            if validate:
                run_step(step, "validate", {"input": "photos", "output": "reports/validation.json", **VALIDATE}, folder)
                images["validation"] = "reports/validation.json"
            run_step(step, "images", images, folder)
        with open(os.path.join(dataset, "manifest.json")) as f:
            manifest = json.load(f)
        sets[name] = {"folder": folder, "train": manifest["train"], "test": manifest["test"]}
    return sets


# ---------------------------------------------------------------- measuring


def cpu_seconds(pid):
    """User + system time of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(command, cwd, env):
    """Runs a training command; the arrival time of each stderr line, the
    process's CPU time at the first step and at the last epoch, wall time
    and peak RSS."""
    lines, cpu = [], {}
    loads = [load()]
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for raw in child.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        lines.append((time.perf_counter() - start, line))
        if line.startswith("train: first step after"):
            cpu["first"] = cpu_seconds(child.pid)
        elif line.startswith("epoch ") and line.split()[1].split("/")[0] == line.split()[1].split("/")[1].rstrip(":"):
            cpu["last"] = cpu_seconds(child.pid)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    loads.append(load())
    text = "\n".join(line for _, line in lines)
    if child.returncode != 0:
        fail(f"`{' '.join(command)}` failed (exit {child.returncode}):\n{text}")
    first = next((t for t, line in lines if line.startswith("train: first step after")), None)
    epochs = [(t, line) for t, line in lines if line.startswith("epoch ")]
    if first is None or not epochs:
        fail(f"`{' '.join(command)}` did not log its first step and epochs:\n{text}")
    return {
        "wall_s": wall,
        "first_step_s": first,
        "train_s": epochs[-1][0] - first,
        "train_cpu_s": cpu["last"] - cpu["first"],
        "losses": [line.split("loss ")[1].split(",")[0] for _, line in epochs],
        "rss_mb": usage.ru_maxrss / 1024,
        "load": max(loads),
        "log": text,
    }


def measure(args, step, python, sets):
    runs = []
    for name, info in sets.items():
        epochs = args.epochs
        for threads in args.threads:
            for rep in range(args.repeat):
                # Alternate which goes first, so that neither always follows the other.
                order = ("gourd", "pytorch") if rep % 2 == 0 else ("pytorch", "gourd")
                for program in order:
                    cwd = info["folder"]
                    output = f"models/{program}-t{threads}"
                    config = {"dataset": "data/dataset", "output": output, "epochs": epochs, "threads": threads, **TRAIN}
                    path = os.path.join(cwd, f"train-{program}-t{threads}.json")
                    with open(path, "w") as f:
                        json.dump(config, f, indent=2)
                    if program == "gourd":
                        command = [step, "train", path]
                    else:
                        command = [python, os.path.join(HERE, "train_torch.py"), path, "--device", args.device]
                    result = timed(command, cwd, step_env(args.device))
                    trained = info["train"] * epochs - min(TRAIN["batch_size"], info["train"])
                    result["images_per_s"] = trained / result["train_s"]
                    result["images_per_cpu_s"] = trained / max(result["train_cpu_s"], 0.01)
                    result.update(dataset=name, threads=threads, program=program, rep=rep)
                    if rep == 0:
                        report = f"metrics/{program}-t{threads}.json"
                        evaluate = {"model": output, "dataset": "data/dataset", "output": report}
                        run_step(step, "evaluate", evaluate, cwd, step_env("cpu"))
                        with open(os.path.join(cwd, report)) as f:
                            result["accuracy"] = json.load(f)["accuracy"]
                    runs.append(result)
                    print(
                        f"{name:>12} t{threads} {program:>7} #{rep + 1}: {result['images_per_s']:6.0f} img/s, "
                        f"{result['images_per_cpu_s']:6.0f} img/CPU-s, "
                        f"first step {result['first_step_s']:6.3f}s, wall {result['wall_s']:6.2f}s, "
                        f"{result['rss_mb']:5.0f} MB, load {result['load']:.2f}",
                        file=sys.stderr,
                    )
    return runs


# ---------------------------------------------------------------- reporting


def summarise(runs, sets, device):
    rows = []
    for name, info in sets.items():
        for threads in sorted({r["threads"] for r in runs}):
            row = {"dataset": name, "train_images": info["train"], "test_images": info["test"], "threads": threads}
            for program in ("gourd", "pytorch"):
                mine = [r for r in runs if r["dataset"] == name and r["threads"] == threads and r["program"] == program]
                row[program] = {
                    key: statistics.median(r[key] for r in mine)
                    for key in ("images_per_s", "images_per_cpu_s", "first_step_s", "wall_s", "rss_mb", "train_s")
                }
                row[program]["accuracy"] = next(r["accuracy"] for r in mine if "accuracy" in r)
                row[program]["losses"] = mine[0]["losses"]
                row[program]["deterministic"] = all(r["losses"] == mine[0]["losses"] for r in mine)
            row["same_losses"] = row["gourd"]["losses"] == row["pytorch"]["losses"]
            row["wall_throughput_ratio"] = row["gourd"]["images_per_s"] / row["pytorch"]["images_per_s"]
            row["cpu_throughput_ratio"] = row["gourd"]["images_per_cpu_s"] / row["pytorch"]["images_per_cpu_s"]
            # On the CPU, judged per CPU second (see render); on a GPU, the
            # work is not on the CPU: per second.
            row["throughput_ratio"] = row["cpu_throughput_ratio" if device == "cpu" else "wall_throughput_ratio"]
            row["first_step_ratio"] = row["gourd"]["first_step_s"] / row["pytorch"]["first_step_s"]
            # The example's ~180 images train in a fraction of a second: its
            # throughput is reported, and judged on the large set only.
            row["goals"] = {"start-up": row["gourd"]["first_step_s"] < row["pytorch"]["first_step_s"]}
            if name != "example":
                row["goals"]["throughput"] = row["throughput_ratio"] >= 1.0
            rows.append(row)
    return rows


def versions(step, python):
    torch = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    libtorch = "unknown"
    ldd = subprocess.run(["ldd", step], capture_output=True, text=True).stdout
    for line in ldd.splitlines():
        if "libtorch_cpu.so =>" in line:
            lib = line.split("=>")[1].split("(")[0].strip()
            version = os.path.join(os.path.dirname(os.path.dirname(lib)), "version.py")
            try:
                for text in open(version):
                    if text.startswith("__version__"):
                        libtorch = text.split("=")[1].strip().strip("'\"")
            except OSError:
                libtorch = lib
    return {"pytorch": torch.stdout.strip(), "gourd_libtorch": libtorch, "python": platform.python_version()}


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()}


def render(meta, rows):
    out = [
        f"# Training: gourd's `train` step and the same loop in PyTorch ({meta['device']})",
        "",
        f"Run on {meta['date']} with `{meta['command']}`: {meta['machine']['cpu']}, {meta['machine']['cores']} cores"
        + (f", GPU {meta['gpu']}" if meta.get("gpu") else "")
        + f"; PyTorch {meta['versions']['pytorch']} (Python {meta['versions']['python']}), gourd-step on libtorch "
        f"{meta['versions']['gourd_libtorch']}. {meta['repeat']} repetitions each, medians; the programs alternate. "
        f"Load average (1 min) during the runs: {meta['load']['min']:.2f} to {meta['load']['max']:.2f} "
        f"(median {meta['load']['median']:.2f}).",
        "",
        f"The example's CNN, Adam, lr {TRAIN['lr']}, batch {TRAIN['batch_size']}, {meta['epochs']} epochs, "
        f"seed {TRAIN['seed']}, 32x32 images. "
        "images/s: training images after the first batch per second of training; images/CPU-s: the same "
        "images per second of the process's CPU time (user + system, all threads) over that stretch; "
        "first step: from process "
        "start to the end of the first optimiser step; accuracy: `gourd-step evaluate` on the test split.",
        "",
        "| dataset | threads | program | images/s | images/CPU-s | first step | wall | peak RSS | test accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for program in ("gourd", "pytorch"):
            r = row[program]
            out.append(
                f"| {row['dataset']} ({row['train_images']} train) | {row['threads']} | {program} | "
                f"{r['images_per_s']:,.0f} | {r['images_per_cpu_s']:,.0f} | {r['first_step_s']:.3f} s | {r['wall_s']:.2f} s | "
                f"{r['rss_mb']:.0f} MB | {r['accuracy']:.3f} |"
            )
    out += [
        "",
        "| dataset | threads | images/s gourd/PyTorch | images/CPU-s gourd/PyTorch | first step gourd/PyTorch "
        "| same losses | goals |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        goals = ", ".join(f"{k} {'PASS' if ok else 'MISS'}" for k, ok in row["goals"].items())
        same = "yes" if row["same_losses"] else "no"
        out.append(
            f"| {row['dataset']} | {row['threads']} | {row['wall_throughput_ratio']:.2f}x | {row['cpu_throughput_ratio']:.2f}x | "
            f"{row['first_step_ratio']:.2f}x | {same} | {goals} |"
        )
    out += [
        "",
        "Goals: gourd's first step earlier (ratio < 1.00), and on the large dataset its throughput at least "
        "PyTorch's (ratio >= 1.00), judged on images/CPU-s on the CPU (on a shared machine images/s follows the "
        "share of the cores each run happens to get; on idle cores the two agree at 1 thread) and on images/s on "
        "a GPU. The example's set trains "
        "in under a second, so its throughput is only reported. "
        "\"same losses\": both printed the same loss, to 4 decimals, at every epoch of the first repetition.",
        "",
    ]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 photos per label, 4 epochs, 3 repetitions")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    parser.add_argument("--epochs", type=int, help="epochs (default 8, the example's; --quick 4)")
    parser.add_argument("--bin", help="a folder with gourd-step and pumpkin-photos (default: build target/release)")
    parser.add_argument("--python", help="a Python with torch 2.11 (default: a venv under bench/work)")
    parser.add_argument("--out", help="results path without extension (default bench/results/train[-cuda])")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.repeat = args.repeat or 3
    args.epochs = args.epochs or (4 if args.quick else 8)
    name = "train" + ("-cuda" if args.device == "cuda" else "")
    out = args.out or (os.path.join(WORK, "quick", name) if args.quick else os.path.join(HERE, "results", name))

    step, photos = binaries(args)
    python = find_python(args)
    gpu = check_cuda(step, python) if args.device == "cuda" else None
    sets = make_datasets(step, photos, args.quick)
    runs = measure(args, step, python, sets)
    rows = summarise(runs, sets, args.device)
    loads = [r["load"] for r in runs]
    command = " ".join(["python3 bench/train.py", *sys.argv[1:]])
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "device": args.device.upper() if args.device == "cpu" else "CUDA",
        "gpu": gpu,
        "machine": machine(),
        "versions": versions(step, python),
        "repeat": args.repeat,
        "epochs": args.epochs,
        "load": {"min": min(loads), "max": max(loads), "median": statistics.median(loads)},
    }
    text = render(meta, rows)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(text)
    for r in runs:
        r.pop("log")
    with open(out + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows, "runs": runs}, f, indent=1)
        f.write("\n")
    print(text)
    missed = [(row, goal) for row in rows for goal, ok in row["goals"].items() if not ok]
    for row in rows:
        for goal, ok in row["goals"].items():
            ratio = row["throughput_ratio"] if goal == "throughput" else row["first_step_ratio"]
            print(f"{'PASS' if ok else 'MISS'}: {goal}, {row['dataset']}, {row['threads']} thread(s): gourd/PyTorch {ratio:.2f}x")
    print(f"results: {out}.md, {out}.json")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
