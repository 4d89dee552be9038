"""Broken versions of a real exported model, made by editing its ONNX graph (as a buggy exporter
or a hand-made model would be), each a complete model directory with a correct manifest and
sha256, so that only running it shows what is wrong:

- :func:`nan_on_some`: novelty is NaN for the stamps whose mean pixel is above a threshold (the
  median of real stamps: about half of them), finite for zeros;
- :func:`wrong_shape`: probs loses its last column (the manifest still lists every class);
- :func:`slower`: the same outputs, plus convolutions of the stamps whose result is multiplied
  by zero: more work per stamp and nothing else.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from models.manifest import INPUT_NAME
from models.model_dir import read_manifest, sha256_file, write_manifest


def _load(src: Path) -> onnx.ModelProto:
    return onnx.load(str(src / read_manifest(src).model_file))


def _raw(model: onnx.ModelProto, output: str) -> str:
    """Rename the graph's ``output`` where it is made and used; returns the new (inner) name."""
    raw = f"{output}__raw"
    for node in model.graph.node:
        node.output[:] = [raw if o == output else o for o in node.output]
        node.input[:] = [raw if i == output else i for i in node.input]
    return raw


def _const(model: onnx.ModelProto, name: str, value: np.ndarray) -> str:
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def _flat_stamps(model: onnx.ModelProto) -> str:
    model.graph.node.append(helper.make_node("Flatten", [INPUT_NAME], ["x__flat"], axis=1))
    return "x__flat"


def _pixels(src: Path) -> int:
    spec = read_manifest(src).input_spec
    return int(spec["channels"] * spec["height"] * spec["width"])


def _write(model: onnx.ModelProto, src: Path, dst: Path, version: str) -> Path:
    """``dst`` as a model directory of ``version`` (parent: ``src``'s) holding ``model``."""
    onnx.checker.check_model(model)
    manifest = read_manifest(src)
    dst.mkdir(parents=True)
    onnx.save(model, str(dst / manifest.model_file))
    shutil.copymode(src / manifest.model_file, dst / manifest.model_file)
    write_manifest(
        dst,
        manifest.replace(
            version=version,
            parent_version=manifest.version,
            sha256=sha256_file(dst / manifest.model_file),
        ),
    )
    return dst


def nan_on_some(src: Path, dst: Path, version: str, threshold: float) -> Path:
    """Novelty NaN where a stamp's mean preprocessed pixel exceeds ``threshold``."""
    model = _load(src)
    raw = _raw(model, "novelty")
    n = _pixels(src)
    flat = _flat_stamps(model)
    mean_w = _const(model, "nan__mean_w", np.full((n, 1), 1.0 / n, np.float32))
    shape = _const(model, "nan__shape", np.array([-1], np.int64))
    t = _const(model, "nan__threshold", np.array(threshold, np.float32))
    nan = _const(model, "nan__nan", np.array(np.nan, np.float32))
    zero = _const(model, "nan__zero", np.array(0.0, np.float32))
    model.graph.node.extend(
        [
            helper.make_node("MatMul", [flat, mean_w], ["nan__mean2"]),
            helper.make_node("Reshape", ["nan__mean2", shape], ["nan__mean"]),
            helper.make_node("Greater", ["nan__mean", t], ["nan__cond"]),
            helper.make_node("Where", ["nan__cond", nan, zero], ["nan__add"]),
            helper.make_node("Add", [raw, "nan__add"], ["novelty"]),
        ]
    )
    return _write(model, src, dst, version)


def wrong_shape(src: Path, dst: Path, version: str) -> Path:
    """probs without its last column."""
    model = _load(src)
    raw = _raw(model, "probs")
    k = len(read_manifest(src).classes)
    consts = [
        _const(model, name, np.array([value], np.int64))
        for name, value in (("ws__start", 0), ("ws__end", k - 1), ("ws__axis", 1))
    ]
    model.graph.node.append(helper.make_node("Slice", [raw, *consts], ["probs"]))
    for output in model.graph.output:  # the declared shape would contradict the graph
        if output.name == "probs":
            output.type.tensor_type.shape.dim[1].dim_param = "k_minus_one"
    return _write(model, src, dst, version)


def slower(src: Path, dst: Path, version: str, channels: int) -> Path:
    """The same outputs after two convolutions (3 -> ``channels`` -> ``channels``, 3x3) of each
    stamp, whose result is multiplied by 0: more work per stamp, nothing else changes."""
    model = _load(src)
    raw = _raw(model, "novelty")
    c_in = int(read_manifest(src).input_spec["channels"])
    rng = np.random.default_rng(0)
    w1 = _const(model, "slow__w1", rng.normal(size=(channels, c_in, 3, 3)).astype(np.float32))
    w2 = _const(model, "slow__w2", rng.normal(size=(channels, channels, 3, 3)).astype(np.float32))
    ones = _const(model, "slow__ones", np.ones((channels, 1), np.float32))
    shape = _const(model, "slow__shape", np.array([-1], np.int64))
    zero = _const(model, "slow__zero", np.array(0.0, np.float32))
    model.graph.node.extend(
        [
            helper.make_node("Conv", [INPUT_NAME, w1], ["slow__c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Conv", ["slow__c1", w2], ["slow__c2"], pads=[1, 1, 1, 1]),
            helper.make_node("GlobalAveragePool", ["slow__c2"], ["slow__g"]),
            helper.make_node("Flatten", ["slow__g"], ["slow__f"], axis=1),
            helper.make_node("MatMul", ["slow__f", ones], ["slow__s2"]),
            helper.make_node("Reshape", ["slow__s2", shape], ["slow__s"]),
            helper.make_node("Mul", ["slow__s", zero], ["slow__zero_s"]),
            helper.make_node("Add", [raw, "slow__zero_s"], ["novelty"]),
        ]
    )
    return _write(model, src, dst, version)
