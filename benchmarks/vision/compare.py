#!/usr/bin/env python3
"""Image-classification speed: ipfs-accelerate vs PyTorch vs onnxruntime,
EfficientNet-Lite0 at 224x224 on the CPU, batch 1 and batch 8, in one run.
Not run in CI.

    scripts/fetch-test-models.sh          # efficientnet-lite0 (+ the .pth it came from)
    cargo build --release -p ipfs-accelerate-models --example vision_bench
    ~/.cache/ipfs-accelerate/bench-venv/bin/python benchmarks/vision/compare.py [--batches 1,8] [--iters 10] [--threads 2]

Measured: images per second of the forward pass alone (a preprocessed
[N, 3, 224, 224] float32 batch in, logits out; decoding, preprocessing and
model loading excluded), median over --iters timed passes after one warm-up,
the engines one after the other.

- ipfs-accelerate: target/release/examples/vision_bench (crates/models/
  examples/vision_bench.rs) loads the converted directory (batch norm folded
  into the convolutions) with EfficientNet::load on the CPU backend and times
  EfficientNetLite::forward; RAYON_NUM_THREADS=--threads.
- PyTorch: the EfficientNetLite0 module of scripts/make-efficientnet-goldens.py
  (imported, not copied) with the original .pth, float32, eval, no_grad,
  torch.set_num_threads(--threads). Batch norm is folded into the preceding
  convolutions first (as ours and onnxruntime's graph optimizer do), and the
  folded logits are checked against the unfolded module.
- onnxruntime: that folded module exported with torch.onnx.export (dynamic
  batch) to a temporary file, CPUExecutionProvider, all graph optimizations,
  intra_op_num_threads=--threads, inter_op 1.

The input is flower.png (a committed golden) preprocessed by our
ImageProcessor's Python twin in the goldens script, repeated N times; the top-1
class of each engine is printed as a check.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = pathlib.Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS",
                                     pathlib.Path.home() / ".cache/ipfs-accelerate/test-models"))
MODEL_DIR = MODELS / "efficientnet-lite0"
IMAGE = ROOT / "crates/models/tests/goldens/efficientnet/flower.png"


def goldens_module():
    """scripts/make-efficientnet-goldens.py, imported (it has a hyphenated name)."""
    path = ROOT / "scripts/make-efficientnet-goldens.py"
    spec = importlib.util.spec_from_file_location("make_efficientnet_goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fold_batch_norms(model, torch):
    """Folds each BatchNorm2d into the SameConv before it (the pairs of the
    goldens module: _conv_stem/_bn0, _conv_head/_bn1, and per block
    _expand_conv/_bn0, _depthwise_conv/_bn1, _project_conv/_bn2)."""
    def fold(owner, conv_name, bn_name):
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.data = conv.weight.data * scale.reshape(-1, 1, 1, 1)
        conv.bias = torch.nn.Parameter(bn.bias - bn.running_mean * scale)
        setattr(owner, bn_name, torch.nn.Identity())

    with torch.no_grad():
        fold(model, "_conv_stem", "_bn0")
        fold(model, "_conv_head", "_bn1")
        for block in model._blocks:
            if block.expand:
                fold(block, "_expand_conv", "_bn0")
            fold(block, "_depthwise_conv", "_bn1")
            fold(block, "_project_conv", "_bn2")
    return model


def timed(fn, iters):
    fn()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", default=str(MODEL_DIR), help="converted directory (ours)")
    p.add_argument("--bench", default=str(ROOT / "target/release/examples/vision_bench"))
    p.add_argument("--image", default=str(IMAGE))
    p.add_argument("--batches", default="1,8")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engines", default="ours,pytorch,onnxruntime")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    g = goldens_module()
    if not pathlib.Path(g.PTH).is_file():
        sys.exit(f"{g.PTH} is missing: run scripts/fetch-test-models.sh")
    with open(pathlib.Path(args.model_dir) / "config.json") as f:
        labels = json.load(f)["id2label"]
    x1 = g.preprocess(args.image, 127.0, 128.0).float()[None]

    reference = g.EfficientNetLite0().eval()
    reference.load_state_dict(torch.load(g.PTH, map_location="cpu", weights_only=True), strict=True)
    ref_logits = reference(x1)
    model = fold_batch_norms(reference, torch)
    diff = (model(x1) - ref_logits).abs().max().item()
    if diff > 1e-3:
        sys.exit(f"folding the batch norms changed the logits by {diff}")

    session = None
    if "onnxruntime" in engines:
        try:
            import onnxruntime as ort
            tmp = tempfile.TemporaryDirectory()
            onnx_path = os.path.join(tmp.name, "efficientnet-lite0.onnx")
            with warnings.catch_warnings():  # the legacy exporter's deprecation and constant-folding notes
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x1,), onnx_path, input_names=["pixel_values"], output_names=["logits"],
                                  dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
            ort_version = ort.__version__
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            print(f"onnxruntime: skipped, {type(e).__name__}: {e}", file=sys.stderr)
            engines.remove("onnxruntime")
    if "ours" in engines and not pathlib.Path(args.bench).is_file():
        print(f"ours: skipped, {args.bench} is missing "
              "(cargo build --release -p ipfs-accelerate-models --example vision_bench)", file=sys.stderr)
        engines.remove("ours")

    print(f"EfficientNet-Lite0 224x224, {args.threads} threads (cpu count {os.cpu_count()}), "
          f"median of {args.iters} passes after a warm-up")
    print(f"torch {torch.__version__}" + (f", onnxruntime {ort_version}" if session else ""))
    print(f"before: {uptime()}")
    results = {}  # (engine, batch) -> (images/s, top-1 label)
    for n in batches:
        x = x1.repeat(n, 1, 1, 1).contiguous()
        if "ours" in engines:
            env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
            proc = subprocess.run([args.bench, args.model_dir, args.image, "--batch", str(n), "--iters",
                                   str(args.iters), "--backend", "cpu"], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.exit(f"vision_bench failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            results[("ipfs-accelerate", n)] = (out["images_per_second"], out.get("top1"))
        if "pytorch" in engines:
            seconds = timed(lambda: model(x), args.iters)
            top = labels[str(int(model(x)[0].argmax()))]
            results[("pytorch", n)] = (n / seconds, top)
        if session is not None:
            xn = x.numpy()
            seconds = timed(lambda: session.run(None, {"pixel_values": xn}), args.iters)
            top = labels[str(int(np.argmax(session.run(None, {"pixel_values": xn})[0][0])))]
            results[("onnxruntime", n)] = (n / seconds, top)
    print(f"after:  {uptime()}")

    print(f"\n{'engine':16} {'batch':>5} {'images/s':>9} {'ms/batch':>9}  top-1")
    for (name, n), (ips, top) in results.items():
        print(f"{name:16} {n:5d} {ips:9.1f} {1e3 * n / ips:9.1f}  {top}")
    print("\nspeed ratios (ours images/s / theirs; > 1: ours is faster):")
    for n in batches:
        ours = results.get(("ipfs-accelerate", n))
        if ours:
            parts = [f"vs {name} {ours[0] / ips:.2f}x" for (name, m), (ips, _) in results.items()
                     if m == n and name != "ipfs-accelerate"]
            print(f"  batch {n}: " + ", ".join(parts))
    if args.json:
        print(json.dumps({f"{name} batch {n}": ips for (name, n), (ips, _) in results.items()}))


if __name__ == "__main__":
    main()
