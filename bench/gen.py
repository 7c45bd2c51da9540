#!/usr/bin/env python3
"""Generates one synthetic pipeline for gourd, DVC and Snakemake at once.

    gen.py DIR --stages N --files F --shape chain|fan|shard [--big-dir-mb MB] [--trivial] [--work-ms MS]

Every stage reads its own share of the F input files under `data/` (plus,
for `chain`, the previous stage's output; for `fan`, the first stage's output,
with a last stage joining every branch), and writes `out/NAME.txt`. The three
tools get the same commands, the same deps and the same outs:
`gourd.ncl`, `dvc.yaml` and `Snakefile` side by side in DIR.
"""
import argparse
import json
import os
import random


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--stages", type=int, required=True)
    p.add_argument("--files", type=int, default=0)
    p.add_argument("--shape", choices=["chain", "fan", "shard"], default="chain",
                   help="shard: independent stages, one per shard of the input files")
    p.add_argument("--big-dir-mb", type=int, default=0, help="one large data folder (100 files) read by the first stage")
    p.add_argument("--trivial", action="store_true", help="stages that only create their output (scheduler overhead)")
    p.add_argument("--work-ms", type=int, default=0,
                   help="each stage also computes for about this long (an awk loop of 50,000 additions per ms)")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    rng = random.Random(42)

    stages = []  # (name, deps, out)
    per_stage = a.files // a.stages if a.files else 0
    for i in range(a.stages):
        name = f"s{i:04d}"
        deps = []
        folder = f"data/{name}"
        if per_stage:
            os.makedirs(os.path.join(a.dir, folder), exist_ok=True)
            for j in range(per_stage):
                path = f"{folder}/f{j:03d}.txt"
                with open(os.path.join(a.dir, path), "w") as f:
                    f.write(f"{name} {j} {rng.random()}\n")
                deps.append(path)
        if a.shape == "chain" and i > 0:
            deps.append(f"out/s{i - 1:04d}.txt")
        if a.shape == "fan" and 0 < i < a.stages - 1:
            deps.append("out/s0000.txt")
        if a.shape == "fan" and i == a.stages - 1 and a.stages > 1:
            deps.extend(f"out/s{k:04d}.txt" for k in range(1, a.stages - 1))
        if i == 0 and a.big_dir_mb:
            big = "data/big"
            os.makedirs(os.path.join(a.dir, big), exist_ok=True)
            chunk = a.big_dir_mb * 1024 * 1024 // 100
            for k in range(100):
                with open(os.path.join(a.dir, big, f"part{k:03d}.bin"), "wb") as f:
                    f.write(rng.randbytes(chunk))
            deps.append(big)
        stages.append((name, deps, f"out/{name}.txt"))
    os.makedirs(os.path.join(a.dir, "out"), exist_ok=True)

    # A join of thousands of branches would pass the shell a command longer
    # than one argument may be (128 KiB on Linux): it lists its inputs with
    # `find` instead, excluding the first stage's output, which it does not
    # declare.
    long_join = a.shape == "fan" and a.stages > 1000

    def cmd(name, deps):
        # The output depends on the content of every dep, so "what truly
        # depends on a file" is the same for every tool; each execution
        # appends the stage name to ran.log, which counts executions.
        if a.trivial:
            return f": > out/{name}.txt"
        files = [d for d in deps if not d.startswith("data/big")]
        dirs = [d for d in deps if d.startswith("data/big")]
        if long_join and name == f"s{a.stages - 1:04d}":
            own = " ".join(d for d in files if d.startswith("data/"))
            found = f"find out -name 's*.txt' ! -name s0000.txt ! -name {name}.txt | sort | xargs cat"
            body = f"cat {own}; {found}" if own else found
            return f"{{ {body}; }} | cksum > out/{name}.txt && echo {name} >> ran.log"
        parts = []
        if files:
            parts.append("cat " + " ".join(files))
        if dirs:
            parts.append("find " + " ".join(dirs) + " -type f | sort | xargs cat")
        body = "; ".join(parts) or "true"
        # CPU work, the same for every tool: what a light real stage adds.
        work = f"awk 'BEGIN {{ for (i = 0; i < {a.work_ms * 50000}; i++) s += i }}' && " if a.work_ms else ""
        return f"{{ {body}; }} | cksum > out/{name}.txt && {work}echo {name} >> ran.log"

    with open(os.path.join(a.dir, "gourd.ncl"), "w") as f:
        f.write("{\n  stages = {\n")
        for name, deps, out in stages:
            deps_s = ", ".join(f'"{d}"' for d in deps)
            f.write(f'    {name} = {{ cmd = "{cmd(name, deps)}", deps = [{deps_s}], outs = ["{out}"] }},\n')
        f.write("  },\n}\n")

    with open(os.path.join(a.dir, "dvc.yaml"), "w") as f:
        f.write("stages:\n")
        for name, deps, out in stages:
            f.write(f"  {name}:\n    cmd: {json.dumps(cmd(name, deps))}\n")
            if deps:
                f.write("    deps:\n" + "".join(f"    - {d}\n" for d in deps))
            f.write(f"    outs:\n    - {out}\n")

    with open(os.path.join(a.dir, "stages.txt"), "w") as f:
        for name, deps, out in stages:
            f.write(f"{name}\t{cmd(name, deps)}\t{' '.join(deps)}\n")

    with open(os.path.join(a.dir, "Snakefile"), "w") as f:
        f.write("rule all:\n    input: " + ", ".join(f'"{out}"' for _, _, out in stages) + "\n\n")
        for name, deps, out in stages:
            f.write(f"rule {name}:\n")
            if deps:
                f.write("    input: " + ", ".join(f'"{d}"' for d in deps) + "\n")
            shell = cmd(name, deps).replace("{", "{{").replace("}", "}}")
            f.write(f'    output: "{out}"\n    shell: "{shell}"\n\n')


if __name__ == "__main__":
    main()
