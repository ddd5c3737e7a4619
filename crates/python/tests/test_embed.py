"""CPU embeddings: equal to the Rust CLI's, and every reported figure real."""

import json
import subprocess

import numpy as np
import pytest

import ipfs_accelerate

TEXTS = ["Content-addressed weights are verified on load.", "Every byte is checked.", "hello world"]


def cli_embeddings(cli, model_dir, texts):
    out = subprocess.run(
        [cli, "embed", "--json", "--backend", "cpu", "--model", model_dir, *texts],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return np.array(json.loads(out.stdout)["embeddings"], dtype=np.float32)


def test_embed_equals_the_cli(acc, model_dir, cli):
    got = acc.embed(model_dir, TEXTS)
    want = cli_embeddings(cli, model_dir, TEXTS)
    assert got.dtype == np.float32 and got.shape == (3, 384)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_single_text_is_one_row(acc, model_dir):
    assert acc.embed(model_dir, "hello world").shape == (1, 384)


def test_accelerate_on_cpu_reports_measured_figures(acc, model_dir, cli):
    r = acc.accelerate_with_browser(model_dir, TEXTS, platform="cpu", precision=32)
    assert r["status"] == "success" and r["is_simulation"] is False
    assert r["platform"] == "cpu" and r["browser"] is None and r["precision"] == 32
    assert r["model_type"] == "text_embedding" and r["model_name"] == model_dir
    assert r["inference_time"] > 0 and r["latency_ms"] == pytest.approx(r["inference_time"] * 1000)
    assert 0 < r["worker_time_ms"] <= r["latency_ms"]
    assert r["throughput_items_per_sec"] == pytest.approx(3 / r["inference_time"])
    assert r["memory_usage_mb"] > 10  # the model alone is ~90 MB resident
    assert r["cid"] is None and r["ipfs_cache_hit"] is False  # a plain directory
    assert r["notes"] == []
    np.testing.assert_allclose(r["output"], cli_embeddings(cli, model_dir, TEXTS), atol=1e-6, rtol=0)


def test_auto_and_use_real_browser_false_run_on_the_cpu(acc, model_dir):
    assert acc.accelerate_with_browser(model_dir, "x", platform="auto")["platform"] == "cpu"
    r = acc.accelerate_with_browser(model_dir, "x", platform="webgpu", use_real_browser=False)
    assert r["platform"] == "cpu" and r["is_simulation"] is False
    assert any("use_real_browser=False" in n for n in r["notes"])


def test_precision_16_reports_the_float32_actually_used(acc, model_dir):
    r = acc.accelerate_with_browser(model_dir, "x", platform="cpu", precision=16, mixed_precision=True)
    assert r["precision"] == 32
    assert any("precision 16" in n for n in r["notes"]) and any("mixed_precision" in n for n in r["notes"])


def test_token_ids_give_the_texts_embedding(acc, model_dir):
    text = acc.embed(model_dir, "hello world")
    # [CLS] hello world [SEP] in all-MiniLM-L6-v2's vocabulary.
    for inputs in ([101, 7592, 2088, 102], [[101, 7592, 2088, 102]], {"input_ids": [101, 7592, 2088, 102]}):
        r = acc.accelerate_with_browser(model_dir, inputs, platform="cpu")
        np.testing.assert_allclose(r["output"], text, atol=1e-6, rtol=0)
        assert any("token ids" in n for n in r["notes"])


def test_model_from_the_block_store_by_name_and_cid(acc, model_dir, cli, data_dir):
    out = subprocess.run(
        [cli, "models", "add", model_dir, "--name", "minilm"], check=True, capture_output=True, text=True, timeout=300
    )
    cid = next(w for w in out.stdout.split() if w.startswith("baf"))
    want = acc.embed(model_dir, TEXTS)
    for name in ("minilm", cid, f"/ipfs/{cid}"):
        r = acc.accelerate_with_browser(name, TEXTS, platform="cpu")
        assert r["cid"] == cid and r["ipfs_cache_hit"] is True
        np.testing.assert_allclose(r["output"], want, atol=1e-6, rtol=0)


def test_async_variants(acc, model_dir):
    import asyncio

    async def both():
        return await asyncio.gather(
            acc.accelerate_with_browser_async(model_dir, "hello world", platform="cpu"),
            acc.embed_async(model_dir, ["hello world"]),
        )

    r, v = asyncio.run(both())
    np.testing.assert_allclose(r["output"], v, atol=1e-6, rtol=0)


def test_module_level_function_uses_a_shared_accelerator(data_dir, model_dir):
    r = ipfs_accelerate.accelerate_with_browser(model_dir, "hello", platform="cpu")
    assert r["db_path"] == str(data_dir / "data" / "journal.sqlite3")
    ipfs_accelerate._accelerator._default.close()
