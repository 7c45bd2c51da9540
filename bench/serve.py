#!/usr/bin/env python3
"""`gourd serve` next to `mlflow models serve` and a hand-written FastAPI server.

    bench/serve.py [--quick] [--duration S] [--gourd PATH] [--no-pin]

One network, three servers, the same requests:

- `gourd serve models/best` (libtorch in Rust), asked on MLflow's
  `/invocations` and, as an extra row, on the Open Inference Protocol's
  `/v2/models/best/infer`;
- `mlflow models serve -m DIR --env-manager local` of the same network in
  PyTorch (built from the model folder's `model.json`, weights loaded from
  its `model.safetensors`, saved with `mlflow.pytorch.save_model`);
- a hand-written FastAPI + uvicorn server (one worker) running that PyTorch
  network on the JSON body with numpy.

The model is the pumpkin example's (trained once into bench/work/serve/).
Before any load, each server is asked about the same inputs and its
probabilities are compared with PyTorch's (the largest difference is
printed; above 1e-4 is an error). Every request is one 3x32x32 float tensor
(a ~62 KB JSON body, `{"inputs": [[...]]}`) over loopback keep-alive
connections, from an asyncio client speaking raw HTTP/1.1, at concurrency 1, 8
and 64. Measured: requests/s, p50/p95/p99 latency, the server's CPU per
request, the time from launch to the first good answer, and the peak RSS of
the server with its children. The servers are started one at a time, then
all stay up and take turns under load in short windows, round after round,
so that the machine's other work falls on all of them alike. Each server runs on core 0 with one
inference thread (`--threads 1`, `torch.set_num_threads(1)`,
`OMP_NUM_THREADS=1`), the client on core 1; the client's own ceiling is
measured against a trivial server that answers without parsing anything.

gourd's dynamic batching is measured at concurrency 64 on (`--max-batch-size
32 --max-queue-delay-ms 1`) and off (`--max-batch-size 1`).

The goals of the serving issue are checked and printed as PASS/MISS; the
script exits 1 when one is missed, when any server answers an error, or
when its probabilities differ from PyTorch's. Python packages (torch,
mlflow, fastapi, uvicorn, safetensors, matplotlib) go to
bench/work/serve-venv on first use. Results go to bench/results/serve.md,
serve.json and serve.svg (with --quick, to bench/work/serve/quick/).
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, "work", "serve")
VENV = os.path.join(HERE, "work", "serve-venv")
PACKAGES = ["torch==2.11.0", "mlflow", "fastapi", "uvicorn[standard]", "safetensors", "matplotlib", "numpy"]
CONCURRENCY = (1, 8, 64)
CHECK_INPUTS = 4
TOLERANCE = 1e-4


# ---------------------------------------------------------------- set-up


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def ensure_venv():
    """Re-runs this script under bench/work/serve-venv, made on first use."""
    python = os.path.join(VENV, "bin", "python")
    probe = "import torch, mlflow, fastapi, uvicorn, safetensors, matplotlib, uvloop"
    if not os.path.exists(python) or subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
        print(f"installing {' '.join(PACKAGES)} into {VENV} (a few minutes)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", *PACKAGES], check=True)
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


def build_gourd(args):
    if args.gourd:
        return os.path.abspath(args.gourd)
    subprocess.run(["cargo", "build", "--release", "-p", "gourd-cli", "--features", "torch"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "gourd")


def photos_bin():
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "pumpkin-photos")
        if os.path.exists(path):
            return path
    subprocess.run(["cargo", "build", "--release", "-p", "pumpkin-photos"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "pumpkin-photos")


def pumpkin_model(gourd):
    """The pumpkin example trained once: its `models/best` folder."""
    ws = os.path.join(WORK, "pumpkin")
    best = os.path.join(ws, "models", "best")
    if os.path.exists(os.path.join(best, "model.safetensors")):
        return best
    if os.path.exists(ws):
        shutil.rmtree(ws)
    os.makedirs(ws)
    example = os.path.join(ROOT, "examples", "pumpkin")
    for name in ("gourd.ncl", "harvest.csv", ".gitignore"):
        shutil.copy(os.path.join(example, name), ws)
    bindir = os.path.dirname(gourd)
    subprocess.run([photos_bin(), "photos"], cwd=ws, check=True, capture_output=True)
    subprocess.run([photos_bin(), "inbox", "--seed", "99", "--per-class", "2"], cwd=ws, check=True,
                   capture_output=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=ws, check=True)
    subprocess.run(["git", "add", "-A"], cwd=ws, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-q", "-m", "pumpkins"],
                   cwd=ws, check=True)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    print("training the pumpkin model (gourd run select)", file=sys.stderr)
    subprocess.run([gourd, "run", "select"], cwd=ws, env=env, check=True)
    return best


def torch_network(folder):
    """The network of a model folder in PyTorch: layers from `model.json`,
    weights from `model.safetensors` (tch's `layerN.NAME` is PyTorch's
    `N.NAME` in an `nn.Sequential`)."""
    import torch
    from safetensors.torch import load_file
    from torch import nn

    with open(os.path.join(folder, "model.json")) as f:
        description = json.load(f)
    shape = list(description["input"])
    layers = []
    for layer in description["layers"]:
        kind = layer["type"]
        if kind == "conv2d":
            k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("padding", 0)
            layers.append(nn.Conv2d(shape[0], layer["out"], k, stride=s, padding=p))
            shape = [layer["out"], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
        elif kind == "maxpool2d":
            k = layer["kernel"]
            s = layer.get("stride", k)
            layers.append(nn.MaxPool2d(k, s))
            shape = [shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1]
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "flatten":
            layers.append(nn.Flatten())
            shape = [int(torch.tensor(shape).prod())]
        elif kind == "linear":
            layers.append(nn.Linear(shape[0], layer["out"]))
            shape = [layer["out"]]
        elif kind == "dropout":
            layers.append(nn.Dropout(layer.get("p", 0.5)))
        elif kind == "batchnorm":
            layers.append(nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]))
        else:
            raise SystemExit(f"{folder}/model.json: layer type `{kind}` is not known to this benchmark")
    net = nn.Sequential(*layers)
    weights = {}
    for key, value in load_file(os.path.join(folder, "model.safetensors")).items():
        layer, name = key.split(".", 1)
        assert layer.startswith("layer"), key
        weights[f"{layer[len('layer'):]}.{name}"] = value
    result = net.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise SystemExit(f"{folder}: weights do not fit: missing {missing}, unexpected {result.unexpected_keys}")
    net.eval()
    return net, description["labels"], description["input"]


def export_mlflow(net, input_shape, classes, path):
    """The network with a softmax (so that it answers probabilities, as gourd
    does), saved as an MLflow model with a float32 tensor signature."""
    import mlflow.pytorch
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec
    from torch import nn

    if os.path.exists(path):
        shutil.rmtree(path)
    model = nn.Sequential(net, nn.Softmax(dim=1)).eval()
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *input_shape))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes))]),
    )
    import torch

    example = np.zeros((1, *input_shape), dtype=np.float32)
    mlflow.pytorch.save_model(model, path, signature=signature, input_example=example,
                              pip_requirements=[f"torch=={torch.__version__}"])


def forward_cost(net, input_shape):
    """PyTorch's time for the network alone, one thread: ms per row at batch
    1 and 32 (what batching can save at most)."""
    import torch

    out = {}
    with torch.inference_mode():
        for n in (1, 32):
            x = torch.randn(n, *input_shape)
            for _ in range(10):
                net(x)
            repeat = max(20, 640 // n)
            started = time.perf_counter()
            for _ in range(repeat):
                net(x)
            out[n] = (time.perf_counter() - started) * 1000 / repeat / n
    print(f"the network alone in PyTorch: {out[1]:.3f} ms per row at batch 1, {out[32]:.3f} at batch 32",
          file=sys.stderr)
    return out


# ---------------------------------------------------------------- servers


def fastapi_server(folder, port):
    """The hand-written server: FastAPI on uvicorn, one worker, PyTorch."""
    import numpy as np
    import torch
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    torch.set_num_threads(1)
    net, labels, shape = torch_network(folder)
    app = FastAPI()

    @app.get("/ping")
    async def ping():
        return Response("\n")

    @app.post("/invocations")
    async def invocations(request: Request):
        try:
            body = json.loads(await request.body())
            rows = body["inputs"] if "inputs" in body else body["instances"]
            x = np.asarray(rows, dtype=np.float32).reshape(-1, *shape)
        except (ValueError, KeyError, TypeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        with torch.inference_mode():
            p = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
        predictions = [{"label": labels[int(row.argmax())], "probabilities": row.tolist()} for row in p]
        return Response(json.dumps({"predictions": predictions}), media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def trivial_server(port):
    """Reads each request's body and answers a fixed short body: the client's ceiling."""
    import uvloop

    answer = b'{"predictions": [{"label": "good", "probabilities": [1.0, 0.0, 0.0]}]}'
    response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(answer), answer)

    class Trivial(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf, self.need = transport, bytearray(), None

        def data_received(self, data):
            self.buf += data
            while True:
                if self.need is None:
                    end = self.buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    head = bytes(self.buf[:end]).lower()
                    at = head.find(b"content-length:")
                    length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) \
                        if at >= 0 else 0
                    self.need = end + 4 + length
                if len(self.buf) < self.need:
                    return
                del self.buf[:self.need]
                self.need = None
                self.transport.write(response)

    async def main():
        server = await asyncio.get_running_loop().create_server(Trivial, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(path, body):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def post(port, path, body, timeout=60):
    """One request on a fresh connection: (status, body), or None when refused."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        return None
    finally:
        connection.close()


