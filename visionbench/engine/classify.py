"""Classification in the training loop: image-label batches, logits losses, accuracy while
training, and the test split's metrics, ``predictions.csv`` and worst examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionbench.config import ClassifyConfig
from visionbench.data import ClassificationData, load_dataset, parse_data_spec
from visionbench.data.mixing import BatchMix
from visionbench.data.transforms import TransformedDataset, build_preset, normalization_stats, resolve_augment
from visionbench.engine import rundir
from visionbench.engine.evaluation import Predictions, classification_report, predict_split, validation_statistics
from visionbench.engine.initial_weights import pretrained_input, weights_preprocessing
from visionbench.engine.loaders import DataBundle, eval_loader
from visionbench.engine.results import finish_test
from visionbench.engine.runtime import Runtime, autocast_dtype
from visionbench.engine.task import TaskHooks
from visionbench.losses import create_loss
from visionbench.models import model_input_size


def build_data(config: ClassifyConfig, data: ClassificationData | None = None) -> DataBundle:
    """Load the dataset (unless given) and wrap each split with its transform preset."""
    data = data or load_dataset(
        config.data, seed=config.split_seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction
    )
    kind, _ = parse_data_spec(config.data)
    fixed_size = data.image_size if isinstance(getattr(data.train, "images", None), torch.Tensor) else None
    image_size = model_input_size(config.model, fixed_size, config.image_size)
    mean, std = normalization_stats(kind, data.train, data.in_channels)
    preprocessing, resize_size = weights_preprocessing(config), None
    if preprocessing is not None:  # pretrained weights: their crop, resize and normalisation
        image_size, resize_size, mean, std = pretrained_input(preprocessing, config.image_size, data.in_channels)
    augment = resolve_augment(config.augment, kind)
    common = {"image_size": image_size, "native_size": fixed_size, "mean": mean, "std": std, "resize_size": resize_size}
    train_preset = build_preset(augment, train=True, **common)
    eval_preset = build_preset(augment, train=False, **common)
    # Random erasing and MixUp/CutMix act on whole training batches under the batch's seed.
    mix = BatchMix(data.num_classes, mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, erase_p=config.random_erase)
    return DataBundle(
        data=data,
        train=TransformedDataset(data.train, train_preset, seed=config.seed,
                                 mix=mix if mix.mixes or mix.erase_p > 0 else None),
        val=TransformedDataset(data.val, eval_preset, seed=config.seed),
        test=TransformedDataset(data.test, eval_preset, seed=config.seed),
        image_size=image_size, augment=augment, mean=tuple(mean), std=tuple(std), native_size=fixed_size,
        resize_size=resize_size,
    )


def balanced_sample_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weights ``1 / count(class)``: every class is drawn equally often."""
    counts = torch.bincount(targets, minlength=num_classes).double()
    return (1.0 / counts.clamp_min(1))[targets]


def balanced_class_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """scikit-learn's ``class_weight="balanced"``: ``n_samples / (n_classes * count)``."""
    counts = torch.bincount(targets, minlength=num_classes).double()
    return (len(targets) / (num_classes * counts.clamp_min(1))).float()


def build_loss(config: ClassifyConfig, bundle: DataBundle) -> nn.Module:
    """The registered loss, with balanced class weights when asked for."""
    data = bundle.data
    weights = balanced_class_weights(data.train.targets(), data.num_classes) if config.class_weights == "balanced" else None
    return create_loss(config.loss, num_classes=data.num_classes, label_smoothing=config.label_smoothing,
                       class_weights=weights)


def parameter_groups(config: ClassifyConfig, model: nn.Module) -> Any:
    """Every parameter in one group (weight decay on all, as the classification recipes were tuned)."""
    return model.parameters()


def sample_weights(config: ClassifyConfig, bundle: DataBundle) -> torch.Tensor | None:
    """Class-balanced sampling weights under ``--balance``."""
    return balanced_sample_weights(bundle.data.train.targets(), bundle.data.num_classes) if config.balance else None


def batch_loss(trainer: Any, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, int]:
    """Mean loss of an ``(images, labels)`` batch, and its size. Under MixUp/CutMix ``labels``
    are soft targets ``[B, K]``: no training accuracy is computed from them (only validation's
    hard labels give accuracy)."""
    images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=trainer.autocast_dtype, enabled=trainer.autocast_dtype is not None):
        logits = trainer.model(images)
    return trainer.loss_fn(logits.float(), labels), len(labels)


