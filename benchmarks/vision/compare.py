#!/usr/bin/env python3
"""Image-classification speed: ipfs-accelerate vs PyTorch vs onnxruntime on
the CPU, batch 1 and batch 8, in one run: EfficientNet-Lite0 (224x224, real
weights) and/or a ViT-B/16-shaped model with RANDOM weights (224x224, the
google/vit-base-patch16-224 config). Not run in CI.

    scripts/fetch-test-models.sh          # efficientnet-lite0 (+ the .pth it came from)
    cargo build --release -p ipfs-accelerate-models --example vision_bench
    ~/.cache/ipfs-accelerate/bench-venv/bin/python benchmarks/vision/compare.py \
        [--model efficientnet|vit|all] [--batches 1,8] [--iters 10] [--vit-iters 5] [--threads 2]

Measured: images per second of the forward pass alone (a preprocessed
[N, 3, 224, 224] float32 batch in, logits out; decoding, preprocessing and
model loading excluded), median over --iters (ViT: --vit-iters) timed passes
after one warm-up, the engines one after the other.

EfficientNet-Lite0 (--model efficientnet, the default):

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

ViT-B/16 (--model vit): no real ViT checkpoint is reachable offline, so
transformers' ViTForImageClassification(ViTConfig(...)) with the
google/vit-base-patch16-224 shapes (hidden 768, 12 layers, 12 heads,
intermediate 3072, image 224, patch 16, 1000 labels) and random weights
(torch.manual_seed(0), transformers' own initialisation) is saved, when
missing, to --vit-dir (safetensors, plus the ViTImageProcessor defaults as
preprocessor_config.json). A forward pass costs the same FLOPs and memory
traffic whatever the weight values, so its speed is the real model's; its
classes mean nothing (labels LABEL_0..LABEL_999).

- ipfs-accelerate: vision_bench on that directory: ViTModel::load (the model
  ImageClassifier runs), the image preprocessed by our ImageProcessor from
  preprocessor_config.json, ViTModel::forward on the CPU backend.
- PyTorch: ViTForImageClassification.from_pretrained (transformers' default
  attention implementation), float32, eval, no_grad, torch.set_num_threads.
  Input: ViTImageProcessorPil on the same image.
- onnxruntime: that model exported with torch.onnx.export (logits only,
  dynamic batch), as for EfficientNet.

Correctness, ViT: our logits of the batch-1 run and onnxruntime's are
compared with PyTorch's (max abs difference and top-1 class printed).
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
CACHE = pathlib.Path.home() / ".cache/ipfs-accelerate"
MODELS = pathlib.Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS", CACHE / "test-models"))
MODEL_DIR = MODELS / "efficientnet-lite0"
VIT_DIR = CACHE / "bench-models/vit-b16-random"
IMAGE = ROOT / "crates/models/tests/goldens/efficientnet/flower.png"

# google/vit-base-patch16-224's config.json shapes (ViT-B/16 at 224x224, 1000 classes).
VIT_B16 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
               hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
               initializer_range=0.02, layer_norm_eps=1e-12, image_size=224, patch_size=16, num_channels=3,
               qkv_bias=True, num_labels=1000)
VIT_SEED = 0


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


def vit_processor_class():
    """ViTImageProcessorPil (transformers 5, the Pillow backend our
    ImageProcessor reproduces), else ViTImageProcessor (transformers 4)."""
    try:
        from transformers import ViTImageProcessorPil
        return ViTImageProcessorPil
    except ImportError:
        from transformers import ViTImageProcessor
        return ViTImageProcessor


def ensure_vit_model(vit_dir, torch):
    """Writes the random-weight ViT-B/16 to vit_dir unless it is there."""
    vit_dir = pathlib.Path(vit_dir)
    needed = ["config.json", "model.safetensors", "preprocessor_config.json"]
    if all((vit_dir / name).is_file() for name in needed):
        return
    from transformers import ViTConfig, ViTForImageClassification
    print(f"writing a random-weight ViT-B/16 (seed {VIT_SEED}) to {vit_dir}", file=sys.stderr)
    torch.manual_seed(VIT_SEED)
    model = ViTForImageClassification(ViTConfig(**VIT_B16)).eval()
    vit_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(vit_dir, safe_serialization=True)
    vit_processor_class()().save_pretrained(vit_dir)
    (vit_dir / "RANDOM_WEIGHTS.txt").write_text(
        "RANDOM WEIGHTS: ViTForImageClassification with the google/vit-base-patch16-224 shapes, "
        f"torch.manual_seed({VIT_SEED}), written by benchmarks/vision/compare.py for speed "
        "measurements only. Its predictions mean nothing.\n")


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


def onnx_session(module, x1, name, threads, torch):
    """module exported to a temporary ONNX file (dynamic batch) and opened
    with onnxruntime's CPUExecutionProvider; (session, version, tmpdir)."""
    import onnxruntime as ort
    tmp = tempfile.TemporaryDirectory()
    onnx_path = os.path.join(tmp.name, f"{name}.onnx")
    with warnings.catch_warnings():  # the legacy exporter's deprecation and constant-folding notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x1,), onnx_path, input_names=["pixel_values"], output_names=["logits"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    return session, ort.__version__, tmp