def tree(root):
    """`root` and its descendants, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parents.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


class Server:
    """A server process (with its children) on core 0, timed from launch to
    its first good answer."""

    def __init__(self, name, cmd, port, path, body, pin, cwd=None, env=None):
        self.name, self.port = name, port
        self.log = open(os.path.join(WORK, f"{name.split()[0]}.log"), "w")
        environment = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        environment.update(env or {})

        def pinned():
            if pin:
                os.sched_setaffinity(0, {0})

        started = time.perf_counter()
        self.process = subprocess.Popen(cmd, cwd=cwd, env=environment, stdout=self.log, stderr=self.log,
                                        stdin=subprocess.DEVNULL, preexec_fn=pinned, start_new_session=True)
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"{name} exited with {self.process.returncode}; see {self.log.name}")
            answer = post(port, path, body)
            if answer is not None:
                if answer[0] != 200:
                    raise SystemExit(f"{name}: first answer {answer[0]}: {answer[1][:300]!r}")
                break
            time.sleep(0.01)
            if time.perf_counter() - started > 120:
                raise SystemExit(f"{name} did not answer within 120 s; see {self.log.name}")
        self.ready_s = time.perf_counter() - started
        self.rss_peak_kb = 0
        self.sample()

    def pids(self):
        return tree(self.process.pid)

    def sample(self):
        """The peak RSS of the server and its children: the sum of each
        process's own peak (VmHWM), and the largest sum of RSS seen."""
        pids = self.pids()
        self.rss_peak_kb = max(self.rss_peak_kb, sum(status_kb(p, "VmHWM") for p in pids))

    def stop(self):
        self.sample()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self.log.close()


