"""A real browser: all-MiniLM-L6-v2 on WebGPU in Chromium (SwiftShader here)."""

import numpy as np

import ipfs_accelerate

TEXTS = ["Content-addressed weights are verified on load.", "hello world"]


def test_webgpu_in_chromium_equals_the_cpu(browser_acc, model_dir, chromium):
    cpu = browser_acc.embed(model_dir, TEXTS, platform="cpu")
    r = browser_acc.accelerate_with_browser(model_dir, TEXTS, platform="webgpu", browser="chromium")
    assert r["platform"] == "webgpu" and r["is_simulation"] is False
    assert r["browser"].startswith("chromium ")
    assert r["precision"] == 32 and r["inference_time"] > 0
    assert r["worker"].endswith("-webgpu-0")
    np.testing.assert_allclose(r["output"], cpu, atol=1e-4, rtol=0)


def test_webnn_in_chromium_equals_the_cpu(browser_acc, model_dir, webnn_chromium):
    cpu = browser_acc.embed(model_dir, TEXTS, platform="cpu")
    r = browser_acc.accelerate_with_browser(model_dir, TEXTS, platform="webnn", browser=webnn_chromium)
    assert r["platform"] == "webnn" and r["is_simulation"] is False and r["browser"]
    assert r["worker"].endswith("-webnn-1") or r["worker"].endswith("-webnn-0")
    np.testing.assert_allclose(r["output"], cpu, atol=1e-4, rtol=0)


def test_browser_worker_is_reused(browser_acc, model_dir, chromium):
    first = browser_acc.accelerate_with_browser(model_dir, "a", platform="webgpu", browser="chromium")
    second = browser_acc.accelerate_with_browser(model_dir, "b", platform="webgpu", browser="chromium")
    assert first["worker"] == second["worker"]


def test_bridge_reports_capabilities_and_runs(model_dir, chromium):
    with ipfs_accelerate.create_browser_bridge("chromium") as bridge:
        caps = bridge.get_browser_capabilities()
        assert caps["webgpu"]["available"] is True
        assert caps["browser"].startswith("chromium")
        assert "Chrome/" in caps["userAgent"]
        r = bridge.request_inference(model_dir, TEXTS, timeout=300)
        assert r["is_simulation"] is False and r["output"].shape == (2, 384)
        with ipfs_accelerate.get_accelerator(db_path=None, enable_ipfs=False) as cpu_acc:
            np.testing.assert_allclose(r["output"], cpu_acc.embed(model_dir, TEXTS), atol=1e-4, rtol=0)
    try:
        bridge.get_browser_capabilities()
    except ipfs_accelerate.AcceleratorClosedError as e:
        assert "stopped" in str(e)
    else:
        raise AssertionError("a stopped bridge answered")