def optional_onnx_session(engines, module, x1, name, threads, torch):
    """onnx_session when onnxruntime is among `engines`; on failure a note
    and onnxruntime leaves `engines`, so the others still run.
    (session or None, version or None, tmpdir or None)."""
    if "onnxruntime" not in engines:
        return None, None, None
    try:
        return onnx_session(module, x1, name, threads, torch)
    except Exception as e:  # noqa: BLE001 - report and go on with the others
        print(f"onnxruntime: skipped, {type(e).__name__}: {e}", file=sys.stderr)
        engines.remove("onnxruntime")
        return None, None, None


def run_ours(args, model_dir, n, iters, logits=False):
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    cmd = [args.bench, str(model_dir), args.image, "--batch", str(n), "--iters", str(iters), "--backend", "cpu"]
    if logits:
        cmd.append("--logits")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"vision_bench failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_results(results, batches, as_json):
    print(f"\n{'engine':16} {'batch':>5} {'images/s':>9} {'ms/batch':>9}  top-1")
    for (name, n), (ips, top) in results.items():
        print(f"{name:16} {n:5d} {ips:9.2f} {1e3 * n / ips:9.1f}  {top}")
    print("\nspeed ratios (ours images/s / theirs; > 1: ours is faster):")
    for n in batches:
        ours = results.get(("ipfs-accelerate", n))
        if ours:
            parts = [f"vs {name} {ours[0] / ips:.2f}x" for (name, m), (ips, _) in results.items()
                     if m == n and name != "ipfs-accelerate"]
            print(f"  batch {n}: " + ", ".join(parts))
    if as_json:
        print(json.dumps({f"{name} batch {n}": ips for (name, n), (ips, _) in results.items()}))


def check_bench(args, engines):
    if "ours" in engines and not pathlib.Path(args.bench).is_file():
        print(f"ours: skipped, {args.bench} is missing "
              "(cargo build --release -p ipfs-accelerate-models --example vision_bench)", file=sys.stderr)
        engines.remove("ours")


def bench_efficientnet(args, batches, engines, torch, np):
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

    session, ort_version, _tmp = optional_onnx_session(engines, model, x1, "efficientnet-lite0", args.threads, torch)
    check_bench(args, engines)

    print(f"EfficientNet-Lite0 224x224, {args.threads} threads (cpu count {os.cpu_count()}), "
          f"median of {args.iters} passes after a warm-up")
    print(f"torch {torch.__version__}" + (f", onnxruntime {ort_version}" if session else ""))
    print(f"before: {uptime()}")
    results = {}  # (engine, batch) -> (images/s, top-1 label)
    for n in batches:
        x = x1.repeat(n, 1, 1, 1).contiguous()
        if "ours" in engines:
            out = run_ours(args, args.model_dir, n, args.iters)
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
    print_results(results, batches, args.json)


def logits_only(torch, model):
    """model (a ViTForImageClassification) as a module taking pixel_values
    and returning the logits tensor, for torch.onnx.export and the timing loop."""
    class LogitsOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).logits

    return LogitsOnly().eval()


