#!/usr/bin/env python3
"""Text-generation speed: ipfs-accelerate vs llama.cpp (llama-cpp-python) vs
transformers, on the same GGUF, the same prompt and the same number of new
tokens, greedy, in one run. Not run in CI.

    scripts/fetch-test-models.sh
    cargo build --release -p ipfs-accelerate
    python3 benchmarks/llm/compare.py --setup        # once: makes ~/.cache/ipfs-accelerate/bench-venv
    ~/.cache/ipfs-accelerate/bench-venv/bin/python benchmarks/llm/compare.py [--max-tokens 64] [--rounds 3]

Each engine is measured `--rounds` times after one warm-up, engines
interleaved, and the median is reported:

- prefill tokens/s: prompt tokens / time to run the prompt through the model
  and get the first new token's logits;
- decode tokens/s: new tokens after the first / time spent producing them
  (one forward pass per token with the KV cache).

ipfs-accelerate is run as `ipfs-accelerate generate --model GGUF --json
--greedy --max-tokens N PROMPT` and reports its own prefill/decode rates
(fields prefill_tokens_per_second, decode_tokens_per_second). Where those
fields are missing, decode is estimated from wall-clock times of a run with N
tokens and a run with 1 token ((t_N - t_1) / (N - 1), which cancels model
loading), and prefill is shown as n/a. llama.cpp runs with n_threads =
os.cpu_count(); transformers loads the GGUF dequantized to float32, with
torch threads = os.cpu_count(). Both are fed the prompt ids transformers'
tokenizer produces (the GGUF adds no BOS). Engines whose packages are
missing are skipped with a note.
"""
import argparse
import inspect
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = pathlib.Path.home() / ".cache/ipfs-accelerate/bench-venv"
MODELS = pathlib.Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS",
                                     pathlib.Path.home() / ".cache/ipfs-accelerate/test-models"))
DEFAULT_MODEL = MODELS / "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_PROMPT = (
    "Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker "
    "who repaired every clock in the valley. One winter morning a stranger arrived with a clock that "
    "had no hands, and asked him to make it tell the time again. The clockmaker looked at it for a long "
    "while, and then he said"
)
PACKAGES = ["llama-cpp-python", "torch", "transformers", "gguf", "accelerate", "numpy"]


