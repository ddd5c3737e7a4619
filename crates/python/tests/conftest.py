"""Shared fixtures: the real test model, the CLI binary, a fresh accelerator."""

import os
import signal
import shutil
from pathlib import Path

import pytest

import ipfs_accelerate

REPO_ROOT = Path(__file__).resolve().parents[3]
IN_CI = os.environ.get("CI") in ("true", "1")


def _need(what: str) -> None:
    """Skips outside CI; under CI a missing prerequisite is a failure."""
    if IN_CI:
        pytest.fail(f"CI needs {what}")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def model_dir() -> str:
    """all-MiniLM-L6-v2 as fetched by scripts/fetch-test-models.sh."""
    root = os.environ.get("IPFS_ACCELERATE_TEST_MODELS") or os.path.expanduser("~/.cache/ipfs-accelerate/test-models")
    path = Path(root) / "all-MiniLM-L6-v2"
    if not (path / "config.json").is_file():
        _need(f"the test model in {path} (scripts/fetch-test-models.sh)")
    return str(path)


@pytest.fixture(scope="session")
def generation_model() -> str:
    """SmolLM2-135M-Instruct Q4_1 (GGUF) as fetched by scripts/fetch-test-models.sh."""
    root = os.environ.get("IPFS_ACCELERATE_TEST_MODELS") or os.path.expanduser("~/.cache/ipfs-accelerate/test-models")
    path = Path(root) / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        _need(f"the generation test model {path} (scripts/fetch-test-models.sh)")
    return str(path)


def _test_models() -> Path:
    """Where scripts/fetch-test-models.sh puts the test models."""
    return Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS") or os.path.expanduser("~/.cache/ipfs-accelerate/test-models"))


@pytest.fixture(scope="session")
def whisper_model() -> str:
    """whisper-tiny.en as fetched by scripts/fetch-test-models.sh."""
    path = _test_models() / "whisper-tiny.en"
    if not (path / "model.safetensors").is_file():
        _need(f"the speech test model in {path} (scripts/fetch-test-models.sh)")
    return str(path)


@pytest.fixture(scope="session")
def efficientnet_model() -> str:
    """EfficientNet-Lite0 as fetched (and converted) by scripts/fetch-test-models.sh."""
    path = _test_models() / "efficientnet-lite0"
    if not (path / "model.safetensors").is_file():
        _need(f"the image-classification test model in {path} (scripts/fetch-test-models.sh)")
    return str(path)


@pytest.fixture(scope="session")
def cli() -> str:
    """The release ipfs-accelerate binary that `cargo test --release` builds."""
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO_ROOT / "target")
    path = Path(target) / "release" / "ipfs-accelerate"
    if not path.is_file():
        _need(f"the CLI binary {path} (cargo build --release -p ipfs-accelerate)")
    return str(path)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (WebGPU through SwiftShader)."""
    path = shutil.which("chromium")
    if path is None:
        _need("chromium (apt-get install chromium)")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    return path


@pytest.fixture(scope="session")
def webnn_chromium() -> str:
    """The Chromium with a WebNN backend from scripts/install-webnn-chromium.sh."""
    path = os.environ.get("IPFS_ACCELERATE_WEBNN_CHROMIUM")
    if not path:
        root = os.environ.get("IPFS_ACCELERATE_WEBNN_CHROMIUM_DIR") or os.path.expanduser(
            "~/.cache/ipfs-accelerate/webnn-chromium"
        )
        path = os.path.join(root, "chromium", "chromium")
    if not os.path.isfile(path):
        _need(f"the WebNN chromium {path} (scripts/install-webnn-chromium.sh)")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    return path


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler for the test's duration.

    A process started in the background by a non-interactive shell inherits
    SIGINT as ignored, and then `_thread.interrupt_main` does nothing; the
    interrupt tests need the handler a terminal session has.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A private data dir and block store, so tests never touch the user's."""
    monkeypatch.setenv("IPFS_ACCELERATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IPFS_ACCELERATE_REPO", str(tmp_path / "repo"))
    return tmp_path


@pytest.fixture
def acc(data_dir):
    """An accelerator with its journal in the test's directory."""
    with ipfs_accelerate.get_accelerator(db_path=str(data_dir / "journal.sqlite3")) as a:
        yield a


@pytest.fixture(scope="module")
def browser_acc(tmp_path_factory, chromium):
    """One accelerator for a module's browser tests (a browser start costs seconds)."""
    d = tmp_path_factory.mktemp("browser")
    with ipfs_accelerate.get_accelerator(db_path=str(d / "journal.sqlite3"), max_connections=2) as a:
        yield a
