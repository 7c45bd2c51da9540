"""gourd's built-in `train` step, written as a PyTorch script.

    python train_torch.py CONFIG [--device cpu|cuda]

CONFIG is the same JSON file `gourd-step train CONFIG` reads (dataset, output,
model, lr, epochs, batch_size, optimizer, momentum, weight_decay, seed,
threads), and the script does what engine/torch/src/train.rs does, operation
for operation: the layers built in the same order with tch's initialisation
(Kaiming-uniform weights, zero conv biases, uniform linear biases, batch-norm
weights uniform in [0, 1)) drawn from the same seeded generator, a new
`randperm` each epoch, `index_select` batches, cross-entropy, the optimiser's
zero_grad/backward/step, and the loss and accuracy read back after every
batch. It writes `model.safetensors` under the names tch uses (`layerN.weight`)
and the same `model.json`, so `gourd-step evaluate` scores both models the
same way. On the CPU, with the same seed and threads, it gives gourd's losses
to the last printed digit.

Its log lines are gourd's: `train: on DEVICE`, `train: first step after S s`,
`epoch E/N: loss L, train accuracy A (Ss)`; bench/train.py times them as they
arrive. It reads the dataset with the `safetensors` package, or with the few
lines below where that package is missing (a GPU machine with only torch).
"""

import time

BEGUN = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def read_safetensors(path):
    try:
        from safetensors.torch import load_file
    except ImportError:
        with open(path, "rb") as f:
            data = f.read()
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + length])
        body = bytearray(data[8 + length :])
        tensors = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            dtype = DTYPES[info["dtype"]]
            flat = torch.frombuffer(body, dtype=dtype, count=(end - start) // dtype.itemsize, offset=start)
            tensors[name] = flat.reshape(info["shape"]).clone()
        return tensors
    return load_file(path)


def write_safetensors(tensors, path):
    try:
        from safetensors.torch import save_file
    except ImportError:
        names = {v: k for k, v in DTYPES.items()}
        header, chunks, offset = {}, [], 0
        for name, t in tensors.items():
            raw = bytes(t.contiguous().cpu().view(torch.uint8).reshape(-1).tolist())
            header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
            chunks.append(raw)
            offset += len(raw)
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        with open(path, "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text + b"".join(chunks))
        return
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)


def build(layers, input_shape):
    """nn.Sequential named like gourd's VarStore (`layer0`, `layer1`, ...)."""
    modules, shape = OrderedDict(), list(input_shape)
    for i, layer in enumerate(layers):
        kind = layer["type"]
        if kind == "conv2d":
            k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("padding", 0)
            module = nn.Conv2d(shape[0], layer["out"], k, stride=s, padding=p)
            shape = [layer["out"], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
        elif kind == "relu":
            module = nn.ReLU()
        elif kind == "maxpool2d":
            k = layer["kernel"]
            s = layer.get("stride", k)
            module = nn.MaxPool2d(k, stride=s, padding=0, dilation=1, ceil_mode=False)
            shape = [shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1]
        elif kind == "flatten":
            module = nn.Flatten(1, -1)
            shape = [math.prod(shape)]
        elif kind == "linear":
            module = nn.Linear(shape[0], layer["out"])
            shape = [layer["out"]]
        elif kind == "dropout":
            module = nn.Dropout(layer.get("p", 0.5))
        elif kind == "batchnorm":
            norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            module = norm(shape[0], eps=1e-5, momentum=0.1, affine=True)
        else:
            raise SystemExit(f"error: layer {i + 1}: unknown layer type `{kind}`")
        modules[f"layer{i}"] = module
    return nn.Sequential(modules)


@torch.no_grad()
def init_like_tch(net):
    """tch's defaults, drawn in the order tch creates the variables."""
    for module in net:
        if isinstance(module, nn.Conv2d):  # bias (constant 0), then weight
            module.bias.zero_()
            fan_in = module.weight[0].numel()
            bound = math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(fan_in)
            module.weight.uniform_(-bound, bound)
        elif isinstance(module, nn.Linear):  # bias, then weight
            bound = 1.0 / math.sqrt(module.in_features)
            module.bias.uniform_(-bound, bound)
            bound = math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(module.in_features)
            module.weight.uniform_(-bound, bound)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):  # weight, then bias (constant 0)
            module.weight.uniform_(0.0, 1.0)
            module.bias.zero_()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but PyTorch sees no CUDA device")
    device = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    print(f"train: on {'cuda:0' if args.device == 'cuda' else 'cpu'}", file=sys.stderr, flush=True)
    torch.set_num_threads(max(1, config.get("threads", 1)))
    seed = config.get("seed", 0)
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)

    folder = config["dataset"]
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = read_safetensors(os.path.join(folder, "dataset.safetensors"))
    train_x = tensors["train_x"].float().to(device)
    train_y = tensors["train_y"].long().to(device)

    size = manifest["size"]
    net = build(config["model"], [3, size, size]).to(device)
    # The modules drew their own defaults; draw tch's from the seeded state
    # gourd has at this point (nothing drew since the seed).
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    init_like_tch(net)
    net.train()

    lr, wd = config["lr"], config.get("weight_decay", 0.0)
    optimizer = config.get("optimizer", "adam")
    if optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=config.get("momentum", 0.9), weight_decay=wd)
    else:
        raise SystemExit(f"error: unknown optimizer `{optimizer}` (adam, sgd)")

    n = train_y.shape[0]
    batch, epochs = config.get("batch_size", 32), config["epochs"]
    first = True
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(n, dtype=torch.int64, device=device)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, batch):
            length = min(batch, n - start)
            index = order.narrow(0, start, length)
            x = train_x.index_select(0, index)
            y = train_y.index_select(0, index)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * length
            correct += int((logits.argmax(-1) == y).sum().item())
            if first:
                first = False
                print(f"train: first step after {time.perf_counter() - BEGUN:.3f}s", file=sys.stderr, flush=True)
        seconds = time.perf_counter() - started
        print(
            f"epoch {epoch}/{epochs}: loss {loss_sum / n:.4f}, train accuracy {correct / n:.3f} ({seconds:.2f}s)",
            file=sys.stderr,
            flush=True,
        )

    out = config["output"]
    os.makedirs(out, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    write_safetensors(state, os.path.join(out, "model.safetensors"))
    description = {
        "layers": config["model"],
        "input": [3, size, size],
        "labels": manifest["labels"],
        "optimizer": optimizer,
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch,
        "seed": seed,
        "step_version": 1,
    }
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(description, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