def setup():
    """Creates the bench venv and installs the reference engines from PyPI."""
    if not (VENV / "bin/python").exists():
        print(f"creating {VENV}")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        except subprocess.CalledProcessError:
            sys.exit("python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)")
    pip = [str(VENV / "bin/python"), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    # llama-cpp-python builds llama.cpp from source (cmake and a C++ compiler;
    # ~10 minutes on 2 cores). Set CMAKE_ARGS to pick its backend.
    print("installing " + " ".join(PACKAGES) + " (llama-cpp-python compiles llama.cpp; this takes a while)")
    subprocess.run(pip + PACKAGES, check=True)
    print(f"done: run {VENV}/bin/python {pathlib.Path(__file__).relative_to(ROOT)}")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# --- ipfs-accelerate ---------------------------------------------------------

class Ours:
    name = "ipfs-accelerate"

    def __init__(self, binary, model, extra):
        if not pathlib.Path(binary).exists():
            raise RuntimeError(f"{binary} not found (cargo build --release -p ipfs-accelerate)")
        self.cmd = [binary, "generate", "--model", str(model), "--json", "--greedy"] + extra
        self.one_token_wall = None

    def _run(self, prompt, n):
        start = time.perf_counter()
        proc = subprocess.run(self.cmd + ["--max-tokens", str(n), prompt], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(self.cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        # The JSON is the last line that parses (logs may precede it).
        for line in reversed(proc.stdout.strip().splitlines()):
            try:
                return json.loads(line), wall
            except json.JSONDecodeError:
                continue
        try:
            return json.loads(proc.stdout), wall
        except json.JSONDecodeError:
            raise RuntimeError(f"no JSON in the output of {' '.join(self.cmd)}: {proc.stdout[-2000:]!r}")

    def run(self, prompt, prompt_ids, n):
        out, wall = self._run(prompt, n)
        completion = out.get("completion_tokens")
        ids = out.get("token_ids") or []
        if completion is not None and len(ids) > completion:
            ids = ids[-completion:]  # prompt + completion: keep the completion
        completion = completion if completion is not None else len(ids)
        prefill = out.get("prefill_tokens_per_second")
        decode = out.get("decode_tokens_per_second")
        if decode is None and completion > 1:
            if self.one_token_wall is None:
                self.one_token_wall = min(self._run(prompt, 1)[1] for _ in range(2))
            decode = (completion - 1) / max(wall - self.one_token_wall, 1e-9)
        return {"prompt_tokens": out.get("prompt_tokens"), "new_tokens": completion, "prefill": prefill,
                "decode": decode, "overall": out.get("tokens_per_second"), "wall": wall, "ids": ids,
                "text": out.get("text")}


# --- llama.cpp ---------------------------------------------------------------

class LlamaCpp:
    name = "llama.cpp"

    def __init__(self, model, threads, n_ctx):
        import numpy as np
        from llama_cpp import Llama
        self.np = np
        self.llm = Llama(model_path=str(model), n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx,
                         n_batch=min(n_ctx, 2048), verbose=False)
        import llama_cpp
        self.llama_cpp = llama_cpp
        self.version = llama_cpp.__version__

    def _argmax_last(self):
        # llama-cpp-python >= 0.3 no longer copies logits into Llama.scores unless
        # logits_all=True; read the last output row straight from the context.
        ptr = self.llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return int(self.np.argmax(self.np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),))))

    def run(self, prompt, prompt_ids, n):
        llm = self.llm
        if prompt_ids is None:
            prompt_ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt_ids)
        ids = [self._argmax_last()]
        t_prefill = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(n - 1):
            llm.eval([ids[-1]])
            ids.append(self._argmax_last())
        t_decode = time.perf_counter() - start
        return {"prompt_tokens": len(prompt_ids), "new_tokens": len(ids), "prefill": len(prompt_ids) / t_prefill,
                "decode": (n - 1) / t_decode if n > 1 else None, "wall": t_prefill + t_decode, "ids": ids}


# --- transformers ------------------------------------------------------------

