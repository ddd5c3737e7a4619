"""The browser bridge: one real browser page driven directly."""

import json
import os
from typing import Any, Dict, Optional, Union

from . import _native
from ._accelerator import _array, _check_str, _model_arg
from ._inputs import check_model_type, normalize
from .errors import InvalidInputError


class BrowserBridge:
    """A browser launched with a WebGPU worker page, connected over the
    bridge (an HTTP + WebSocket server on 127.0.0.1). Call :meth:`stop`
    (or use it as a context manager) to quit the browser."""

    def __init__(self, browser_name: str = "chrome", headless: bool = True) -> None:
        _check_str("browser_name", browser_name)
        self._native = _native.NativeBridge(browser_name, bool(headless))

    def get_browser_capabilities(self) -> Dict[str, Any]:
        """What the page measured about itself, as a dict: ``webgpu``
        (adapter, features, limits), ``webnn`` (per device type),
        ``wasm``, memory, ``userAgent``; plus ``browser``, the browser's
        name and version."""
        text, browser = self._native.capabilities()
        caps = json.loads(text)
        caps["browser"] = browser
        return caps

    def request_inference(
        self,
        model: Union[str, "os.PathLike[str]"],
        inputs: Any,
        model_type: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Embeds ``inputs`` (str or list of str) with ``model`` on the page.

        Returns ``status``, ``model_type``, ``output`` (float32 ndarray
        ``[n, dim]``), ``inference_time`` and ``latency_ms`` (measured wall
        clock, including the model's first load onto the page), ``cid``,
        ``ipfs_cache_hit`` and ``is_simulation`` (False). ``timeout``
        (seconds) raises InferenceError when passed.
        """
        name = _model_arg(model)
        kind = check_model_type(model_type)
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)):
            raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
        texts, rows = normalize(inputs)
        if texts is None:
            raise InvalidInputError("request_inference takes text; use Accelerator for token ids")
        raw = self._native.embed(name, texts, None if timeout is None else float(timeout))
        wall = raw["wall_s"]
        return {
            "status": "success",
            "model_type": kind,
            "output": _array(raw),
            "inference_time": wall,
            "latency_ms": wall * 1000.0,
            "cid": raw["cid"],
            "ipfs_cache_hit": raw["ipfs_cache_hit"],
            "is_simulation": False,
        }

    def stop(self) -> None:
        """Quits the browser; later calls raise AcceleratorClosedError."""
        self._native.stop()

    def __enter__(self) -> "BrowserBridge":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def create_browser_bridge(browser_name: str = "chrome", headless: bool = True) -> BrowserBridge:
    """Launches ``browser_name`` ("chrome", "chromium", "edge", "firefox" or
    a binary path; "chrome" falls back to any installed Chromium-family
    browser) and returns its :class:`BrowserBridge` once the page joined."""
    return BrowserBridge(browser_name, headless)


__all__ = ["BrowserBridge", "create_browser_bridge"]
