#!/usr/bin/env python3
"""uvtrain against PyTorch, side by side in one run, on one device (issue 6).

For every model it trains the dense and the predicted network with uvtrain, then the same networks
with PyTorch, for the same epochs, batch size and data, on the same device and thread count, and
prints one table: ms per step, samples/s, seconds per epoch, peak memory, final training loss, test
accuracy, and uvtrain's speed-up over each PyTorch version.

PyTorch versions (each in its own process, so peak memory is its own):
  eager    dense layers are nn.Linear; a predicted layer is what a PyTorch user would write: a fixed
           U buffer and a learned V, forward (x @ U) @ V + b, the column-norm bound applied after
           each step. U is read from uvtrain's checkpoint of the same run, so both learn the same
           function class and their accuracies compare.
  compile  the eager model through torch.compile, where the installed torch has it (2.0 and later;
           Debian's python3-torch 1.13 does not, and the table says so).
Both train as a PyTorch user would: the data set resident as one tensor on the device, a fresh
permutation per epoch, torch.optim.SGD with the config's lr, momentum and weight decay, and the
config's per-minibatch lr decay.

For the predicted network uvtrain also runs with every predicted layer `materialise` (W = U·V
formed, no projected input): the memory baseline of issue 6. The line under each predicted model
gives uvtrain's memory against it three ways: the peak (device pool on cuda, process RSS on the
CPU), the pool's peak less the data set both hold alike, and the summary's memory account.

Times are the median epoch (training only: evaluation is outside it), so a first epoch that pays for
start-up or compilation does not count once there are three or more epochs.

  bench/peers.py                               # CPU: all models, 2 threads
  bench/peers.py --device cuda --uvtrain gpu-bundle/bin/uvtrain
  bench/peers.py --models mnist-b100 --epochs 2 --json docs/peers-cpu.json
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name → the two uvtrain configs, batch size, default epochs and training-set limit per device.
# The wide MLP's dense version costs ~32 GFLOP a step: on a 2-core CPU it runs on 5,000 images.
MODELS = {
    "mnist-b100": {"dense": "models/mnist_mlp_dense.json", "predicted": "models/mnist_mlp.json",
                   "batch": 100, "epochs": 3, "train_limit": {"cpu": 0, "cuda": 0}},
    "mnist-b1024": {"dense": "models/mnist_mlp_dense.json", "predicted": "models/mnist_mlp.json",
                    "batch": 1024, "epochs": 3, "train_limit": {"cpu": 0, "cuda": 0}},
    "wide": {"dense": "models/wide_mlp_dense.json", "predicted": "models/wide_mlp.json",
             "batch": 100, "epochs": 3, "train_limit": {"cpu": 5000, "cuda": 0}},
}


def fail(message):
    print(f"bench/peers.py: error: {message}", file=sys.stderr)
    sys.exit(2)


# ---- uvtrain ------------------------------------------------------------------------------------

def run_uvtrain(args, config, batch, epochs, train_limit, out, extra=()):
    command = [args.uvtrain, "train", "--config", os.path.join(ROOT, config), "--device", args.device,
               "--epochs", str(epochs), "--out", out, "--set", f"train.batch_size={batch}",
               "--set", f"data.train_limit={train_limit}", "--set", "checkpoint.every_steps=0", *extra]
    for setting in args.uvtrain_set:
        command += ["--set", setting]
    if args.data_dir:
        command += ["--set", f"data.dir={args.data_dir}"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"uvtrain failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    epochs_rows = []
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") == "epoch":
                epochs_rows.append(row)
    memory = summary["memory_bytes"]
    peak = memory.get("backend_peak_allocated") if args.device == "cuda" else memory.get("process_peak_rss")
    # The training state's own peak: the backend pool's, less the data set both strategies hold
    # alike (resident images, the projected input T = X·U, the batch staging buffer).
    model_peak = memory.get("backend_peak_allocated", 0) - sum(
        memory.get(k, 0) for k in ("data_resident", "data_projected", "batch_staging"))
    return {"epoch_seconds": [r["seconds"] for r in epochs_rows], "steps": summary["steps"],
            "final_loss": epochs_rows[-1]["train_loss"], "test_error": summary["test_error"],
            "peak_bytes": peak, "model_peak_bytes": model_peak, "account_bytes": memory.get("total")}


def materialise_overrides(run_dir):
    """--set arguments that run every predicted layer of run_dir's config as `materialise`."""
    with open(os.path.join(run_dir, "config.json")) as f:
        layers = json.load(f)["model"]["layers"]
    extra = ["--set", "train.project_input=off"]
    for i, layer in enumerate(layers):
        if layer.get("type", "").startswith("predicted"):
            extra += ["--set", f"model.layers[{i}].strategy=materialise"]
    return extra


