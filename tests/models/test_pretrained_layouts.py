"""torchvision's published weight files load into the models visionbench builds, family by family.

For each model a fake "published" file is made exactly as torchvision publishes it: torchvision's
own model in the published configuration (1000 classes, RGB; GoogLeNet and Inception v3 with their
auxiliary heads; DenseNet under its old key names ``…denselayer1.norm.1.weight``), every float
tensor perturbed so no tensor can match visionbench's random init by chance, saved with
``torch.save`` under torchvision's file name in a temporary ``TORCH_HOME``. The SHA-256 check of
the name is pointed at the file's real hash (as ``tests/models/test_pretrained.py`` does: no file
of ours can carry the published digits). Each file is loaded through
:func:`visionbench.engine.initial_weights.load_initial_weights` into visionbench's model for 5
classes and 1 channel, with sockets blocked.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.vision_transformer import interpolate_embeddings

from tests.network_guard import blocked_network
from visionbench import config as cfg
from visionbench.engine import initial_weights
from visionbench.models import adapt, create_model, pretrained

NUM_CLASSES, CHANNELS = 5, 1

# name: (image size, head tensors (re-initialised), stem weight (summed over RGB)), written out by
# hand from torchvision's modules so the test does not share the code's rules.
CASES: dict[str, tuple[int, tuple[str, ...], str]] = {
    "resnet18": (32, ("fc.weight", "fc.bias"), "conv1.weight"),
    "googlenet": (32, ("fc.weight", "fc.bias"), "conv1.conv.weight"),
    "inception_v3": (75, ("fc.weight", "fc.bias"), "Conv2d_1a_3x3.conv.weight"),
    "densenet121": (32, ("classifier.weight", "classifier.bias"), "features.conv0.weight"),
    "mobilenet_v3_small": (32, ("classifier.3.weight", "classifier.3.bias"), "features.0.0.weight"),
    "efficientnet_b0": (32, ("classifier.1.weight", "classifier.1.bias"), "features.0.0.weight"),
    "squeezenet1_0": (32, ("classifier.1.weight", "classifier.1.bias"), "features.0.weight"),  # a 1x1 conv head
    "shufflenet_v2_x0_5": (32, ("fc.weight", "fc.bias"), "conv1.0.weight"),
    "mnasnet0_5": (32, ("classifier.1.weight", "classifier.1.bias"), "layers.0.weight"),
    "regnet_x_400mf": (32, ("fc.weight", "fc.bias"), "stem.0.weight"),
    "convnext_tiny": (32, ("classifier.2.weight", "classifier.2.bias"), "features.0.0.weight"),
    "swin_t": (32, ("head.weight", "head.bias"), "features.0.0.weight"),
    "vit_b_16": (32, ("heads.head.weight", "heads.head.bias"), "conv_proj.weight"),  # 2x2 patches, not 14x14
    "maxvit_t": (224, ("classifier.5.weight",), "stem.0.0.weight"),  # its smallest side
}
# The published configuration of builders whose defaults differ from it (auxiliary heads on).
PUBLISHED_OPTIONS: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": True, "init_weights": False},
    "inception_v3": {"aux_logits": True, "init_weights": False},
}
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
# Today's DenseNet key → the published file's: "…denselayer1.norm1.weight" → "…denselayer1.norm.1.weight".
_NEW_DENSE_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$")

_PREFIXES: dict[str, str] = {}  # file name → its real SHA-256 prefix, for the patched name check


@pytest.fixture(autouse=True, scope="module")
def _no_network() -> Iterator[None]:
    with blocked_network():
        yield

@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary ``TORCH_HOME``; the hash check of a file name compares with the file's real hash."""
    home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(home))
        patch.setattr(pretrained, "expected_sha256_prefix", lambda path: _PREFIXES.get(path.name))
        yield home