# ---------------------------------------------------------------- load


class Load:
    """Keep-alive connections, each sending its next request when the last
    is answered, for `warmup` then `duration` seconds; latencies of the
    answers within the measured window."""

    def __init__(self, port, requests, concurrency, warmup, duration, server):
        self.port, self.requests, self.concurrency = port, requests, concurrency
        self.warmup, self.duration, self.server = warmup, duration, server
        self.latencies, self.errors, self.next = [], [], 0

    def request(self):
        self.next += 1
        return self.requests[self.next % len(self.requests)]

    async def run(self):
        loop = asyncio.get_running_loop()
        load = self
        done = loop.create_future()
        open_connections = [0]

        class Connection(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport, self.buf, self.need, self.head_end = transport, bytearray(), None, 0
                transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                open_connections[0] += 1
                self.fire()

            def fire(self):
                if time.perf_counter() >= load.end:
                    self.transport.close()
                    return
                self.started = time.perf_counter()
                self.transport.write(load.request())

            def data_received(self, data):
                self.buf += data
                while True:
                    if self.need is None:
                        end = self.buf.find(b"\r\n\r\n")
                        if end < 0:
                            return
                        head = bytes(self.buf[:end]).lower()
                        self.status = int(head[9:12])
                        at = head.find(b"content-length:")
                        if at < 0:
                            load.errors.append("an answer without content-length")
                            self.transport.close()
                            return
                        stop = head.find(b"\r\n", at)
                        self.head_end = end + 4
                        self.need = self.head_end + int(head[at + 15:stop if stop > 0 else None])
                    if len(self.buf) < self.need:
                        return
                    now = time.perf_counter()
                    if self.status != 200:
                        load.errors.append(f"{self.status}: {bytes(self.buf[self.head_end:self.need])[:200]!r}")
                    elif load.start <= now <= load.end:
                        load.latencies.append(now - self.started)
                    del self.buf[:self.need]
                    self.need = None
                    self.fire()

            def connection_lost(self, exc):
                open_connections[0] -= 1
                if time.perf_counter() < load.end:
                    load.errors.append(f"connection lost: {exc}")
                if open_connections[0] == 0 and not done.done():
                    done.set_result(None)

        self.start = time.perf_counter() + self.warmup
        self.end = self.start + self.duration
        for _ in range(self.concurrency):
            await loop.create_connection(Connection, "127.0.0.1", self.port)
        # The server's CPU over the measured window; its memory along the way.
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        before = cpu_seconds(self.server.pids()), time.process_time(), time.perf_counter()
        while time.perf_counter() < self.end:
            await asyncio.sleep(min(0.25, max(0.0, self.end - time.perf_counter())))
            self.server.sample()
        server_cpu = cpu_seconds(self.server.pids()) - before[0]
        client_cpu = time.process_time() - before[1]
        window = time.perf_counter() - before[2]
        await asyncio.wait_for(done, 120)
        return server_cpu, client_cpu, window


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def batches(server):
    """gourd's rows and batches so far, from its /metrics; None for other servers."""
    if not server.name.startswith("gourd"):
        return None
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("gourd_serve_batch_size_sum ", "gourd_serve_batch_size_count ")):
            name, value = line.split()
            values[name] = float(value)
    return values["gourd_serve_batch_size_sum"], values["gourd_serve_batch_size_count"]