def validate(model: nn.Module, loader: Any, trainer: Any, runtime: Runtime, bundle: DataBundle) -> dict[str, float]:
    """``val_loss`` and ``val_accuracy`` of ``model`` on the validation loader."""
    loss, accuracy, _ = validation_statistics(model, loader, trainer.loss_fn, device=runtime.device,
                                              dist=runtime.dist, autocast_dtype=trainer.autocast_dtype)
    return {"val_loss": loss, "val_accuracy": accuracy}


def evaluate_and_write(
    model: nn.Module, config: ClassifyConfig, bundle: DataBundle, run_dir: Path, runtime: Runtime, log: rundir.RunLog
) -> dict[str, Any]:
    """Test-split predictions and metrics of ``model``, written to ``run_dir`` by rank 0."""

    loss_fn = create_loss(config.loss, num_classes=bundle.data.num_classes, label_smoothing=config.label_smoothing).to(runtime.device)
    predictions = predict_split(model, eval_loader(bundle.test, config, runtime), loss_fn, device=runtime.device,
                                dist=runtime.dist, autocast_dtype=autocast_dtype(config.amp, runtime.device),
                                main_only=True)
    if predictions is None:  # not rank 0: the report is computed once, there, and broadcast
        return finish_test(None, None, run_dir, runtime, log)
    report = classification_report(predictions.labels, predictions.preds, predictions.probs, bundle.data.classes,
                                   resamples=config.resamples, seed=config.seed)
    report["split"] = runtime.eval_split

    def write(run_dir: Path) -> None:
        ids = [bundle.data.test.ids[i] for i in predictions.indices.tolist()]
        rundir.write_predictions(run_dir / rundir.PREDICTIONS, ids, predictions.labels, predictions.preds, predictions.probs)
        write_worst_examples(run_dir / rundir.EXAMPLES, bundle.data.test, predictions)
        from visionbench.explain.run_examples import write_classification_saliency

        # Grad-CAM of the worst mistakes and a few correct images per class, for the report (never fails the run).
        write_classification_saliency(run_dir, model, bundle.test, bundle.data.test.ids, predictions,
                                      list(bundle.data.classes), mean=bundle.mean, std=bundle.std,
                                      device=runtime.device, log=log)

    return finish_test(report, write, run_dir, runtime, log)


# Images kept for the report's worst-errors grid; larger images are resized to this side so the
# file stays small (the report reads only run-directory files, so the images must be saved).
WORST_EXAMPLES, EXAMPLE_SIDE = 32, 96


def write_worst_examples(path: Path, test_set: Any, predictions: Predictions, *, count: int = WORST_EXAMPLES) -> None:
    """Save the most confident mistakes (raw test images, before normalisation) to ``examples.npz``:
    ``images`` uint8 ``[M, C, H, W]``, ``ids``, ``labels``, ``preds``, ``confidence``."""
    import numpy as np
    from torchvision.transforms.v2 import functional as tvf

    confidence = predictions.probs.max(dim=1).values
    wrong = torch.nonzero(predictions.preds != predictions.labels).flatten()
    worst = wrong[torch.argsort(confidence[wrong], descending=True, stable=True)][:count]
    images = [test_set[int(predictions.indices[p])][0] for p in worst.tolist()]
    if len({tuple(image.shape) for image in images}) > 1 or any(max(i.shape[-2:]) > EXAMPLE_SIDE for i in images):
        images = [tvf.resize(image, [EXAMPLE_SIDE, EXAMPLE_SIDE], antialias=True) for image in images]
    channels = images[0].shape[0] if images else 1
    np.savez(
        path,
        images=torch.stack(images).numpy() if images else np.zeros((0, channels, 1, 1), dtype=np.uint8),
        ids=np.array([test_set.ids[int(predictions.indices[p])] for p in worst.tolist()], dtype=str),
        labels=predictions.labels[worst].numpy(), preds=predictions.preds[worst].numpy(),
        confidence=confidence[worst].double().numpy(),
    )


HOOKS = TaskHooks(
    build_data=build_data, build_loss=build_loss, parameter_groups=parameter_groups,
    sample_weights=sample_weights, batch_loss=batch_loss, validate=validate, evaluate_and_write=evaluate_and_write,
)

__all__ = ["HOOKS", "balanced_class_weights", "balanced_sample_weights", "build_data",
           "evaluate_and_write", "write_worst_examples"]
