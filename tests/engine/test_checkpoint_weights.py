"""Tests for the weights half of visionbench/engine/checkpoint.py.

``read_weights`` reads ``.safetensors`` and weights-only ``.pt``/``.pth`` files (a bare state
dict or ``{"state_dict": …}``), refuses pickles that would run code (without running it), and
turns unreadable files into a ``ValueError`` naming the path. ``load_weights_into`` explains
mismatched state dicts instead of dumping torch's error.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from visionbench.engine.checkpoint import load_weights_into, read_weights, save_weights
from visionbench.models import create_model


def small_model(num_classes: int = 7, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return create_model("cnn-small", num_classes=num_classes, in_channels=in_channels, image_size=8)


def assert_same_state(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype, name
        assert torch.equal(got[name], tensor), name


class _Payload:
    """Unpickling this runs ``os.system``: exactly what a weights file must never do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class _Plain:
    """An ordinary class instance: harmless, but still not a tensor torch's weights_only allows."""

    def __init__(self) -> None:
        self.weight = torch.ones(2)


def read_outcome(path: Path) -> BaseException | None:
    try:
        read_weights(path)
    except BaseException as error:  # noqa: BLE001 - the test inspects whatever came out
        return error
    return None


# --------------------------------------------------------------------------------------------
# read_weights: formats
# --------------------------------------------------------------------------------------------


def test_read_safetensors(tmp_path: Path) -> None:
    state = small_model().state_dict()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    assert_same_state(read_weights(path), state)
    assert_same_state(read_weights(str(path)), state)  # str paths too


def test_save_weights_round_trip(tmp_path: Path) -> None:
    state = small_model().state_dict()
    path = tmp_path / "sub" / "best.safetensors"
    save_weights(state, path, metadata={"model": "cnn-small"})
    assert_same_state(read_weights(path), state)
    assert [p.name for p in path.parent.iterdir()] == ["best.safetensors"]  # no temporary left


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_checkpoints_get_the_umask_mode_like_every_other_file(tmp_path: Path, umask: int) -> None:
    from visionbench.engine.checkpoint import save_state

    previous = os.umask(umask)
    try:
        save_weights({"w": torch.zeros(3)}, tmp_path / "last.safetensors")  # safetensors alone would give 0600
        save_state({"epoch": 1}, tmp_path / "last.state.pt")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(("last.safetensors", "last.state.pt", "plain.txt"), 0o666 & ~umask)


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_read_torch_state_dict(tmp_path: Path, suffix: str) -> None:
    state = small_model().state_dict()
    path = tmp_path / f"w{suffix}"
    torch.save(state, path)
    assert_same_state(read_weights(path), state)


def test_read_torch_wrapped_state_dict(tmp_path: Path) -> None:
    state = small_model().state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    assert_same_state(read_weights(path), state)


def test_read_weights_loads_into_a_fresh_model(tmp_path: Path) -> None:
    trained = small_model()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    fresh = small_model()
    load_weights_into(fresh, read_weights(path), str(path))
    assert_same_state(fresh.state_dict(), trained.state_dict())


# --------------------------------------------------------------------------------------------
# read_weights: refusals
# --------------------------------------------------------------------------------------------


def test_pickle_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    error = read_outcome(path)
    assert not marker.exists(), "loading the file ran code from it"
    assert isinstance(error, ValueError), f"expected ValueError naming the file, got {type(error).__name__}: {error}"
    assert str(path) in str(error)


def test_pickled_class_instance_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "object.pt"
    torch.save(_Plain(), path)
    error = read_outcome(path)
    assert isinstance(error, ValueError), f"expected ValueError naming the file, got {type(error).__name__}: {error}"
    assert str(path) in str(error)


def test_pt_without_tensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "numbers.pt"
    torch.save({"lr": 0.1, "epoch": 3}, path)
    with pytest.raises(ValueError, match=r"does not hold a state dict \(name → tensor\)\. Save model\.state_dict\(\)") as info:
        read_weights(path)
    assert str(path) in str(info.value)
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        read_weights(path)