# ---- PyTorch ------------------------------------------------------------------------------------

def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return data[4 + 4 * ndim:], dims


def load_dataset(torch, config, device):
    d = config["data"]
    name = d["dataset"]
    if name == "mnist":
        directory = d["dir"] or os.path.join(ROOT, "data/mnist")
        files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"]
    elif name == "fashion":
        directory = d["dir"] or "/usr/share/datasets/fashion-mnist"
        files = [f + ".gz" for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]]
    else:
        fail(f"the PyTorch peer reads mnist and fashion, not '{name}'")
    sets = []
    for images, labels, limit in ((files[0], files[1], d["train_limit"]), (files[2], files[3], d["test_limit"])):
        raw, dims = read_idx(os.path.join(directory, images))
        x = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(dims[0], -1).float().div_(255.0)
        raw, _ = read_idx(os.path.join(directory, labels))
        y = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
        if limit:
            x, y = x[:limit], y[:limit]
        sets.append((x.contiguous().to(device), y.to(device)))
    return sets


def read_safetensors(torch, path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(blob[begin:end]), dtype=torch.float32).reshape(info["shape"])
    return tensors


def build_torch_model(torch, config, checkpoint, device):
    nn = torch.nn

    class Predicted(nn.Module):
        """W = U·V with U fixed: y = (x @ U) @ V + b, J columns as one batched product."""

        def __init__(self, U, columns, units, scale):
            super().__init__()
            self.register_buffer("U", U.clone())               # K × (J·r), fixed
            r = U.shape[1] // columns
            self.columns, self.r = columns, r
            self.V = nn.Parameter(torch.empty(columns, r, units // columns).uniform_(-scale, scale))
            self.b = nn.Parameter(torch.zeros(units))

        def forward(self, x):
            t = x @ self.U                                      # M × J·r
            if self.columns == 1:
                return t @ self.V[0] + self.b
            t = t.view(x.shape[0], self.columns, self.r).transpose(0, 1)  # J × M × r
            return torch.bmm(t, self.V).transpose(0, 1).reshape(x.shape[0], -1) + self.b

    activations = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}
    layers, normed, width = [], [], None
    width = 784
    for i, lc in enumerate(config["model"]["layers"]):
        name = f"layer{i + 1}"
        scale = lc["init_scale"]
        if lc["type"] == "dense":
            linear = nn.Linear(width, lc["units"])
            with torch.no_grad():
                linear.weight.uniform_(-scale, scale)
                linear.bias.zero_()
            layers.append(linear)
        elif lc["type"] == "predicted_dense":
            layer = Predicted(checkpoint[f"{name}.U"], lc["columns"], lc["units"], scale)
            layers.append(layer)
            normed.append(layer.V)
        else:
            fail(f"the PyTorch peer builds dense and predicted_dense layers, not '{lc['type']}'")
        layers.append(activations[lc["activation"]]())
        width = lc["units"]
    return nn.Sequential(*layers).to(device), normed


def torch_worker(args):
    import torch
    torch.set_num_threads(args.torch_intra)
    torch.manual_seed(1)
    device = torch.device(args.device)
    with open(os.path.join(args.torch_worker, "config.json")) as f:
        config = json.load(f)
    checkpoint = read_safetensors(torch, os.path.join(args.torch_worker, "checkpoint.safetensors"))
    (x_train, y_train), (x_test, y_test) = load_dataset(torch, config, device)
    model, normed = build_torch_model(torch, config, checkpoint, device)
    train = config["train"]
    optimizer = torch.optim.SGD(model.parameters(), lr=train["lr"], momentum=train["momentum"],
                                weight_decay=train["weight_decay"])
    max_norm = train["max_col_norm"]
    forward = model
    if args.mode == "compile":
        forward = torch.compile(model)
    loss_fn = torch.nn.functional.cross_entropy
    batch, n = train["batch_size"], x_train.shape[0]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    epoch_seconds, steps, final_loss = [], 0, float("nan")
    for epoch in range(args.epochs):
        sync()
        t0 = time.perf_counter()
        order = torch.randperm(n, device=device)
        loss_sum = torch.zeros((), device=device)
        for begin in range(0, n, batch):
            index = order[begin:begin + batch]
            xb, yb = x_train[index], y_train[index]
            loss = loss_fn(forward(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                if max_norm > 0:
                    for v in normed:                            # columns of V: norm ≤ max_norm
                        v.mul_(torch.clamp(max_norm / v.norm(dim=1, keepdim=True).clamp_min(1e-12), max=1.0))
                loss_sum += loss.detach() * xb.shape[0]
            for group in optimizer.param_groups:
                group["lr"] /= train["lr_decay"]
            steps += 1
        sync()
        epoch_seconds.append(time.perf_counter() - t0)
        final_loss = loss_sum.item() / n
    with torch.no_grad():
        wrong = sum(int((forward(x_test[i:i + 1000]).argmax(1) != y_test[i:i + 1000]).sum())
                    for i in range(0, x_test.shape[0], 1000))
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"epoch_seconds": epoch_seconds, "steps": steps, "final_loss": final_loss,
                      "test_error": wrong / x_test.shape[0], "peak_bytes": peak,
                      "torch": torch.__version__}))


