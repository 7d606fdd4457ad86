"""The command line: parses arguments and calls :mod:`visionbench.api`; nothing else.

Training options are generated from the fields of every task's config (:mod:`visionbench.config`),
so ``visionbench train --help`` always lists every option with its defaults per task and its choices.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from visionbench import __version__
from visionbench.config import CONFIG_CLASSES, TASKS, all_option_fields

_TYPES = {"int": int, "float": float, "str": str, "int | str": str}  # int | str: the config coerces and checks
_METAVARS = {"int": "N", "float": "X", "str": "NAME", "int | str": "VALUE", "data": "SPEC", "weights": "FILE",
             "threads": "N|auto"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per config field; default ``None`` so only given flags override the config."""
    group = parser.add_argument_group("training options (override the defaults of --task and --config)")
    for f in all_option_fields():
        help_text = f"{f.metadata['help']} ({_defaults_text(f.name)})"
        base = str(f.type).replace(" | None", "")
        if base == "bool":
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            choices = _all_choices(f.name)
            group.add_argument(_flag(f.name), type=_TYPES[base], default=None, choices=choices,
                               metavar=None if choices else _METAVARS.get(f.name, _METAVARS[base]), help=help_text)


def _task_fields(name: str) -> dict[str, Any]:
    """Task → the field ``name`` of that task's config, for the tasks that have it."""
    found = {}
    for task, cls in CONFIG_CLASSES.items():
        for f in dataclasses.fields(cls):
            if f.name == name:
                found[task] = f
    return found


def _defaults_text(name: str) -> str:
    """``default: X`` when every task agrees, else ``default: classify X, detect Y, …``; tasks
    without the option are named."""
    fields = _task_fields(name)
    defaults = {task: f.default if f.metadata.get("unset") is None else f.metadata["unset"] for task, f in fields.items()}
    if name == "task":
        return "default: 'classify'"
    text = (f"default: {next(iter(defaults.values()))!r}" if len(set(map(repr, defaults.values()))) == 1
            else "defaults: " + ", ".join(f"{task} {value!r}" for task, value in defaults.items()))
    if len(fields) < len(CONFIG_CLASSES):
        text += "; only --task " + "/".join(fields)
    return text


def _all_choices(name: str) -> tuple[Any, ...] | None:
    """The union of the field's choices over the tasks (the task's own config checks its own)."""
    choices: list[Any] = []
    for f in _task_fields(name).values():
        for choice in f.metadata.get("choices") or ():
            if choice not in choices:
                choices.append(choice)
    return tuple(choices) or None


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}; got {value}")
        return value

    return parse


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run options")
    group.add_argument("--out", metavar="DIR", help="run directory to write (default: a fresh runs/<name>-NNN)")
    group.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--workers", type=_int_at_least(0), default=None, metavar="N",
                       help="data-loader worker processes (default: 0 for in-memory data, else up to 4)")
    group.add_argument("--quiet", action="store_true", help="no progress bar or log lines on stderr")
    group.add_argument("--json", action="store_true", help="print metrics.json on stdout and nothing else")


def _add_output_options(parser: argparse.ArgumentParser, name: str, quiet_help: str) -> None:
    """``--out``, ``--quiet`` and ``--json`` of the commands that write a run directory without training."""
    parser.add_argument("--out", metavar="DIR", help=f"run directory to write (default: a fresh runs/{name}-NNN)")
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
    parser.add_argument("--json", action="store_true", help=f"print {'compare' if name == 'compare' else 'metrics'}.json "
                                                             "on stdout and nothing else")