def window(server, path, bodies, concurrency, warmup, duration):
    """One measured window of load on one server."""
    import uvloop

    requests = [request_bytes(path, body) for body in bodies]
    load = Load(server.port, requests, concurrency, warmup, duration, server)
    before = batches(server)
    server_cpu, client_cpu, elapsed = uvloop.run(load.run())
    after = batches(server)
    return {"latencies": load.latencies, "errors": load.errors, "server_cpu": server_cpu, "client_cpu": client_cpu,
            "elapsed": elapsed, "duration": duration,
            "batches": (after[0] - before[0], after[1] - before[1]) if before else None}


def warmup(args, concurrency):
    """Load before a window is measured: at concurrency 64, long enough for
    the slowest server's queue to fill (MLflow answers in ~1 s there)."""
    return args.warmup * (4 if concurrency >= 64 else 1)


def summary(server, path, concurrency, parts):
    """A row from the windows of one server, endpoint and concurrency."""
    latencies = sorted(x for part in parts for x in part["latencies"])
    errors = [e for part in parts for e in part["errors"]]
    n = len(latencies)
    duration = sum(part["duration"] for part in parts)
    rows_batched = [part["batches"] for part in parts if part["batches"]]
    mean_batch = (sum(b[0] for b in rows_batched) / max(sum(b[1] for b in rows_batched), 1)) if rows_batched else None
    row = {
        "server": server.name,
        "path": path,
        "concurrency": concurrency,
        "requests": n,
        "seconds": duration,
        "windows": len(parts),
        "rps": n / duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if n else float("nan"),
        "server_cpu_ms_per_request": sum(part["server_cpu"] for part in parts) * 1000 / max(n, 1),
        "client_cpu_percent": 100 * sum(part["client_cpu"] for part in parts)
        / max(sum(part["elapsed"] for part in parts), 1e-9),
        "mean_batch_rows": mean_batch,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "load_average": os.getloadavg()[0],
    }
    print(f"  {server.name:38} {path:26} c={concurrency:<3} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:7.2f}  "
          f"p99 {row['p99_ms']:7.2f} ms  server {row['server_cpu_ms_per_request']:.2f} ms CPU/req  "
          f"client {row['client_cpu_percent']:.0f}% CPU  errors {row['errors']}"
          + (f"  mean batch {mean_batch:.1f} rows" if mean_batch else ""), file=sys.stderr)
    return row