def bench_vit(args, batches, engines, torch, np):
    ensure_vit_model(args.vit_dir, torch)
    from PIL import Image
    from transformers import ViTForImageClassification
    iters = args.vit_iters
    model = ViTForImageClassification.from_pretrained(args.vit_dir).float().eval()
    module = logits_only(torch, model)
    processor = vit_processor_class().from_pretrained(args.vit_dir)
    x1 = processor(images=Image.open(args.image).convert("RGB"), return_tensors="pt")["pixel_values"].float()
    labels = model.config.id2label
    ref = module(x1)[0]

    session, ort_version, _tmp = optional_onnx_session(engines, module, x1, "vit-b16-random", args.threads, torch)
    check_bench(args, engines)

    attn = getattr(model.config, "_attn_implementation", None)
    print(f"ViT-B/16 224x224 (RANDOM WEIGHTS, seed {VIT_SEED}: google/vit-base-patch16-224 shapes; "
          "speed only, its classes mean nothing)")
    print(f"{args.threads} threads (cpu count {os.cpu_count()}), median of {iters} passes after a warm-up")
    print(f"torch {torch.__version__} (attention: {attn})"
          + (f", onnxruntime {ort_version}" if session else ""))
    print(f"before: {uptime()}")
    results = {}  # (engine, batch) -> (images/s, top-1 label)
    checks = []
    for n in batches:
        x = x1.repeat(n, 1, 1, 1).contiguous()
        if "ours" in engines:
            out = run_ours(args, args.vit_dir, n, iters, logits=(n == batches[0]))
            results[("ipfs-accelerate", n)] = (out["images_per_second"], out.get("top1"))
            if "logits" in out:
                ours = torch.tensor(out["logits"], dtype=torch.float32)
                checks.append(("ipfs-accelerate", (ours - ref).abs().max().item(), labels[int(ours.argmax())]))
        if "pytorch" in engines:
            seconds = timed(lambda: module(x), iters)
            results[("pytorch", n)] = (n / seconds, labels[int(module(x)[0].argmax())])
        if session is not None:
            xn = x.numpy()
            seconds = timed(lambda: session.run(None, {"pixel_values": xn}), iters)
            first = torch.from_numpy(session.run(None, {"pixel_values": xn})[0][0])
            results[("onnxruntime", n)] = (n / seconds, labels[int(first.argmax())])
            if n == batches[0]:
                checks.append(("onnxruntime", (first - ref).abs().max().item(), labels[int(first.argmax())]))
    print(f"after:  {uptime()}")
    top2 = ref.topk(2).values
    print(f"\ncheck against PyTorch's logits of the first image (PyTorch top-1 {labels[int(ref.argmax())]}, "
          f"margin to the 2nd {float(top2[0] - top2[1]):.4f}, logits range "
          f"{float(ref.min()):.3f}..{float(ref.max()):.3f}):")
    for name, diff, top in checks:
        print(f"  {name:16} max abs diff {diff:.2e}, top-1 {top}")
    print_results(results, batches, args.json)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["efficientnet", "vit", "all"], default="efficientnet")
    p.add_argument("--model-dir", default=str(MODEL_DIR), help="converted EfficientNet-Lite0 directory (ours)")
    p.add_argument("--vit-dir", default=str(VIT_DIR),
                   help="the random-weight ViT-B/16 directory (written when missing)")
    p.add_argument("--bench", default=str(ROOT / "target/release/examples/vision_bench"))
    p.add_argument("--image", default=str(IMAGE))
    p.add_argument("--batches", default="1,8")
    p.add_argument("--iters", type=int, default=10, help="timed passes (EfficientNet)")
    p.add_argument("--vit-iters", type=int, default=5, help="timed passes (ViT)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engines", default="ours,pytorch,onnxruntime")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    engines = lambda: [e.strip() for e in args.engines.split(",") if e.strip()]  # noqa: E731
    if args.model in ("efficientnet", "all"):
        bench_efficientnet(args, batches, engines(), torch, np)
    if args.model == "all":
        print()
    if args.model in ("vit", "all"):
        bench_vit(args, batches, engines(), torch, np)


if __name__ == "__main__":
    main()