class Transformers:
    name = "transformers"

    def __init__(self, model, threads):
        import torch
        import transformers
        self.torch = torch
        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        path = pathlib.Path(model)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        self.version = f"transformers {transformers.__version__}, torch {torch.__version__}"
        # transformers >= 5.2x names the KV cache argument `cache` (was `past_key_values`).
        params = inspect.signature(self.model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    @staticmethod
    def _cache_of(out):
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def run(self, prompt, prompt_ids, n):
        torch = self.torch
        if prompt_ids is None:
            prompt_ids = self.tokenizer(prompt)["input_ids"]
        start = time.perf_counter()
        out = self.model(torch.tensor([prompt_ids]), use_cache=True)
        ids = [int(out.logits[0, -1].argmax())]
        t_prefill = time.perf_counter() - start
        past = self._cache_of(out)
        start = time.perf_counter()
        for _ in range(n - 1):
            out = self.model(torch.tensor([[ids[-1]]]), use_cache=True, **{self.cache_arg: past})
            past = self._cache_of(out)
            ids.append(int(out.logits[0, -1].argmax()))
        t_decode = time.perf_counter() - start
        return {"prompt_tokens": len(prompt_ids), "new_tokens": len(ids), "prefill": len(prompt_ids) / t_prefill,
                "decode": (n - 1) / t_decode if n > 1 else None, "wall": t_prefill + t_decode, "ids": ids}


# --- report ------------------------------------------------------------------

def fmt(x, spec="9.1f"):
    return format(x, spec) if isinstance(x, (int, float)) else format("n/a", ">" + spec.split(".")[0])


def agreement(a, b):
    """Length of the common prefix of two greedy continuations."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", action="store_true", help=f"create {VENV} with the reference engines and exit")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="GGUF file")
    p.add_argument("--binary", default=str(ROOT / "target/release/ipfs-accelerate"))
    p.add_argument("--ours-args", default="", help="extra arguments for `ipfs-accelerate generate`, e.g. '--device cpu'")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--engines", default="ours,llama.cpp,transformers")
    p.add_argument("--json", action="store_true", help="also print the medians as JSON")
    args = p.parse_args()
    if args.setup:
        setup()
        return
    if not pathlib.Path(args.model).is_file():
        sys.exit(f"{args.model} is missing: run scripts/fetch-test-models.sh")

    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    engines, notes = [], []
    for name in wanted:
        try:
            if name == "ours":
                engines.append(Ours(args.binary, args.model, args.ours_args.split()))
            elif name == "llama.cpp":
                engines.append(LlamaCpp(args.model, args.threads, n_ctx=2048))
            elif name == "transformers":
                engines.append(Transformers(args.model, args.threads))
            else:
                sys.exit(f"unknown engine {name!r} (ours, llama.cpp, transformers)")
        except ImportError as e:
            notes.append(f"{name}: skipped, {e} (run: python3 {sys.argv[0]} --setup, then use {VENV}/bin/python)")
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            notes.append(f"{name}: skipped, {type(e).__name__}: {e}")
    for note in notes:
        print(note, file=sys.stderr)
    if not engines:
        sys.exit("no engine could run")

    prompt_ids = None
    for e in engines:
        if isinstance(e, Transformers):
            prompt_ids = e.tokenizer(args.prompt)["input_ids"]
    if prompt_ids is None:
        try:
            import transformers
            path = pathlib.Path(args.model)
            prompt_ids = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)(args.prompt)["input_ids"]
        except Exception:  # noqa: BLE001 - llama.cpp then tokenizes itself
            pass

    print(f"model {args.model}\nprompt: {len(prompt_ids) if prompt_ids else '?'} tokens, {args.max_tokens} new tokens, "
          f"greedy; threads {args.threads} (cpu count {os.cpu_count()}); {args.rounds} rounds after a warm-up")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} on {os.cpu_count()} CPUs: other work is running, "
              "timings (llama.cpp's spinning threads especially) will be unreliable")
    for e in engines:
        if getattr(e, "version", None):
            print(f"{e.name}: {e.version}")

    for e in list(engines):  # warm-up; an engine that fails here is dropped
        try:
            e.run(args.prompt, prompt_ids, min(args.max_tokens, 4))
        except Exception as err:  # noqa: BLE001
            print(f"{e.name}: skipped, warm-up failed: {err}", file=sys.stderr)
            engines.remove(e)
    if not engines:
        sys.exit("no engine could run")
    samples = {e.name: [] for e in engines}
    for _ in range(args.rounds):
        for e in engines:
            samples[e.name].append(e.run(args.prompt, prompt_ids, args.max_tokens))

    med = {}
    print(f"\n{'engine':16} {'prompt':>6} {'new':>4} {'prefill tok/s':>14} {'decode tok/s':>13} {'wall s':>7}")
    for name, runs in samples.items():
        m = {k: median([r.get(k) for r in runs]) for k in ["prefill", "decode", "wall"]}
        m["prompt_tokens"], m["new_tokens"], m["ids"] = runs[-1]["prompt_tokens"], runs[-1]["new_tokens"], runs[-1]["ids"]
        med[name] = m
        print(f"{name:16} {fmt(m['prompt_tokens'], '6d') if isinstance(m['prompt_tokens'], int) else fmt(None, '6')} "
              f"{m['new_tokens']:4d} {fmt(m['prefill'], '14.1f')} {fmt(m['decode'], '13.1f')} {fmt(m['wall'], '7.2f')}")

    ours = med.get("ipfs-accelerate")
    if ours:
        print()
        for other in ["llama.cpp", "transformers"]:
            if other not in med:
                continue
            parts = []
            for k in ["prefill", "decode"]:
                a, b = ours[k], med[other][k]
                parts.append(f"{k} {a / b:.2f}x" if a and b else f"{k} n/a")
            same = agreement(ours["ids"], med[other]["ids"])
            print(f"ours/{other}: " + ", ".join(parts)
                  + f"; greedy ids agree on the first {same}/{min(len(ours['ids']), len(med[other]['ids']))}")
    if "llama.cpp" in med and "transformers" in med:
        same = agreement(med["llama.cpp"]["ids"], med["transformers"]["ids"])
        print(f"llama.cpp vs transformers greedy ids agree on the first {same}")
    if args.json:
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "ids"} for k, v in med.items()}))


if __name__ == "__main__":
    main()
