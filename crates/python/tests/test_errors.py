"""Bad input raises a clear Python exception, never a crash."""

import pytest

import ipfs_accelerate
from ipfs_accelerate import (
    AcceleratorClosedError,
    InvalidInputError,
    IpfsAccelerateError,
    ModelNotFoundError,
    UnsupportedModelTypeError,
)


def test_unknown_platform(acc, model_dir):
    with pytest.raises(InvalidInputError, match='unknown platform "cuda".*webgpu'):
        acc.accelerate_with_browser(model_dir, "x", platform="cuda")
    with pytest.raises(ValueError):  # also a ValueError
        acc.embed(model_dir, "x", platform="tpu")


def test_unknown_browser(acc, model_dir):
    with pytest.raises(InvalidInputError, match='unknown browser "netscape"'):
        acc.accelerate_with_browser(model_dir, "x", browser="netscape")


def test_missing_model(acc, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no model"):
        acc.embed("no-such-model-anywhere", "x")
    with pytest.raises(ModelNotFoundError, match="not in the local model store.*models pull"):
        acc.embed("someorg/some-model", "x")
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        acc.embed(str(tmp_path), "x")
    # A CID whose blocks are not stored: nothing is fetched.
    with pytest.raises(ModelNotFoundError, match="not in the local block store"):
        acc.embed("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "x")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        acc.embed("no-such-model-anywhere", "x")


def test_directories_only_without_ipfs(data_dir, model_dir):
    with ipfs_accelerate.get_accelerator(db_path=str(data_dir / "j.sqlite3"), enable_ipfs=False) as a:
        assert a.embed(model_dir, "x").shape == (1, 384)
        with pytest.raises(ModelNotFoundError, match="enable_ipfs=False"):
            a.embed("minilm", "x")


@pytest.mark.parametrize(
    "call",
    [
        lambda a, m: a.embed(m, 42),
        lambda a, m: a.embed(m, [1.5, 2.5]),
        lambda a, m: a.embed(m, ["ok", 3]),
        lambda a, m: a.embed(m, [True, False]),
        lambda a, m: a.embed(42, "x"),
        lambda a, m: a.embed(m, "x", platform=1),
        lambda a, m: a.accelerate_with_browser(m, "x", browser=3),
        lambda a, m: a.accelerate_with_browser(m, "x", precision="16"),
        lambda a, m: a.accelerate_with_browser(m, "x", model_type=5),
        lambda a, m: a.accelerate_with_browser(m, {"input_ids": "101 102"}),
    ],
)
def test_wrong_types_raise_type_error(acc, model_dir, call):
    with pytest.raises(TypeError):
        call(acc, model_dir)


def test_bad_values(acc, model_dir):
    with pytest.raises(InvalidInputError, match="empty"):
        acc.embed(model_dir, [])
    with pytest.raises(InvalidInputError, match="precision"):
        acc.accelerate_with_browser(model_dir, "x", precision=12)
    with pytest.raises(InvalidInputError, match="non-negative"):
        acc.accelerate_with_browser(model_dir, [101, -5], platform="cpu")
    with pytest.raises(TypeError):
        ipfs_accelerate.get_accelerator(max_connections="4")


def test_model_families_that_do_not_exist(acc, model_dir):
    with pytest.raises(UnsupportedModelTypeError, match="no such model family"):
        acc.accelerate_with_browser(model_dir, "x", model_type="automatic-speech-recognition")
    # transcribe and classify run families of their own: a text-embedding
    # model is neither (NotImplementedError keeps working for callers).
    with pytest.raises(UnsupportedModelTypeError, match="not a Whisper"):
        acc.transcribe(model_dir, b"x")
    with pytest.raises(NotImplementedError, match="not an image classifier"):
        acc.classify(model_dir, b"x")


def test_generation_is_not_an_embedding_call(acc, model_dir):
    # accelerate_with_browser embeds; generation has a method of its own.
    with pytest.raises(UnsupportedModelTypeError, match="Accelerator.generate"):
        acc.accelerate_with_browser(model_dir, "x", model_type="text_generation")
    # An embedding model is not a generation model.
    with pytest.raises(UnsupportedModelTypeError, match="text-embedding model.*embed"):
        acc.generate(model_dir, "x")


def test_closed_accelerator_refuses_calls(data_dir, model_dir):
    a = ipfs_accelerate.get_accelerator(db_path=str(data_dir / "j.sqlite3"))
    a.embed(model_dir, "x")
    a.close()
    a.close()  # harmless
    assert a.closed
    with pytest.raises(AcceleratorClosedError, match="closed"):
        a.embed(model_dir, "x")
    with pytest.raises(AcceleratorClosedError):
        a.accelerate_with_browser(model_dir, "x", platform="cpu")
    with pytest.raises(IpfsAccelerateError):
        a.accelerate_with_browser(model_dir, "x", platform="cpu")


def test_too_many_browser_connections(data_dir, model_dir):
    with ipfs_accelerate.get_accelerator(db_path=str(data_dir / "j.sqlite3"), max_connections=0) as a:
        with pytest.raises(ipfs_accelerate.BackendUnavailableError, match="max_connections"):
            a.accelerate_with_browser(model_dir, "x", platform="webgpu", browser="chromium")


def test_webnn_without_a_webnn_browser_fails_clearly(data_dir, model_dir, chromium):
    # Debian's chromium has no WebNN backend: the page says so and the error quotes it.
    with ipfs_accelerate.get_accelerator(db_path=str(data_dir / "j.sqlite3")) as a:
        with pytest.raises(IpfsAccelerateError, match="webnn"):
            a.accelerate_with_browser(model_dir, "x", platform="webnn", browser="chromium")