def run_torch(args, run_dir, mode, epochs):
    command = [sys.executable, os.path.abspath(__file__), "--torch-worker", run_dir, "--mode", mode,
               "--device", args.device, "--threads", str(args.threads), "--epochs", str(epochs)]
    intra, blas = (1, args.threads) if args.torch_threads == "blas" else (args.threads, 1)
    command += ["--torch-intra", str(intra)]
    env = dict(os.environ, OMP_NUM_THREADS=str(intra), OPENBLAS_NUM_THREADS=str(blas))
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return {"skipped": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- the table ----------------------------------------------------------------------------------

def row_figures(result, batch):
    seconds = statistics.median(result["epoch_seconds"])
    steps_per_epoch = result["steps"] / len(result["epoch_seconds"])
    samples = steps_per_epoch * batch
    return {"epoch_s": seconds, "ms_per_step": 1e3 * seconds / steps_per_epoch,
            "samples_per_s": samples / seconds, "peak_mib": (result["peak_bytes"] or 0) / 2**20,
            "final_loss": result["final_loss"], "test_accuracy": 1 - result["test_error"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="OpenBLAS and PyTorch threads (CPU)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--epochs", type=int, default=0, help="epochs per run (default: the model's)")
    parser.add_argument("--train-limit", type=int, default=-1,
                        help="training images per epoch (default: the model's; a smoke test uses a few hundred)")
    parser.add_argument("--data-dir", default="", help="the data set's directory (default: the config's)")
    parser.add_argument("--uvtrain", default=os.path.join(ROOT, "build/uvtrain"))
    parser.add_argument("--json", help="write every row here")
    parser.add_argument("--uvtrain-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every uvtrain run, e.g. train.gemm=cublaslt (repeatable)")
    parser.add_argument("--torch-threads", choices=["blas", "intra"], default="blas",
                        help="CPU: give the threads to the BLAS PyTorch calls (intra-op 1) or to "
                             "PyTorch's own intra-op pool (BLAS 1); both together oversubscribe")
    parser.add_argument("--torch-worker", help=argparse.SUPPRESS)
    parser.add_argument("--torch-intra", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="eager", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    if args.threads < 1:
        fail(f"--threads must be at least 1, got {args.threads}")
    names = [m for m in args.models.split(",") if m]
    for m in names:
        if m not in MODELS:
            fail(f"unknown model '{m}' in --models (known: {', '.join(MODELS)})")
    for setting in args.uvtrain_set:
        if "=" not in setting:
            fail(f"--uvtrain-set takes KEY=VALUE, got '{setting}'")
    if not os.access(args.uvtrain, os.X_OK):
        fail(f"no uvtrain executable at {args.uvtrain} (build it with `make build`)")

    rows = []
    header = (f"{'model':12} {'network':9} {'implementation':16} {'ms/step':>8} {'samples/s':>10} "
              f"{'s/epoch':>8} {'peak MiB':>9} {'loss':>7} {'test acc':>8} {'uvtrain speed-up':>16}")
    print(f"device {args.device}, {args.threads} threads; median epoch of each run")
    print(header)
    with tempfile.TemporaryDirectory(prefix="uvtrain-peers-") as tmp:
        for name in names:
            spec = MODELS[name]
            epochs = args.epochs or spec["epochs"]
            for network in ("dense", "predicted"):
                out = os.path.join(tmp, f"{name}-{network}")
                limit = spec["train_limit"][args.device] if args.train_limit < 0 else args.train_limit
                uv = run_uvtrain(args, spec[network], spec["batch"], epochs, limit, out)
                results = [("uvtrain", uv)]
                if network == "predicted":  # the same net with W materialised: the memory baseline
                    results.append(("uvtrain material.", run_uvtrain(
                        args, spec[network], spec["batch"], epochs, limit, out + "-materialise",
                        materialise_overrides(out))))
                results += [(f"torch {mode}", run_torch(args, out, mode, epochs)) for mode in ("eager", "compile")]
                uv_figures = row_figures(uv, spec["batch"])
                for impl, result in results:
                    row = {"model": name, "network": network, "implementation": impl, "device": args.device,
                           "threads": args.threads, "batch": spec["batch"], "epochs": epochs}
                    if "skipped" in result:
                        row["skipped"] = result["skipped"]
                        print(f"{name:12} {network:9} {impl:16} skipped: {result['skipped']}")
                    else:
                        f = row_figures(result, spec["batch"])
                        row.update(f)
                        row["uvtrain_speedup"] = f["epoch_s"] / uv_figures["epoch_s"]
                        if "torch" in result:
                            row["torch_version"] = result["torch"]
                        for key in ("model_peak_bytes", "account_bytes"):
                            if result.get(key) is not None:
                                row[key.replace("_bytes", "_mib")] = result[key] / 2**20
                        speedup = "" if impl == "uvtrain" else f"{row['uvtrain_speedup']:.2f}x"
                        print(f"{name:12} {network:9} {impl:16} {f['ms_per_step']:8.2f} {f['samples_per_s']:10.0f} "
                              f"{f['epoch_s']:8.2f} {f['peak_mib']:9.1f} {f['final_loss']:7.4f} "
                              f"{100 * f['test_accuracy']:7.2f}% {speedup:>16}")
                    rows.append(row)
                    sys.stdout.flush()
                if network == "predicted":
                    auto, mat = uv, results[1][1]
                    ratio = {k: auto[k] / mat[k] for k in ("peak_bytes", "model_peak_bytes", "account_bytes")
                             if auto.get(k) and mat.get(k)}
                    rows[-len(results)]["vs_materialise"] = ratio
                    print(f"{'':12} {'':9} uvtrain against its materialise run: peak "
                          f"{100 * ratio.get('peak_bytes', float('nan')):.1f}%, training state's pool peak "
                          f"(less the data set) {100 * ratio.get('model_peak_bytes', float('nan')):.1f}%, "
                          f"memory account {100 * ratio.get('account_bytes', float('nan')):.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