def _published_state(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ``name`` in its published configuration, every float tensor perturbed (running
    variances kept positive), in today's key names, with its module versions."""
    torch.manual_seed(0)
    state = getattr(torchvision.models, name)(weights=None, num_classes=1000, **PUBLISHED_OPTIONS.get(name, {})).state_dict()
    generator = torch.Generator().manual_seed(1)
    for key, tensor in state.items():
        if tensor.is_floating_point():
            noisy = tensor + 0.05 * torch.randn(tensor.shape, generator=generator)
            state[key] = noisy.abs() + 0.5 if key.endswith("running_var") else noisy
    return state


def _as_published(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` in the published file's key layout: DenseNet's old names, without the batch-norm
    counters (its 2017 files predate them); other models unchanged."""
    if not name.startswith("densenet"):
        return state
    old: dict[str, torch.Tensor] = OrderedDict()
    for key, tensor in state.items():
        if not key.endswith("num_batches_tracked"):
            match = _NEW_DENSE_KEY.match(key)
            old[f"{match.group(1)}.{match.group(2)}.{match.group(3)}" if match else key] = tensor
    old._metadata = state._metadata  # type: ignore[attr-defined]
    return old


def _publish(name: str) -> tuple[Path, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Write ``name``'s fake published file under torchvision's file name in ``$TORCH_HOME``; return
    the path, the state in today's names and the state as the file holds it."""
    state = _published_state(name)
    in_file = _as_published(name, state)
    path = pretrained.weights_file(pretrained.resolve_weights(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(in_file, path)
    _PREFIXES[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return path, state, in_file


def _build(name: str, num_classes: int, in_channels: int, image_size: int) -> torch.nn.Module:
    torch.manual_seed(2)  # another seed than the file's tensors
    return create_model(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size)


def _load(name: str, model: torch.nn.Module, num_classes: int) -> tuple[pretrained.PretrainedFile, adapt.FitReport]:
    config = cfg.resolve(overrides={"model": name, "pretrained": True})
    loaded = initial_weights.load_initial_weights(model, config, num_classes)
    assert loaded is not None
    return loaded


@dataclass
class Loaded:
    """One model loaded from its fake published file."""

    name: str
    image_size: int
    heads: tuple[str, ...]
    stem: str
    state: dict[str, torch.Tensor]  # the file's tensors under today's names
    in_file: dict[str, torch.Tensor]  # the file's tensors as stored
    before: dict[str, torch.Tensor]  # the model's random init
    model: torch.nn.Module
    record: pretrained.PretrainedFile
    report: adapt.FitReport


@pytest.fixture(scope="module", params=list(CASES))
def loaded(request: pytest.FixtureRequest, torch_home: Path) -> Iterator[Loaded]:
    """``request.param``'s fake published file, loaded into visionbench's 5-class, 1-channel model."""
    name = request.param
    image_size, heads, stem = CASES[name]
    path, state, in_file = _publish(name)
    model = _build(name, NUM_CLASSES, CHANNELS, image_size)
    before = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    record, report = _load(name, model, NUM_CLASSES)
    yield Loaded(name, image_size, heads, stem, state, in_file, before, model, record, report)
    path.unlink(missing_ok=True)


def _name(entry: str) -> str:
    return entry.split(":")[0]


def _expected(case: Loaded, key: str) -> torch.Tensor:
    """What tensor ``key`` of the file must become in the model: the stem summed over RGB, a ViT
    position embedding resized by torchvision's own ``interpolate_embeddings``, anything else itself."""
    tensor = case.state[key]
    if key == case.stem:
        return tensor.sum(dim=1, keepdim=True)
    if key == "encoder.pos_embedding":
        return interpolate_embeddings(case.image_size, 16, OrderedDict({key: tensor}))[key]
    return tensor


def test_every_tensor_of_the_file_is_in_the_model_bit_for_bit(loaded: Loaded) -> None:
    model_state = loaded.model.state_dict()
    carried = [key for key in loaded.state if key not in loaded.heads and not key.startswith(AUX_PREFIXES)]
    assert carried, "the file holds tensors besides its heads"
    different = [key for key in carried if not torch.equal(model_state[key], _expected(loaded, key))]
    assert different == []
    # The report accounts for every tensor of the model, once.
    report = loaded.report
    accounted = report.kept + [_name(e) for e in report.adapted] + [_name(e) for e in report.reinitialised]
    assert sorted(accounted) == sorted(model_state)
    assert loaded.record.name == pretrained.full_name(pretrained.resolve_weights(loaded.name))


def test_the_head_is_reinitialised_and_the_stem_summed_over_rgb(loaded: Loaded) -> None:
    model_state, report = loaded.model.state_dict(), loaded.report
    for key in loaded.heads:
        assert model_state[key].shape[0] == NUM_CLASSES and torch.equal(model_state[key], loaded.before[key])
    heads = [e for e in report.reinitialised if not _name(e).endswith("num_batches_tracked")]
    assert [_name(e) for e in heads] == list(loaded.heads) and all("1000 → 5 classes" in e for e in heads)
    assert f"{loaded.stem}: 3 → 1 input channels (summed over RGB)" in report.adapted
    position = [e for e in report.adapted if e.startswith("encoder.pos_embedding")]
    assert position == (["encoder.pos_embedding: 14×14 → 2×2 patch grid (bicubic, class token kept)"]
                        if loaded.name == "vit_b_16" else [])


def test_auxiliary_heads_are_dropped_and_reported(loaded: Loaded) -> None:
    aux = sorted(key for key in loaded.in_file if key.startswith(AUX_PREFIXES))
    assert loaded.report.dropped == aux
    assert not any(key.startswith(AUX_PREFIXES) for key in loaded.model.state_dict())
    if loaded.name in ("googlenet", "inception_v3"):
        heads = "aux1.*, aux2.*" if loaded.name == "googlenet" else "AuxLogits.*"
        assert len(aux) > 0 and f"dropped {len(aux)} ({heads}: auxiliary heads" in loaded.report.summary()
    else:
        assert aux == [] and "dropped" not in loaded.report.summary()


def test_the_loaded_model_runs(loaded: Loaded) -> None:
    model = loaded.model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, CHANNELS, loaded.image_size, loaded.image_size))
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()
    if loaded.name in ("googlenet", "inception_v3"):  # the input normalisation does the transform (next test)
        assert model.transform_input is False


@pytest.mark.parametrize(("name", "size"), [("googlenet", 64), ("inception_v3", 75)])
def test_half_normalised_weights_see_what_torchvisions_pretrained_model_sees(torch_home: Path, name: str,
                                                                             size: int) -> None:
    """torchvision's pretrained GoogLeNet/Inception v3 (``transform_input=True``) on ImageNet-normalised
    pixels gives the logits visionbench's model gives on the pixels normalised as the weights' preprocessing says."""
    path, state, in_file = _publish(name)
    reference = getattr(torchvision.models, name)(weights=None, num_classes=1000, transform_input=True,
                                                  **PUBLISHED_OPTIONS[name])
    reference.load_state_dict(in_file)
    model = _build(name, 1000, 3, size)
    _load(name, model, 1000)
    weights = pretrained.resolve_weights(name)
    ours = pretrained.preprocessing(weights)
    assert ours["mean"] == ours["std"] == (0.5, 0.5, 0.5)
    imagenet = weights.transforms()
    pixels = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))

    def normalised(mean: object, std: object) -> torch.Tensor:
        return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

    with torch.no_grad():
        expected = reference.eval()(normalised(imagenet.mean, imagenet.std))
        got = model.eval()(normalised(ours["mean"], ours["std"]))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    path.unlink(missing_ok=True)


def test_other_weights_keep_their_imagenet_normalisation() -> None:
    resnet = pretrained.preprocessing(pretrained.resolve_weights("resnet18"))
    assert resnet["mean"] == pytest.approx((0.485, 0.456, 0.406)) and resnet["std"] == pytest.approx((0.229, 0.224, 0.225))


def test_maxvit_file_fits_every_size_visionbench_builds_it_for() -> None:
    """MaxViT's relative position tables depend on its 7x7 windows, not the input size: the 224 px
    file fits the 448 px model as it is (built on the meta device: shapes only)."""
    with torch.device("meta"):
        published = torchvision.models.maxvit_t(weights=None, num_classes=1000).state_dict()
        model = create_model("maxvit_t", num_classes=NUM_CLASSES, in_channels=CHANNELS, image_size=448)
    fitted, report = adapt.fit_state_dict(model.state_dict(), published, "maxvit_t", num_classes=NUM_CLASSES)
    assert set(fitted) == set(published)
    assert report.adapted == ["stem.0.0.weight: 3 → 1 input channels (summed over RGB)"]
    assert [_name(e) for e in report.reinitialised] == ["classifier.5.weight"]


def test_position_embedding_resize_matches_torchvision_and_refuses_other_shapes() -> None:
    embedding = torch.randn(1, 1 + 7 * 7, 6, generator=torch.Generator().manual_seed(4))
    for side in (2, 7, 12):
        resized = adapt.resize_position_embedding(embedding, 1 + side * side)
        expected = interpolate_embeddings(side * 16, 16, OrderedDict({"encoder.pos_embedding": embedding}))
        assert torch.equal(resized, expected["encoder.pos_embedding"]) and torch.equal(resized[:, 0], embedding[:, 0])
    model_state = {"encoder.pos_embedding": torch.zeros(1, 1 + 3 * 4, 6)}  # not a square grid: no rule fits
    with pytest.raises(ValueError, match=r"encoder.pos_embedding: file \(1, 50, 6\) vs model \(1, 13, 6\)"):
        adapt.fit_state_dict(model_state, {"encoder.pos_embedding": embedding}, "vit.pth", num_classes=5)


def test_auxiliary_tensors_are_kept_when_the_model_has_the_head() -> None:
    """Only heads the model lacks are dropped: a model with ``aux1`` loads the file's ``aux1`` tensors."""
    stored = {"aux1.fc.weight": torch.ones(2, 3), "fc.weight": torch.ones(4, 3)}
    fitted, report = adapt.fit_state_dict({k: torch.zeros_like(v) for k, v in stored.items()}, stored, "x.pth")
    assert report.dropped == [] and torch.equal(fitted["aux1.fc.weight"], stored["aux1.fc.weight"])
    with pytest.raises(ValueError, match=r"aux3.fc.weight \(2, 3\) in the file but not in the model"):
        adapt.fit_state_dict({"fc.weight": torch.zeros(4, 3)}, {**stored, "aux3.fc.weight": torch.ones(2, 3)}, "x.pth")
