"""Hostile inputs for the layout readers (VOC, YOLO) and the YAML files (config, sweep space).

See :mod:`tests.hostile.corpus` for :class:`Case`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.hostile.corpus import Case, error, ok, png_bytes, writer

# ------------------------------------------------------------------------------------ Pascal VOC

_VOC_OBJECT = ("<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin>"
               "<ymin>2</ymin><xmax>{xmax}</xmax><ymax>6</ymax></bndbox></object>")


def voc_xml(name: str = "cat", xmin: str = "2", xmax: str = "5", difficult: str = "0", size: str = "8",
            extra: str = "") -> str:
    """One VOC annotation of an 8x8 image ``x.jpg`` with one object (fields as text)."""
    obj = _VOC_OBJECT.format(name=name, xmin=xmin, xmax=xmax, difficult=difficult)
    return (f"<annotation><filename>x.jpg</filename><size><width>{size}</width><height>8</height><depth>1</depth>"
            f"</size>{obj}{extra}</annotation>")


def voc_root(xml: str | bytes | None = None, *, split: str | bytes = "x\n", image: bytes | None = None,
             classes: str = "cat\ndog\n") -> Callable[[Path], Path]:
    """A build function writing a VOC root (``classes.txt``, one image ``x``) and returning it."""
    def build(folder: Path) -> Path:
        root = folder / "voc"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (root / sub).mkdir(parents=True)
        writer("classes.txt", classes)(root)
        writer("ImageSets/Main/trainval.txt", split)(root)
        (root / "JPEGImages" / "x.jpg").write_bytes(png_bytes(size=(8, 8)) if image is None else image)
        writer("Annotations/x.xml", voc_xml() if xml is None else xml)(root)
        return root
    return build


_BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                   + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                             for i in range(1, 10))
                   + ']><annotation><filename>&lol9;</filename></annotation>')


def voc_cases() -> list[Case]:
    """VocDetection(root, "trainval")."""
    x = "x.xml"
    boxes = lambda d: d.annotations().records[0].boxes.tolist()  # noqa: E731
    return [
        ok("valid", voc_root(), lambda d: boxes(d) == [[1, 1, 5, 6]] and d.annotations().records[0].labels.tolist() == [0]),
        ok("bom", voc_root("\ufeff" + voc_xml()), lambda d: boxes(d) == [[1, 1, 5, 6]]),
        ok("latin1-declared", voc_root(('<?xml version="1.0" encoding="ISO-8859-1"?>' + voc_xml(
            extra="<note>caf\xe9</note>")).encode("latin-1")), lambda d: boxes(d) == [[1, 1, 5, 6]]),
        ok("no-objects", voc_root("<annotation><filename>x.jpg</filename></annotation>"), lambda d: boxes(d) == []),
        ok("size-zero-reads-image", voc_root(voc_xml(size="0")), lambda d: d.annotations().records[0].width == 8),
        ok("difficult-1", voc_root(voc_xml(difficult="1")),
           lambda d: d.annotations().records[0].difficult.tolist() == [True]),
        ok("split-extra-columns", voc_root(split="x 1\n"), lambda d: len(d) == 1),
        error("xml-empty", voc_root(""), file=x),
        error("xml-truncated", voc_root(voc_xml()[:-20]), file=x),
        error("xml-not-xml", voc_root("{\"annotation\": 1}"), file=x),
        error("xml-non-utf8", voc_root(voc_xml(extra="<note>\xff</note>").encode("latin-1")), file=x),
        error("xxe-external-file", voc_root('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                                            "<annotation><filename>&e;</filename></annotation>"), "entities", file=x),
        error("billion-laughs", voc_root(_BILLION_LAUGHS), "entities", file=x),
        error("class-unknown", voc_root(voc_xml(name="bird")), "<object> 0", file=x),
        error("class-empty", voc_root(voc_xml(name="")), "<object> 0", file=x),
        error("bndbox-missing", voc_root(voc_xml().replace("<bndbox>", "<box>").replace("</bndbox>", "</box>")),
              "<object> 0", file=x),
        error("xmin-word", voc_root(voc_xml(xmin="abc")), "<object> 0", file=x),
        error("xmin-nan", voc_root(voc_xml(xmin="nan")), "<object> 0", file=x),
        error("xmax-inf", voc_root(voc_xml(xmax="inf")), "<object> 0", file=x),
        error("xmax-1e400", voc_root(voc_xml(xmax="1e400")), "<object> 0", file=x),
        error("xmax-before-xmin", voc_root(voc_xml(xmin="6", xmax="2")), "<object> 0", file=x),
        error("difficult-2", voc_root(voc_xml(difficult="2")), "<object> 0", file=x),
        error("size-word", voc_root(voc_xml(size="wide")), "<size>", file=x),
        error("size-mismatch", voc_root(voc_xml(size="9")), "<size>", file=x),
        error("image-missing", voc_root(voc_xml().replace("x.jpg", "y.jpg"), image=b""), file="x.jpg"),
        error("image-corrupt", voc_root(voc_xml(size=""), image=b"not an image"), file="x.jpg"),
        error("split-empty", voc_root(split=""), file="trainval.txt"),
        error("split-duplicate", voc_root(split="x\nx\n"), file="trainval.txt"),
        error("split-names-missing-xml", voc_root(split="x\ny\n"), file="y.xml"),
        error("split-non-utf8", voc_root(split=b"x\n\xff\n"), file="trainval.txt"),
        error("classes-duplicate", voc_root(classes="cat\ncat\n"), "classes.txt", file="voc"),
        error("classes-non-utf8", voc_root(classes=b"cat\n\xff\n"), file="classes.txt"),
    ]


# ------------------------------------------------------------------------------------ YOLO

_YOLO_YAML = "path: .\ntrain: images/train\nnames: [cat, dog]\n"


def yolo_root(labels: str | bytes | None = "0 0.5 0.5 0.5 0.25\n", *, yaml: str | bytes = _YOLO_YAML,
              image: bytes | None = None) -> Callable[[Path], Path]:
    """A build function writing a YOLO dataset (one 8x8 image ``x.png``) and returning its data.yaml."""
    def build(folder: Path) -> Path:
        (folder / "images" / "train").mkdir(parents=True)
        (folder / "labels" / "train").mkdir(parents=True)
        (folder / "images" / "train" / "x.png").write_bytes(png_bytes(size=(8, 8)) if image is None else image)
        if labels is not None:
            writer("labels/train/x.txt", labels)(folder)
        return writer("data.yaml", yaml)(folder)
    return build


def yolo_label_cases() -> list[Case]:
    """YoloDetection(data.yaml, "train"): the label files."""
    def bad(id: str, line: str | bytes, *, bug: str | None = None, where: str = "line 1") -> Case:
        return error(id, yolo_root(line), where, file="x.txt", bug=bug)

    boxes = lambda d: d.annotations().records[0].boxes.tolist()  # noqa: E731
    return [
        ok("valid", yolo_root(), lambda d: boxes(d) == [[2, 3, 6, 5]]),
        ok("no-label-file", yolo_root(None), lambda d: boxes(d) == []),
        ok("empty-label-file", yolo_root(""), lambda d: boxes(d) == []),
        ok("blank-lines-crlf", yolo_root("\r\n\r\n1 0.5 0.5 1 1\r\n"), lambda d: boxes(d) == [[0, 0, 8, 8]]),
        ok("class-1.0", yolo_root("1.0 0.5 0.5 1 1\n"), lambda d: d.annotations().records[0].labels.tolist() == [1]),
        ok("names-dict", yolo_root("5 0.5 0.5 1 1\n", yaml="train: images/train\nnames: {0: cat, 5: dog}\n"),
           lambda d: d.annotations().category_ids == [0, 5] and d.annotations().records[0].labels.tolist() == [1]),
        bad("four-fields", "0 0.5 0.5 0.5\n"),
        bad("six-fields", "0 0.1 0.1 0.2 0.2 0.3\n"),
        bad("polygon", "0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n"),
        bad("one-field", "0\n"),
        bad("class-out-of-range", "2 0.5 0.5 0.1 0.1\n"),
        bad("class-negative", "-1 0.5 0.5 0.1 0.1\n"),
        bad("class-fraction", "0.5 0.5 0.5 0.1 0.1\n"),
        bad("class-nan", "nan 0.5 0.5 0.1 0.1\n"),
        bad("class-inf", "inf 0.5 0.5 0.1 0.1\n"),
        bad("class-huge", f"{2**64} 0.5 0.5 0.1 0.1\n"),
        bad("class-word", "cat 0.5 0.5 0.1 0.1\n"),
        bad("coord-nan", "0 nan 0.5 0.1 0.1\n"),
        bad("coord-inf", "0 0.5 inf 0.1 0.1\n"),
        bad("coord-above-1", "0 0.5 0.5 1.5 0.1\n"),
        bad("width-negative", "0 0.5 0.5 -0.1 0.1\n"),
        bad("coord-word", "0 0.5 0.5 0.1 x\n"),
        bad("second-line-bad", "0 0.5 0.5 0.1 0.1\n0 0.5\n", where="line 2"),
        bad("bom", "\ufeff0 0.5 0.5 0.1 0.1\n"),
        bad("non-utf8", b"0 0.5 0.5 0.1 0.1\n\xff\n", where="x.txt"),
    ]


def yolo_yaml_cases() -> list[Case]:
    """YoloDetection(data.yaml, "train"): the data.yaml and the image list."""
    def bad(id: str, yaml: str | bytes, *where: str, bug: str | None = None) -> Case:
        return error(id, yolo_root(yaml=yaml), *where, file="data.yaml", bug=bug)

    return [
        ok("yaml-bom", yolo_root(yaml="\ufeff" + _YOLO_YAML), lambda d: d.annotations().classes == ["cat", "dog"]),
        ok("nc-matches", yolo_root(yaml=_YOLO_YAML + "nc: 2\n"), lambda d: len(d) == 1),
        bad("empty", ""),
        bad("list", "[1, 2]\n"),
        bad("scalar", "42\n"),
        bad("syntax", "names: [cat\n"),
        bad("tab-indent", "names:\n\t- cat\n"),
        bad("python-tag", "names: !!python/object/apply:os.system ['true']\ntrain: images/train\n"),
        bad("names-missing", "train: images/train\n", "names"),
        bad("names-scalar", "train: images/train\nnames: cat\n", "names"),
        bad("names-empty", "train: images/train\nnames: []\n", "names"),
        bad("names-str-keys", "train: images/train\nnames: {a: cat}\n", "names"),
        bad("nc-mismatch", _YOLO_YAML + "nc: 3\n", "nc"),
        bad("split-missing", "val: images/train\nnames: [cat]\n", "'train'"),
        bad("split-path-missing", "train: images/nowhere\nnames: [cat]\n", "nowhere"),
        bad("yaml-non-utf8", b"train: images/train\nnames: [caf\xe9]\n"),
        error("image-corrupt", yolo_root(image=b"GIF89a broken"), file="x.png"),
        error("missing-yaml", lambda folder: folder / "nope.yaml", file="nope.yaml"),
    ]


# ------------------------------------------------------------------------------------ config and space YAML

def config_cases() -> list[Case]:
    """visionbench.config.resolve(config_file)."""
    f = "c.yaml"

    def bad(id: str, text: str | bytes, *where: str, bug: str | None = None) -> Case:
        return error(id, writer(f, text), *where, bug=bug)

    return [
        ok("valid", writer(f, "epochs: 3\nlr: 0.01\n"), lambda c: c.epochs == 3 and c.lr == 0.01),
        ok("empty", writer(f, ""), lambda c: c.epochs == 10),
        ok("comment-only", writer(f, "# nothing\n"), lambda c: c.task == "classify"),
        ok("bom", writer(f, "\ufeffepochs: 4\n"), lambda c: c.epochs == 4),
        ok("lr-1e-3-string", writer(f, "lr: 1e-3\n"), lambda c: c.lr == 0.001),
        ok("task-detect", writer(f, "task: detect\nepochs: 2\n"), lambda c: c.task == "detect" and c.epochs == 2),
        bad("list", "- epochs\n- 3\n"),
        bad("scalar", "42\n"),
        bad("syntax", "epochs: [3\n"),
        bad("tab-indent", "epochs:\n\t3\n"),
        bad("anchor-alias", "epochs: &e 3\nval_every: *e\n", "line 1"),
        bad("billion-laughs", "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "line 1"),
        bad("merge-key", "base: &b {epochs: 3}\n<<: *b\n", "line 1"),
        bad("duplicate-key", "epochs: 3\nepochs: 4\n", "line 2"),
        bad("python-tag", "epochs: !!python/object/apply:os.system ['true']\n"),
        bad("python-name-tag", "epochs: !!python/name:os.system\n"),
        bad("multi-document", "epochs: 3\n---\nepochs: 4\n"),
        bad("nul-byte", "epochs: 3\x00\n"),
        bad("non-utf8", b"data: caf\xe9\n", "0xe9"),
        bad("too-large", "# " + "x" * (1 << 20) + "\n"),
        bad("nested-deep", "epochs: " + "[" * 20_000 + "]" * 20_000 + "\n"),
        bad("unknown-key", "epoch: 3\n", "epoch"),
        bad("key-int", "1: 3\n"),
        bad("key-null", "~: 3\n"),
        bad("epochs-string", "epochs: '3'\n", "epochs"),
        bad("epochs-float", "epochs: 3.5\n", "epochs"),
        bad("epochs-bool", "epochs: true\n", "epochs"),
        bad("epochs-null", "epochs: null\n", "epochs"),
        bad("epochs-zero", "epochs: 0\n", "epochs"),
        bad("epochs-negative", "epochs: -1\n", "epochs"),
        bad("epochs-mapping", "epochs: {a: 1}\n", "epochs"),
        bad("epochs-list", "epochs: [3]\n", "epochs"),
        bad("lr-nan", "lr: .nan\n", "lr"),
        bad("lr-inf", "lr: .inf\n", "lr"),
        bad("lr-1.0e400", "lr: 1.0e400\n", "lr"),
        bad("lr-huge", "lr: 1000\n", "lr"),
        bad("lr-binary", "lr: !!binary aGVsbG8=\n", "lr"),
        bad("fractions-sum", "val_fraction: 0.6\ntest_fraction: 0.5\n", "val_fraction"),
        bad("threads-word", "threads: four\n", "threads"),
        bad("option-of-other-task", "box_loss: giou\n", "box_loss"),
        bad("task-number", "task: 5\n", "task"),
        bad("task-unknown", "task: classifyy\n", "task"),
        bad("model-unknown", "model: no-such-model\n", "no-such-model"),
        bad("data-unknown", "data: nowhere:x\n", "nowhere"),
        error("directory", lambda folder: (folder / "d.yaml").mkdir() or folder / "d.yaml"),
        error("missing", lambda folder: folder / "nope.yaml"),
    ]


def space_cases() -> list[Case]:
    """visionbench.sweep.space.read_space(file, "classify")."""
    f = "space.yaml"

    def bad(id: str, text: str | bytes, *where: str, bug: str | None = None) -> Case:
        return error(id, writer(f, text), *where, bug=bug)

    return [
        ok("valid", writer(f, "lr: {loguniform: [1.0e-4, 1.0e-1]}\n"),
           lambda s: s["lr"].describe() == "loguniform [0.0001, 0.1]"),
        ok("int-and-choice", writer(f, "epochs: {int: [2, 5]}\noptimizer: {choice: [sgd, adamw]}\n"),
           lambda s: list(s) == ["epochs", "optimizer"]),
        ok("bom", writer(f, "\ufeffepochs: {int: [2, 5]}\n"), lambda s: list(s) == ["epochs"]),
        bad("empty", ""),
        bad("list", "- lr\n"),
        bad("scalar", "lr\n"),
        bad("empty-mapping", "{}\n"),
        bad("syntax", "lr: {loguniform: [1, 2\n"),
        bad("alias", "lr: &a {loguniform: [1.0e-4, 1.0e-1]}\nweight_decay: *a\n", "line 1"),
        bad("duplicate-key", "epochs: {int: [2, 5]}\nepochs: {int: [3, 4]}\n", "line 2"),
        bad("python-tag", "lr: !!python/object/apply:os.system ['true']\n"),
        bad("non-utf8", b"optimizer: {choice: [caf\xe9]}\n"),
        bad("too-large", "# " + "x" * (1 << 20) + "\n"),
        bad("nested-deep", "lr: " + "[" * 20_000 + "]" * 20_000 + "\n"),
        bad("unknown-option", "lrate: {loguniform: [1.0e-4, 1.0e-1]}\n", "lrate"),
        bad("key-int", "1: {int: [2, 5]}\n"),
        bad("other-task-option", "box_loss: {choice: [giou]}\n", "box_loss"),
        bad("inverted-range", "lr: {loguniform: [1.0e-1, 1.0e-4]}\n", "lr"),
        bad("log-zero", "lr: {loguniform: [0, 1.0e-1]}\n", "lr"),
        bad("uniform-nan", "lr: {uniform: [.nan, 0.1]}\n", "lr"),
        bad("uniform-inf", "lr: {uniform: [0.001, .inf]}\n", "lr"),
        bad("one-bound", "lr: {uniform: [0.1]}\n", "lr"),
        bad("bounds-string", "lr: {uniform: 'a'}\n", "lr"),
        bad("int-fraction-bounds", "epochs: {int: [1.5, 3]}\n", "epochs"),
        ok("int-huge", writer(f, f"epochs: {{int: [1, {2**70}]}}\n"), lambda s: str(2**70) in s["epochs"].describe()),
        bad("choice-empty", "epochs: {choice: []}\n", "epochs"),
        bad("choice-wrong-type", "epochs: {choice: [1, x]}\n", "epochs"),
        bad("two-kinds", "lr: {uniform: [0.001, 0.1], choice: [0.01]}\n", "lr"),
        bad("spec-scalar", "lr: 0.1\n", "lr"),
        bad("spec-list", "lr: [0.1, 0.2]\n", "lr"),
        bad("lr-above-max", "lr: {uniform: [0.1, 1000]}\n", "lr"),
        bad("model-unknown", "model: {choice: [no-such-model]}\n", "model"),
        bad("step-zero", "lr: {uniform: [0.001, 0.1], step: 0}\n", "lr"),
    ]
