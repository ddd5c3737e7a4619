#!/usr/bin/env python3
"""Embeds a few sentences with ipfs_accelerate, on the CPU and (when a
Chromium-family browser is installed) in a real browser on WebGPU, prints
what was measured, the cosine similarity matrix, and the journal rows.

    scripts/install-python-package.sh
    ~/.cache/ipfs-accelerate/python-venv/bin/python examples/python/embed.py \
        ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2 [--browser chromium]
"""

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np

import ipfs_accelerate

SENTENCES = [
    "Content-addressed weights are verified on load.",
    "Every byte of the model is checked against its hash.",
    "The cat sat on the mat.",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model directory, a name from `ipfs-accelerate models ls`, or a CID")
    parser.add_argument("--browser", help="also run in this browser on WebGPU (chrome, chromium, edge or a path)")
    parser.add_argument("--db", help="results database (default: a temporary file)")
    args = parser.parse_args()

    db = args.db or str(Path(tempfile.mkdtemp()) / "journal.sqlite3")
    with ipfs_accelerate.get_accelerator(db_path=db) as acc:
        runs = [acc.accelerate_with_browser(args.model, SENTENCES, platform="cpu", precision=32)]
        if args.browser:
            runs.append(acc.accelerate_with_browser(args.model, SENTENCES, platform="webgpu", browser=args.browser))
        for r in runs:
            print(
                f"{r['platform']:>6} {r['browser'] or '':<20} {r['output'].shape} "
                f"latency {r['latency_ms']:.1f} ms, {r['throughput_items_per_sec']:.1f} items/s, "
                f"peak RSS {r['memory_usage_mb']:.0f} MiB, cid {r['cid']}, simulated: {r['is_simulation']}"
            )
        vectors = runs[-1]["output"]
        if len(runs) > 1:
            print(f"largest |webgpu - cpu|: {np.abs(runs[1]['output'] - runs[0]['output']).max():.2e}")
        print("cosine similarity (vectors are L2-normalized):")
        print(np.array2string(vectors @ vectors.T, precision=3))
        with sqlite3.connect(acc.db_path) as conn:
            for row in conn.execute("SELECT worker_id, backend, browser, items, round(latency_ms, 1) FROM inferences"):
                print("journal:", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