def build_parser() -> argparse.ArgumentParser:
    """The ``visionbench`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="visionbench", description="Train, evaluate and compare computer-vision models.",
        epilog="Run `visionbench COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"visionbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a model, evaluate it on the test split, write a run directory",
        description="Train a model (default: cnn-small on the embedded digits), evaluate the best checkpoint "
                    "on the test split, and write a run directory. Works unchanged under torchrun (DDP).",
    )
    train.add_argument("--config", metavar="FILE", help="YAML file of training options (flags override it)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint; with --epochs N, "
                                                            "train it (finished or not) to N epochs")
    _add_config_options(train)
    _add_run_options(train)

    sweep = commands.add_parser(
        "sweep", help="search hyperparameters with Optuna (selection on validation, test evaluated once)",
        description="Search the training options of a space file (`lr: {loguniform: [1e-4, 1e-1]}`) with Optuna. "
                    "Each trial is a run directory in OUT/trials, selected and evaluated on the validation split only; "
                    "when the search ends, the best configuration and the default are each evaluated on the test "
                    "split once and compared (paired tests). Running the same command again continues the search. "
                    "Needs `pip install 'visionbench[sweep]'`.",
    )
    sweep.add_argument("--space", required=True, metavar="FILE", help="the search space YAML file")
    sweep.add_argument("--trials", type=_int_at_least(1), default=None, metavar="N",
                       help="finished trials that end the search (default: 20; grid: the whole grid)")
    sweep.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe", help="Optuna sampler (default: tpe)")
    sweep.add_argument("--pruner", choices=("asha", "median", "none"), default="asha",
                       help="stop poor trials early on their per-epoch validation value (default: asha)")
    sweep.add_argument("--workers", type=_int_at_least(1), default=None, metavar="K",
                       help="trials at once: CPU threads are split between them; on CUDA one per visible GPU (default)")
    sweep.add_argument("--storage", metavar="URL", help="Optuna storage shared by every worker and machine, e.g. "
                                                         "postgresql://user@host/db (default: sqlite OUT/study.db)")
    sweep.add_argument("--study", default="visionbench", metavar="NAME", help="study name in the storage")
    sweep.add_argument("--config", metavar="FILE", help="YAML file of fixed training options (flags override it)")
    sweep.add_argument("--out", metavar="DIR", help="sweep directory (default: runs/sweep-<space file stem>)")
    sweep.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    sweep.add_argument("--loader-workers", type=_int_at_least(0), default=None, metavar="N",
                       help="data-loader worker processes of each trial")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    sweep.add_argument("--json", action="store_true", help="print sweep.json on stdout and nothing else")
    _add_config_options(sweep)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a trained run, or the predictions file of any tool",
        description="Evaluate the best checkpoint of RUN_DIR on the test split of its data (or --data), or "
                    "evaluate --pred FILE: predictions of any tool as CSV (id,label,pred or id,label,prob_0..prob_K-1), "
                    "JSON, NPZ or Parquet; several files or a folder are shards of one set of predictions. Either way "
                    "a run directory with metrics.json and report.html is written.",
    )
    evaluate.add_argument("run", metavar="RUN_DIR", nargs="?", help="a run directory made by `visionbench train`")
    evaluate.add_argument("--pred", metavar="FILE", nargs="+",
                          help="a predictions file to evaluate instead of a run; several files, a folder or a pattern "
                               "(part-*.csv): shards, evaluated as one file holding them in that order (classify)")
    evaluate.add_argument("--resamples", type=_int_at_least(0), default=None, metavar="N",
                          help="bootstrap resamples of each metric's 95%% interval (default: 1000, or the run's "
                               "--resamples; 0: no intervals); the time grows with samples x resamples")
    evaluate.add_argument("--task", default="classify", choices=TASKS, help="task of --pred (default: classify)")
    evaluate.add_argument("--gt", metavar="PATH", help="ground truth of --pred: a COCO instances JSON (detect) or a "
                                                        "folder of PNG masks (segment)")
    evaluate.add_argument("--num-classes", type=int, metavar="K",
                          help="number of classes, when some appear in no column of --pred (classify) or mask (segment)")
    evaluate.add_argument("--protocol", default="pycocotools", choices=("pycocotools", "coco-fixed", "voc07", "voc12"),
                          help="detection protocol (default: pycocotools, bit-exact)")
    evaluate.add_argument("--ignore-index", type=int, default=255, metavar="V",
                          help="mask value left out of segmentation metrics (default: 255)")
    evaluate.add_argument("--data", help="evaluate RUN_DIR on this dataset's test split instead (same classes)")
    evaluate.add_argument("--allow-partial", action="store_true",
                          help="segment: score only the paired masks when some ground-truth masks have no prediction "
                               "(default: an error listing them)")
    _add_run_options(evaluate)

    predict = commands.add_parser(
        "predict", help="predict image files with a trained run (or an exported model file)",
        description="Predict image files (or folders of images) with RUN_DIR's best weights: classes with top-5 "
                    "probabilities (predictions.csv), boxes drawn on the images (NAME.png, detections.json), or "
                    "colour-coded mask PNGs (NAME.png palette masks, NAME_overlay.png). With --model FILE, every "
                    "argument is an image and the exported file predicts, with the run's preprocessing from the "
                    "export.json and inference.json beside it.",
    )
    predict.add_argument("run", metavar="RUN_DIR", help="a run directory made by `visionbench train` (with --model: "
                                                         "the first image)")
    predict.add_argument("inputs", nargs="*", metavar="IMAGE", help="image files or folders of images")
    predict.add_argument("--model", metavar="FILE", help="predict with this file of `visionbench export` (.onnx, .pt, "
                                                          ".pt2) instead of a run, on the CPU")
    predict.add_argument("--out", metavar="DIR", help="folder to write (default: RUN_DIR/predict; with --model: "
                                                       "predict/ beside the file)")
    predict.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N (default: auto)")
    predict.add_argument("--score-threshold", type=float, metavar="X",
                         help="detection: lowest score drawn and listed (default: the run's --score-threshold)")

    explain = commands.add_parser(
        "explain", help="heatmaps of why a trained run predicts what it does",
        description="Explain RUN_DIR's predictions on image files (or folders of images): one PNG per image and "
                    "method (the input, then a heatmap overlay per explained class, titled with the prediction) "
                    "and explain.json. Classification and segmentation runs.",
    )
    explain.add_argument("run", metavar="RUN_DIR", help="a classification or segmentation run made by `visionbench train`")
    explain.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders of images")
    explain.add_argument("--method", default="gradcam", metavar="METHOD[,METHOD]",
                         help="gradcam, gradcam++ or integrated-gradients; several separated by commas (default: gradcam)")
    explain.add_argument("--target", metavar="CLASS", help="class (name or index) to explain (default: the predicted "
                         "class; segmentation: every class predicted on some pixel)")
    explain.add_argument("--layer", metavar="NAME", help="module Grad-CAM reads (default: the last convolutional stage)")
    explain.add_argument("--baseline", default="black", choices=("black", "mean"),
                         help="integrated gradients: black image or the mean colour (zeros after normalisation) "
                              "(default: black)")
    explain.add_argument("--steps", type=_int_at_least(1), default=32, metavar="N",
                         help="integrated gradients: steps of the path integral (default: 32)")
    explain.add_argument("--out", metavar="DIR", help="folder to write (default: RUN_DIR/explain)")
    explain.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N (default: auto)")
    explain.add_argument("--json", action="store_true", help="print explain.json on stdout and nothing else")

    exporting = commands.add_parser(
        "export", help="export a trained run to ONNX, TorchScript or torch.export, checked on its test split",
        description="Export RUN_DIR's best weights to --format (onnx: opset 18 with onnxruntime, needs `pip install "
                    "'visionbench[export]'`; torchscript: torch.jit.trace, .pt; pt2: torch.export, .pt2) and write "
                    "export.json: input shape and dtype, dynamic axes, the run's preprocessing, and the parity check "
                    "(the file and the run's model on the test split: largest output difference, identical "
                    "predictions, CPU latency at batch 1 and 32). A parity failure is an error. --quantize, --prune "
                    "and --half add compressed files and a table of size, latency and test metric against the run's "
                    "model with compare's paired test.",
    )
    exporting.add_argument("run", metavar="RUN_DIR", help="a run directory made by `visionbench train`")
    exporting.add_argument("--format", default="onnx", choices=("onnx", "torchscript", "pt2"),
                           help="file format (default: onnx)")
    exporting.add_argument("--quantize", choices=("int8",), help="also an int8 ONNX model: onnxruntime's static "
                                                                  "quantization calibrated on the train split")
    exporting.add_argument("--prune", type=float, metavar="FRACTION",
                           help="also a model with this fraction of each layer's smallest weights zeroed, e.g. 0.5")
    exporting.add_argument("--half", action="store_true", help="also a float16 model for CUDA (needs a GPU)")
    exporting.add_argument("--evaluate", action="store_true",
                           help="evaluate the exported file on the test split against the run (the table) even "
                                "without compression")
    exporting.add_argument("--out", metavar="FILE_OR_DIR",
                           help="folder to write, or the model file's name (default: RUN_DIR/export-FORMAT)")
    exporting.add_argument("--quiet", action="store_true", help="no log lines on stderr")
    exporting.add_argument("--json", action="store_true", help="print export.json on stdout and nothing else")

    compare = commands.add_parser(
        "compare", help="test whether runs differ on the same test samples",
        description="Compare two or more runs on the same test samples: exact McNemar test on correctness and a "
                    "paired bootstrap of each metric for every pair (Holm-adjusted with three runs or more).",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="two or more run directories with predictions.csv")
    compare.add_argument("--resamples", type=_int_at_least(1), default=1000, metavar="N",
                         help="paired bootstrap resamples per pair (default: 1000)")
    compare.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the resamples (default: 0)")
    _add_output_options(compare, "compare", "no log lines on stderr")

    quality = commands.add_parser(
        "quality", help="full-reference quality (PSNR, SSIM, MS-SSIM, ...) of two images, folders or videos",
        description="Compare REF and DIST: two image files, two folders paired by relative path (unpaired files are "
                    "reported), or two videos paired frame by frame (decoded one frame at a time). Every convention "
                    "is explicit and recorded: --profile names the reference reproduced exactly, --channel the "
                    "planes compared, --data-range the value range.",
    )
    quality.add_argument("ref", metavar="REF", help="reference image, folder or video")
    quality.add_argument("dist", metavar="DIST", help="distorted image, folder or video")
    quality.add_argument("--metrics", default="psnr,ssim",
                         help="comma-separated, from: psnr, ssim, ms_ssim, mse, mae, gmsd, vif_p, haarpsi, fsim, "
                              "vmaf (FFmpeg's libvmaf), lpips and dists (--model-file lpips=FILE), and the no-reference niqe "
                              "and brisque (--model-file brisque=FILE), which score DIST alone (default: psnr,ssim)")
    quality.add_argument("--profile", default="skimage", choices=("skimage", "matlab", "ffmpeg"),
                         help="skimage: scikit-image's PSNR/SSIM (default); matlab: Wang's ssim.m/msssim.m with "
                              "their automatic downsampling; ffmpeg: FFmpeg's ssim/psnr filters (8x8 windows)")
    quality.add_argument("--channel", choices=("rgb", "y", "y-studio", "gray-matlab", "y-matlab"), default=None,
                         help="planes compared: rgb as given, y = BT.601 full-range luma, y-studio = BT.601 16-235 "
                              "luma (rgb2ycbcr), gray-matlab = MATLAB's rgb2gray, y-matlab = MATLAB's rgb2ycbcr Y "
                              "(both rounded for 8-bit input); default rgb for images (gray-matlab with --profile "
                              "matlab), y (the stored luma plane) for videos")
    quality.add_argument("--crop-border", type=_int_at_least(0), default=0, metavar="PX",
                         help="pixels removed from each border before measuring (default: 0)")
    quality.add_argument("--data-range", type=float, default=None, metavar="R",
                         help="value range of the samples (default: 255 for 8-bit, 2^bits-1 for videos; required for "
                              "16-bit images, e.g. 65535 or 1023 for 10-bit data)")
    quality.add_argument("--resize", choices=("bicubic", "bilinear", "area", "nearest"), default=None,
                         help="resize each distorted image to its reference's size (default: a size mismatch is an "
                              "error, since resizing changes what is measured)")
    quality.add_argument("--psnr-cap", default=None, metavar="DB|vmaf",
                         help="cap PSNR at DB decibels, or 'vmaf' for libvmaf's 6*bits+12 dB (60 dB at 8 bits); "
                              "default: identical pairs give inf, left out of the mean and counted")
    quality.add_argument("--vmaf-model", choices=("vmaf_v0.6.1", "vmaf_4k_v0.6.1", "vmaf_v0.6.1neg"),
                         default="vmaf_v0.6.1", help="libvmaf's built-in model for --metrics vmaf (default: vmaf_v0.6.1)")
    quality.add_argument("--mos", metavar="SCORES.csv", default=None,
                         help="human scores of the images of two folders (columns: dist or file, score or mos or "
                              "dmos, optional ref and type): adds SROCC, KROCC, and PLCC/RMSE after the VQEG "
                              "logistic fit, with bootstrap intervals, to metrics.json and the report")
    quality.add_argument("--dmos", action="store_true", help="the --mos scores are DMOS: lower means better quality")
    quality.add_argument("--mos-partial", action="store_true",
                         help="leave pairs without a score and scores without a pair out of the agreement (listed) "
                              "instead of stopping with an error")
    quality.add_argument("--model-file", action="append", default=[], metavar="METRIC=FILE",
                         help="a local model of a metric that needs one (brisque=LIVE's SVR model as .npz, "
                              "lpips=LPIPS weights, dists=DISTS alpha/beta with or without the VGG16); repeat for "
                              "several; nothing is downloaded")
    quality.add_argument("--csv", action="store_true", help="print one CSV row per image pair or frame on stdout")
    quality.add_argument("--device", default="auto",
                         help="where the metrics run: auto (CUDA if available), cpu, cuda or cuda:N; files are read "
                              "and videos decoded on the CPU either way (default: auto)")
    _add_output_options(quality, "quality", "no progress bar or log lines on stderr")

    converting = commands.add_parser(
        "convert", help="convert a detection dataset between COCO, Pascal VOC and YOLO",
        description="Read SOURCE (coco:ANNOTATIONS.json[:IMAGES], voc:ROOT or yolo:DATA.yaml) and write it in another "
                    "format under --out. One split per call; what a format cannot hold (YOLO has no crowd or difficult "
                    "flags) is stated in the docs.",
    )
    converting.add_argument("source", metavar="SOURCE", help="coco:ANNOTATIONS.json[:IMAGES], voc:ROOT or yolo:DATA.yaml")
    converting.add_argument("--to", required=True, choices=("coco", "voc", "yolo"), help="the format to write")
    converting.add_argument("--out", required=True, metavar="DIR", help="output folder")
    converting.add_argument("--split", default=None, help="split to read and write (default: the format's usual one)")
    converting.add_argument("--images", default="copy", choices=("copy", "symlink", "none"),
                            help="how images reach the output folder (default: copy)")

    listing = commands.add_parser("list", help="list registered models, datasets, losses or metrics")
    listing.add_argument("what", choices=("models", "datasets", "losses", "metrics"))
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    return parser


def _print_result(result: Any, as_json: bool) -> None:
    from visionbench.engine.results import format_metrics
    from visionbench.engine.rundir import metrics_json_text

    if as_json:
        print(metrics_json_text(result.metrics))
    else:
        print(format_metrics(result.metrics))
        print(f"run directory: {result.run_dir}")


def _run_train(args: argparse.Namespace) -> None:
    from visionbench import api

    overrides = {f.name: getattr(args, f.name) for f in all_option_fields() if getattr(args, f.name) is not None}
    quiet = args.quiet or args.json
    if args.resume:
        others = [key for key in overrides if key != "epochs"]  # --epochs N trains a run to N epochs
        if others or args.config or args.out:
            raise ValueError(f"--resume continues {args.resume} with its saved configuration; drop the other "
                             f"training options ({', '.join(_flag(k) for k in others) or '--config/--out'}); "
                             "only --epochs N may be given, to train it to N epochs.")
        result = api.train(resume=args.resume, device=args.device, workers=args.workers, quiet=quiet,
                           **{key: overrides[key] for key in overrides if key == "epochs"})
    else:
        result = api.train(config_file=args.config, out=args.out, device=args.device, workers=args.workers,
                           quiet=quiet, **overrides)
    if result_is_main():
        _print_result(result, args.json)


def _run_sweep(args: argparse.Namespace) -> None:
    import json

    from visionbench import api

    overrides = {f.name: getattr(args, f.name) for f in all_option_fields() if getattr(args, f.name) is not None}
    result = api.run_sweep(args.space, config_file=args.config, out=args.out, trials=args.trials, sampler=args.sampler,
                           pruner=args.pruner, workers=args.workers, storage=args.storage, study=args.study,
                           device=args.device, loader_workers=args.loader_workers, quiet=args.quiet or args.json,
                           **overrides)
    if args.json:
        print((result.sweep_dir / "sweep.json").read_text(encoding="utf-8"), end="")
        return
    summary = result.summary
    best, final = summary["best"], summary["final"]
    states = [t["state"] for t in summary["trials"]]
    resumed = sum(1 for t in summary["trials"] if t["state"] == "FAIL" and str(t.get("error", "")).startswith("cut short"))
    failed = states.count("FAIL") - resumed
    print(f"{len(states)} trials: {states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
          f"{failed} failed" + (f", {resumed} cut short and resumed" if resumed else ""))
    if best is not None:
        print(f"best trial {best['number']} ({best['run_dir']}): {summary['monitor']} {best['value']:.4f} with "
              f"{json.dumps(best['params'])}")
    if final is not None:
        validation, headline = final["validation"], final["headline"]
        if validation["best"] is not None and validation["default"] is not None:
            print(f"validation ({summary['monitor']}): best configuration {validation['best']:.4f}, default "
                  f"{validation['default']:.4f}")
        best_test, default_test = final["best"]["metrics"][headline], final["default"]["metrics"][headline]
        print(f"test {headline} (evaluated once each): best configuration {_with_interval(best_test)}, default "
              f"{_with_interval(default_test)}")
        print(f"test comparison: {final['comparison']['verdict']}")
    print(f"sweep directory: {result.sweep_dir} (report.html, sweep.json, trials.csv)")


def _with_interval(entry: dict[str, Any]) -> str:
    """``0.9722 [0.9548, 0.9861]`` of a metrics entry (its value alone when it has no interval)."""
    ci = entry.get("ci95")
    return f"{entry['value']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def result_is_main() -> bool:
    """Only rank 0 prints results under torchrun."""
    return os.environ.get("RANK", "0") == "0"


def _run_evaluate(args: argparse.Namespace) -> None:
    from visionbench import api

    result = api.evaluate(args.run, pred=args.pred, task=args.task, gt=args.gt, num_classes=args.num_classes,
                          protocol=args.protocol, ignore_index=args.ignore_index, data=args.data, out=args.out,
                          device=args.device, workers=args.workers, quiet=args.quiet or args.json,
                          allow_partial=args.allow_partial, resamples=args.resamples)
    if result_is_main():
        _print_result(result, args.json)


def _run_compare(args: argparse.Namespace) -> None:
    from visionbench import api
    from visionbench.comparison import format_comparison
    from visionbench.engine.rundir import metrics_json_text

    result = api.compare(args.runs, out=args.out, resamples=args.resamples, seed=args.seed,
                         quiet=args.quiet or args.json)
    if args.json:
        print(metrics_json_text(result.result))
    else:
        print(format_comparison(result.result))
        print(f"run directory: {result.run_dir}")


def _run_predict(args: argparse.Namespace) -> None:
    from visionbench import api

    run, inputs = (None, [args.run, *args.inputs]) if args.model else (args.run, args.inputs)  # --model: all images
    result = api.predict(run, inputs, out=args.out, device=args.device, score_threshold=args.score_threshold,
                         model=args.model)
    for row in result.rows:
        if "pred" in row:
            print(f"{row['file']}: {row['pred']} ({row['probability']:.3f})")
        elif "probabilities" in row:  # multi-label: every label at or above the threshold
            print(f"{row['file']}: " + (", ".join(f"{n} ({p:.3f})" for n, p in row["labels"]) or "no label"))
        elif "boxes" in row:
            print(f"{row['file']}: {len(row['boxes'])} boxes " + ", ".join(
                f"{c} {s:.2f}" for c, s in zip(row["classes"], row["scores"], strict=True)))
        else:
            print(f"{row['file']}: {row['mask']}")
    print(f"wrote {result.out_dir}")


def _run_explain(args: argparse.Namespace) -> None:
    import json

    from visionbench import api

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    result = api.explain(args.run, args.inputs, method=methods, target=args.target, layer=args.layer, out=args.out,
                         device=args.device, baseline=args.baseline, steps=args.steps)
    if args.json:
        print(json.dumps(result.rows, indent=1))
        return
    for row in result.rows:
        layer = f" on {row['layer']}" if row["layer"] else ""
        print(f"{row['image']}: {row['method']}{layer}, target {row['target']} "
              f"(p={row['target_probability']:.3f}) -> {row['file']}")
    print(f"wrote {result.out_dir}")


def _run_export(args: argparse.Namespace) -> None:
    from visionbench import api
    from visionbench.engine.rundir import metrics_json_text

    result = api.export(args.run, format=args.format, out=args.out, quantize=args.quantize, half=args.half,
                        prune=args.prune, evaluate=args.evaluate, quiet=args.quiet or args.json)
    if args.json:
        print(metrics_json_text(result.info))
        return
    info, parity = result.info, result.info["parity"]
    print(f"exported {result.model_file} ({info['format']}; input {info['input']['name']} {info['input']['dtype']} "
          f"{info['input']['shape']})")
    diffs = ", ".join(f"{name} {value:.2g}" for name, value in parity["max_abs_diff"].items())
    print(f"parity on the test split ({parity['samples']} images): passed, largest difference {diffs}, "
          f"{parity['differences_at_ties']} prediction(s) differing at ties")
    for who, timing in parity["latency_ms_per_image"].items():
        print(f"latency {who}: " + ", ".join(f"{key.replace('_', ' ')} {ms:.3f} ms/image" for key, ms in timing.items()))
    if result.table:
        print(result.table)
    print(f"wrote {result.out_dir / 'export.json'}")


def _run_convert(args: argparse.Namespace) -> None:
    from visionbench import api

    print(f"wrote {api.convert(args.source, args.to, args.out, split=args.split, images=args.images)}")


def _psnr_cap_argument(text: str | None) -> float | str | None:
    """``--psnr-cap``: a number of dB, or ``vmaf``."""
    if text is None or text == "vmaf":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--psnr-cap must be a number of dB or 'vmaf'; got {text!r}.") from None


def _model_files(items: list[str]) -> dict[str, str]:
    """``--model-file METRIC=FILE`` options as ``{metric: file}``; a malformed one is an error."""
    files: dict[str, str] = {}
    for item in items:
        metric, sep, file = item.partition("=")
        if not sep or not metric.strip() or not file.strip():
            raise ValueError(f"--model-file must be METRIC=FILE (e.g. lpips=lpips_vgg.pth); got {item!r}.")
        files[metric.strip()] = file.strip()
    return files


def _run_quality(args: argparse.Namespace) -> None:
    from visionbench import api

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    result = api.quality(args.ref, args.dist, metrics=metrics, profile=args.profile, channel=args.channel,
                         crop_border=args.crop_border, data_range=args.data_range, resize=args.resize,
                         psnr_cap=_psnr_cap_argument(args.psnr_cap), out=args.out,
                         quiet=args.quiet or args.json or args.csv, vmaf_model=args.vmaf_model,
                         mos=args.mos, dmos=args.dmos, mos_partial=args.mos_partial,
                         model_files=_model_files(args.model_file), device=args.device)
    from visionbench.engine.rundir import QUALITY_ITEMS, metrics_json_text

    if args.json:
        print(metrics_json_text(result.metrics))
    elif args.csv:
        print((result.run_dir / QUALITY_ITEMS).read_text(), end="")
    else:
        for name in metrics:
            entry = result.metrics[name]
            low, high = entry["ci95"]
            interval = f"  [{low:.4f}, {high:.4f}]" if low == low else ""
            print(f"{name:<8} {entry['value']:.4f}{interval}  (mean of {result.metrics['num_samples']} pair(s))")
        if "psnr_pooled_mse" in result.metrics:
            print(f"psnr of the pooled MSE {result.metrics['psnr_pooled_mse']['value']:.4f} dB")
        if "harmonic_mean" in result.metrics.get("vmaf", {}):
            print(f"vmaf harmonic mean {result.metrics['vmaf']['harmonic_mean']:.4f} (libvmaf's pooling)")
        if "mos" in result.metrics:
            from visionbench.quality.mos import table_lines

            print("\n".join(["", *table_lines(result.metrics["mos"]), ""]))
        print(f"run directory: {result.run_dir}")


def _run_list(args: argparse.Namespace) -> None:
    if args.what == "metrics":
        import fnmatch

        from visionbench.metrics import DETECTION_HIGHER_IS_BETTER, HIGHER_IS_BETTER, SEGMENTATION_HIGHER_IS_BETTER
        from visionbench.quality import QUALITY_METRICS

        for task, table in (("classify", HIGHER_IS_BETTER), ("detect", DETECTION_HIGHER_IS_BETTER),
                            ("segment", SEGMENTATION_HIGHER_IS_BETTER)):
            for name, higher in table.items():
                if fnmatch.fnmatchcase(name, args.pattern):
                    print(f"{name:<24} {'higher' if higher else 'lower'} is better  ({task})")
        for name, metric in QUALITY_METRICS.items():
            if fnmatch.fnmatchcase(name, args.pattern):
                profiles = "any profile" if "*" in metric.functions else "profiles " + ", ".join(metric.functions)
                print(f"{name:<24} {'higher' if metric.higher_is_better else 'lower'} is better  "
                      f"(quality: {metric.description}; {profiles})")
        return
    if args.what == "models" and args.pattern.startswith("timm:"):  # imports timm (and torch): asked for
        from visionbench.models.timm_backend import timm_info, timm_names

        for name in timm_names(args.pattern[len("timm:"):]):
            print(f"{name:<34} {'classify':<16} {timm_info(name)['description']}")
        return
    if args.what == "models":
        from visionbench.models import MODELS
        from visionbench.models.timm_backend import timm_listing_hint

        registries = [(MODELS, lambda info: info["task"])]
        if args.pattern == "*":  # on stderr: stdout stays one registered name per line
            print(timm_listing_hint(), file=sys.stderr)
    elif args.what == "datasets":
        from visionbench.data import DATASETS

        registries = [(DATASETS, lambda info: "/".join(info["tasks"]))]
    else:
        from visionbench.losses import DETECTION_LOSSES, LOSSES, SEGMENTATION_LOSSES

        detect_kinds = {"box": "detect (box)", "classification": "detect (class)"}
        registries = [(LOSSES, lambda info: "classify"), (DETECTION_LOSSES, lambda info: detect_kinds[info["kind"]]),
                      (SEGMENTATION_LOSSES, lambda info: "segment")]
    for registry, task_of in registries:
        for name in registry.names(args.pattern):
            info = registry.info(name)
            print(f"{name:<34} {task_of(info):<16} {info.get('description', '')}")


def _message(error: BaseException) -> str:
    """The user-facing message; errors raised in a DataLoader worker carry the worker's whole
    traceback in their text, of which only the last line is the message."""
    text = str(error)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``visionbench`` and ``python -m visionbench``; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train", *argv]  # `visionbench` alone, or with training flags, means train
    args = parser.parse_args(argv)
    handlers = {"train": _run_train, "sweep": _run_sweep, "evaluate": _run_evaluate, "quality": _run_quality, "convert": _run_convert, "compare": _run_compare, "list": _run_list,
                "predict": _run_predict, "explain": _run_explain, "export": _run_export}
    from visionbench._extras import MissingExtraError
    from visionbench.engine import NonFiniteLossError

    try:
        handlers[args.command](args)
    except ValueError as error:
        print(f"visionbench {args.command}: error: {_message(error)}", file=sys.stderr)
        return 2
    except MissingExtraError as error:  # an optional package is missing: the message names its extra
        print(f"visionbench {args.command}: error: {error}", file=sys.stderr)
        return 1
    except NonFiniteLossError as error:
        print(f"visionbench {args.command}: error: {_message(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `visionbench … | head`: the reader left; exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