# ---------------------------------------------------------------- answers


def probabilities_of(kind, payload):
    answer = json.loads(payload)
    if kind == "oip":
        output = next(o for o in answer["outputs"] if o["name"] == "probabilities")
        return output["data"]
    first = answer["predictions"][0]
    return first["probabilities"] if isinstance(first, dict) else first


def check(server, path, kind, bodies, expected):
    """The server's probabilities for the check inputs against PyTorch's."""
    worst = 0.0
    for body, want in zip(bodies, expected):
        answer = post(server.port, path, body)
        if answer is None or answer[0] != 200:
            raise SystemExit(f"{server.name} {path}: {answer}")
        got = probabilities_of(kind, answer[1])
        worst = max(worst, max(abs(a - b) for a, b in zip(got, want)))
    print(f"  {server.name} {path}: largest difference from PyTorch's probabilities {worst:.2e}", file=sys.stderr)
    return worst


# ---------------------------------------------------------------- report


def goals(rows, ready, args):
    """The serving issue's goals: (goal, measured, PASS/MISS)."""
    by = {(r["server"], r["path"], r["concurrency"]): r for r in rows}
    gourd = lambda c: by[("gourd", "/invocations", c)]  # noqa: E731
    out = []
    for c in CONCURRENCY:
        g, m = gourd(c), by[("mlflow", "/invocations", c)]
        ratio = g["rps"] / m["rps"]
        ok = ratio >= 5 and g["p99_ms"] <= m["p99_ms"]
        out.append((f"≥5× MLflow's throughput at equal or lower p99, concurrency {c}",
                    f"{ratio:.1f}× ({g['rps']:.0f} vs {m['rps']:.0f} req/s); p99 {g['p99_ms']:.2f} vs "
                    f"{m['p99_ms']:.2f} ms", ok))
    g, f = gourd(1), by[("fastapi", "/invocations", 1)]
    out.append(("≥ the FastAPI server's throughput at concurrency 1",
                f"{g['rps'] / f['rps']:.2f}× ({g['rps']:.0f} vs {f['rps']:.0f} req/s)", g["rps"] >= f["rps"]))
    out.append(("ready in under 1 s (launch to first good answer)", f"{ready['gourd']:.2f} s", ready["gourd"] < 1.0))
    b = by[(f"gourd, batch 32, delay {args.batch_delay_ms:g} ms", "/invocations", 64)]
    u = by[("gourd, unbatched (batch 1)", "/invocations", 64)]
    ratio = b["rps"] / u["rps"]
    out.append(("dynamic batching ≥3× the unbatched throughput at concurrency 64",
                f"{ratio:.2f}× ({b['rps']:.0f} vs {u['rps']:.0f} req/s)", ratio >= 3))
    rise = b["p95_ms"] - u["p95_ms"]
    out.append((f"p95 rising by no more than the queue delay ({args.batch_delay_ms:g} ms) with batching",
                f"{rise:+.2f} ms ({b['p95_ms']:.2f} vs {u['p95_ms']:.2f} ms)", rise <= args.batch_delay_ms))
    return out


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    groups = {}
    for r in rows:
        groups.setdefault((r["server"], r["path"]), []).append((r["concurrency"], r["rps"], r["p99_ms"]))
    for (server, endpoint), points in groups.items():
        points.sort()
        label = f"{server} (OIP)" if endpoint.startswith("/v2") else server
        style = {"marker": "o", "label": label}
        if server.startswith("trivial"):
            style.update(color="gray", linestyle="--", marker=".")
        elif len(points) == 1:
            style.update(linestyle="none", marker="s" if "unbatched" in server else "^", markersize=8)
        xs = [p[0] for p in points]
        left.plot(xs, [p[1] for p in points], **style)
        right.plot(xs, [p[2] for p in points], **style)
    for axis, title in ((left, "requests/s"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(list(CONCURRENCY), [str(c) for c in CONCURRENCY])
        axis.set_xlabel("concurrent connections")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle("One 3x32x32 tensor per request, loopback, one core per server")
    fig.tight_layout()
    fig.savefig(path)


def versions():
    import importlib.metadata as md

    return {p: md.version(p) for p in ("torch", "mlflow", "fastapi", "uvicorn", "uvloop")}


def write(rows, ready, rss, diffs, ceiling, forward, verdicts, args, load_start, gourd):
    # A quick run is a smoke test: its numbers stay out of bench/results.
    results = os.path.join(WORK, "quick") if args.quick else os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    gourd_version = subprocess.run([gourd, "--version"], capture_output=True, text=True).stdout.strip()
    meta = {
        "command": "python3 bench/serve.py" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "pinned": not args.no_pin,
        "duration_s": args.duration,
        "warmup_s_per_window": args.warmup,
        "rounds": args.rounds,
        "load_average_before": load_start,
        "load_average_after": os.getloadavg()[0],
        "gourd": gourd_version,
        "python_packages": versions(),
        "python": sys.version.split()[0],
    }
    with open(os.path.join(results, "serve.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "ready_s": ready, "peak_rss_mb": rss,
                   "max_probability_difference": diffs, "client_ceiling_rps": ceiling,
                   "pytorch_forward_ms_per_row": forward,
                   "goals": [{"goal": g, "measured": m, "pass": ok} for g, m, ok in verdicts]}, f, indent=1)
    plot(rows, os.path.join(results, "serve.svg"))
    pv = meta["python_packages"]
    lines = [
        "# Serving: gourd serve, mlflow models serve and a hand-written FastAPI server",
        "",
        f"Measured by `{meta['command']}` on {meta['date']}, {meta['cores']} cores "
        f"(load average {load_start:.1f} before, {meta['load_average_after']:.1f} after: other work shared the "
        f"machine), {gourd_version} (release build with `--features torch`, libtorch 2.11 on the CPU), "
        f"mlflow {pv['mlflow']}, fastapi {pv['fastapi']}, "
        f"uvicorn {pv['uvicorn']} with uvloop {pv['uvloop']}, torch {pv['torch']}, Python {meta['python']}.",
        "",
        "The pumpkin example's CNN (2 conv layers, 3 classes) on one 3x32x32 float tensor per request: a "
        f"{args.body_kb:.0f} KB JSON body `{{\"inputs\": [[...]]}}` to `/invocations` on all three servers (and "
        "the same tensor as an Open Inference Protocol request to gourd). Loopback, keep-alive, an asyncio "
        "raw-HTTP/1.1 client; "
        + ("each server on core 0 with one inference thread, the client on core 1. " if not args.no_pin else
           "no CPU pinning. ")
        + f"All servers stay up; for each concurrency they take turns in {args.rounds} rounds of "
        f"{args.warmup:g} s warm-up ({warmup(args, 64):g} s at concurrency 64) and "
        f"{args.duration / args.rounds:g} s measured ({args.duration:g} s per row), "
        "so that changes in the machine's other work fall on all alike. Server CPU is user + system "
        "time of the server and its children per answered request; the mean batch is gourd's, from its `/metrics` "
        "(rows per model call during the row, warm-up included).",
        "",
        "| server | endpoint | concurrency | requests/s | p50 ms | p95 ms | p99 ms | server CPU ms/request "
        "| client CPU % | mean batch (rows) | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['server']} | `{r['path']}` | {r['concurrency']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} "
                     f"| {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_ms_per_request']:.2f} "
                     f"| {r['client_cpu_percent']:.0f} "
                     f"| {'' if r.get('mean_batch_rows') is None else format(r['mean_batch_rows'], '.1f')} "
                     f"| {r['errors']} |")
    lines += [
        "",
        "| server | launch to first good answer | peak RSS, with children | largest difference from PyTorch |",
        "|---|---:|---:|---:|",
    ]
    for name in ready:
        diff = diffs.get(name)
        lines.append(f"| {name} | {ready[name]:.2f} s | {rss[name]:.0f} MB | "
                     f"{'n/a' if diff is None else f'{diff:.1e}'} |")
    lines += [
        "",
        f"The client's ceiling (against a server that reads each body and answers a fixed one): "
        + ", ".join(f"{ceiling[c]:,.0f} req/s at concurrency {c}" for c in ceiling) + ".",
        "",
        f"The network alone (PyTorch, one thread, on the client's core before the servers start): "
        f"{forward[1]:.3f} ms per row at batch 1, {forward[32]:.3f} ms per row at batch 32.",
        "",
        "## Goals",
        "",
        "| goal | measured | |",
        "|---|---|---|",
    ]
    for goal, measured, ok in verdicts:
        lines.append(f"| {goal} | {measured} | {'PASS' if ok else 'MISS'} |")
    lines += ["", "![requests/s and p99 by concurrency](serve.svg)", ""]
    with open(os.path.join(results, "serve.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1.5 s per measurement (a smoke test, ~2 minutes)")
    parser.add_argument("--duration", type=float, help="seconds measured per row (default 10, --quick 1.5)")
    parser.add_argument("--warmup", type=float,
                        help="seconds of load before each measured window, 4x at concurrency 64 (default 0.5, --quick 0.2)")
    parser.add_argument("--rounds", type=int, help="windows per row, the servers taking turns (default 5, --quick 3)")
    parser.add_argument("--batch-delay-ms", type=float, default=1.0, help="gourd's queue delay when batching")
    parser.add_argument("--gourd", help="a gourd built with the torch feature (default: build it)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers to core 0 and the client to core 1")
    parser.add_argument("--fastapi-server", nargs=2, metavar=("MODEL", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--trivial-server", metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fastapi_server:
        return fastapi_server(args.fastapi_server[0], int(args.fastapi_server[1]))
    if args.trivial_server:
        return trivial_server(int(args.trivial_server))
    if not in_venv():
        ensure_venv()
    args.duration = args.duration or (1.5 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if args.quick else 0.5)
    args.rounds = args.rounds or (3 if args.quick else 5)
    if os.cpu_count() < 2:
        args.no_pin = True
    os.makedirs(WORK, exist_ok=True)
    gourd = build_gourd(args)
    model = pumpkin_model(gourd)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    net, labels, input_shape = torch_network(model)
    mlflow_model = os.path.join(WORK, "mlflow-model")
    export_mlflow(net, input_shape, len(labels), mlflow_model)

    if not args.no_pin:
        os.sched_setaffinity(0, {1})
    forward = forward_cost(net, input_shape)
    rng = np.random.default_rng(7)
    tensors = [rng.standard_normal(input_shape).astype(np.float32) for _ in range(16)]
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(np.stack(tensors[:CHECK_INPUTS]))), dim=1).tolist()
    invocations = [json.dumps({"inputs": [t.tolist()]}).encode() for t in tensors]
    oip = [json.dumps({"inputs": [{"name": "input", "shape": [1, *input_shape], "datatype": "FP32",
                                   "data": t.ravel().tolist()}]}).encode() for t in tensors]
    args.body_kb = len(invocations[0]) / 1000
    oip_path = f"/v2/models/{os.path.basename(model)}/infer"

    load_start = os.getloadavg()[0]
    print(f"load average {load_start:.2f}; {args.duration:g} s per measurement", file=sys.stderr)
    rows, ready, rss, diffs = [], {}, {}, {}
    me = os.path.abspath(__file__)
    gourd_cmd = [gourd, "serve", model, "--threads", "1"]
    batched = f"gourd, batch 32, delay {args.batch_delay_ms:g} ms"
    mlflow_env = {"MLFLOW_TRACKING_URI": f"file://{WORK}/mlruns",
                  "PATH": f"{os.path.join(VENV, 'bin')}:{os.environ.get('PATH', '')}"}
    # (name, command, [(endpoint, body kind)], concurrencies, cwd, env)
    plan = [
        ("trivial (client ceiling)", [sys.executable, me, "--trivial-server", "{port}"],
         [("/invocations", "trivial")], CONCURRENCY, None, None),
        ("gourd", gourd_cmd + ["--port", "{port}"], [("/invocations", "mlflow"), (oip_path, "oip")], CONCURRENCY,
         None, None),
        (batched, gourd_cmd + ["--port", "{port}", "--max-batch-size", "32", "--max-queue-delay-ms",
                               f"{args.batch_delay_ms:g}"], [("/invocations", "mlflow")], (64,), None, None),
        ("gourd, unbatched (batch 1)", gourd_cmd + ["--port", "{port}", "--max-batch-size", "1"],
         [("/invocations", "mlflow")], (64,), None, None),
        ("fastapi", [sys.executable, me, "--fastapi-server", model, "{port}"], [("/invocations", "mlflow")],
         CONCURRENCY, None, None),
        ("mlflow", [os.path.join(VENV, "bin", "mlflow"), "models", "serve", "-m", mlflow_model, "--env-manager",
                    "local", "--host", "127.0.0.1", "--port", "{port}"], [("/invocations", "mlflow")], CONCURRENCY,
         WORK, mlflow_env),
    ]
    servers = {}
    try:
        # Started one at a time (each timed alone), then all kept up, idle
        # but for the one under load.
        for name, cmd, endpoints, _, cwd, env in plan:
            port = free_port()
            cmd = [c.replace("{port}", str(port)) for c in cmd]
            first_path, first_kind = endpoints[0]
            first_body = (oip if first_kind == "oip" else invocations)[0]
            server = Server(name, cmd, port, first_path, first_body, not args.no_pin, cwd=cwd, env=env)
            servers[name] = server
            ready[name] = server.ready_s
            print(f"{name}: first good answer {server.ready_s:.2f} s after launch", file=sys.stderr)
            for path, kind in endpoints:
                if kind != "trivial":
                    bodies = oip if kind == "oip" else invocations
                    diffs[name if path == first_path else f"{name} (OIP)"] = check(
                        server, path, kind, bodies[:CHECK_INPUTS], expected)
        # The servers take turns in short windows, round after round, so
        # that a change in what else runs on the machine falls on all alike.
        for c in CONCURRENCY:
            targets = [(name, path, kind) for name, _, endpoints, concurrencies, _, _ in plan
                       for path, kind in endpoints if c in concurrencies]
            parts = {target: [] for target in targets}
            for _ in range(args.rounds):
                for name, path, kind in targets:
                    bodies = oip if kind == "oip" else invocations
                    parts[(name, path, kind)].append(
                        window(servers[name], path, bodies, c, warmup(args, c), args.duration / args.rounds))
            for name, path, kind in targets:
                rows.append(summary(servers[name], path, c, parts[(name, path, kind)]))
    finally:
        for name, server in servers.items():
            server.stop()
            rss[name] = server.rss_peak_kb / 1024
    order = {name: i for i, (name, *_) in enumerate(plan)}
    rows.sort(key=lambda r: (order[r["server"]], r["path"] != "/invocations", r["concurrency"]))
    ceiling = {r["concurrency"]: r["rps"] for r in rows if r["server"] == "trivial (client ceiling)"}
    verdicts = goals(rows, ready, args)
    write(rows, ready, rss, diffs, ceiling, forward, verdicts, args, load_start, gourd)
    failed = False
    print("", file=sys.stderr)
    for goal, measured, ok in verdicts:
        print(f"{'PASS' if ok else 'MISS'}  {goal}: {measured}", file=sys.stderr)
        failed |= not ok
    for r in rows:
        if r["errors"]:
            print(f"ERROR  {r['server']} {r['path']} c={r['concurrency']}: {r['errors']} failed requests, "
                  f"first: {r['first_error']}", file=sys.stderr)
            failed = True
    for name, diff in diffs.items():
        if diff > TOLERANCE:
            print(f"ERROR  {name}: probabilities differ from PyTorch's by {diff:.2e}", file=sys.stderr)
            failed = True
    busiest = max((r for r in rows if not r["server"].startswith("trivial")), key=lambda r: r["rps"])
    top = ceiling.get(busiest["concurrency"], 0)
    if busiest["rps"] > 0.7 * top:
        print(f"WARNING  {busiest['server']} reached {busiest['rps']:.0f} req/s, over 70% of the client's ceiling "
              f"({top:.0f}): the client may limit it", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