@pytest.mark.parametrize("keep", [0, 4, 20, 0.5, -1], ids=["empty", "4B", "20B", "half", "minus1B"])
def test_truncated_safetensors_names_the_path(tmp_path: Path, keep: float) -> None:
    whole = tmp_path / "whole.safetensors"
    save_file({"w": torch.randn(16, 16), "b": torch.randn(16)}, str(whole))
    data = whole.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="cannot read weights from") as info:
        read_weights(path)
    message = str(info.value)
    assert repr(str(path)) in message
    assert "truncated" in message and "re-export" in message


def test_truncated_pt_names_the_path(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pt"
    torch.save({"w": torch.randn(64)}, whole)
    path = tmp_path / "cut.pt"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match="cannot read weights from") as info:
        read_weights(path)
    assert repr(str(path)) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.safetensors"
    with pytest.raises(ValueError, match=r"does not exist\. Give a \.safetensors or \.pt file") as info:
        read_weights(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="does not exist"):
        read_weights(tmp_path)  # a directory is not a weights file


# --------------------------------------------------------------------------------------------
# load_weights_into
# --------------------------------------------------------------------------------------------


def test_state_dict_for_other_num_classes_does_not_fit() -> None:
    model = small_model(num_classes=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = small_model(num_classes=10).state_dict()
    with pytest.raises(ValueError) as info:
        load_weights_into(model, other, "runs/a/best.safetensors")
    message = str(info.value)
    assert "checkpoint 'runs/a/best.safetensors' does not fit this model" in message
    assert "head.1.weight: file (10, 128) vs model (7, 128)" in message
    assert "use the same --model and --data" in message
    assert_same_state(model.state_dict(), before)  # nothing half-loaded


def test_state_dict_for_other_in_channels_does_not_fit() -> None:
    with pytest.raises(ValueError, match=r"does not fit this model .*file \(32, 3, 3, 3\) vs model \(32, 1, 3, 3\)"):
        load_weights_into(small_model(in_channels=1), small_model(in_channels=3).state_dict(), "w.pt")


def test_state_dict_of_another_model_does_not_fit() -> None:
    torch.manual_seed(0)
    other = create_model("mlp", num_classes=7, in_channels=1, image_size=8).state_dict()
    with pytest.raises(ValueError) as info:
        load_weights_into(small_model(), other, "mlp.safetensors")
    message = str(info.value)
    assert "does not fit this model" in message
    assert "missing [" in message and "unexpected [" in message
    assert "…" in message  # long name lists are cut, not dumped
    assert "different model, number of classes or input channels" in message
    assert "use the same --model and --data" in message


def test_missing_and_extra_keys_are_named() -> None:
    model = small_model()
    state = dict(model.state_dict())
    state.pop("head.1.bias")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        load_weights_into(model, state, "w.pt")
    message = str(info.value)
    assert "missing ['head.1.bias']" in message
    assert "unexpected ['extra.weight']" in message


def test_a_read_state_loads_into_a_versioned_module(tmp_path: Path) -> None:
    """A state read back from a file is a plain dict without module versions; MNASNet's loader needs
    its version, so resume, evaluate and predict of an MNASNet run must still load it."""
    from torchvision.models import mnasnet0_5

    trained = mnasnet0_5(weights=None, num_classes=3)
    save_weights(trained.state_dict(), tmp_path / "best.safetensors")
    fresh = mnasnet0_5(weights=None, num_classes=3)
    load_weights_into(fresh, read_weights(tmp_path / "best.safetensors"), "best.safetensors")
    for name, tensor in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name


def test_random_bytes_are_called_corrupt_not_pickled_objects(tmp_path: Path) -> None:
    """Random bytes used to be refused as 'pickled Python objects ... could run code' (issue 18),
    which sends the user looking for a security problem instead of a broken file."""
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError, match="neither a safetensors file nor a PyTorch checkpoint") as info:
        read_weights(path)
    assert "pickled Python objects" not in str(info.value)
