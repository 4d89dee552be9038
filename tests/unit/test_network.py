"""Head growth keeps old outputs and optimizer state; the encoder accepts every input spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.learner import AhuntLearner, LearnerConfig
from models.network import RESERVE, AhuntNet, EncoderConfig
from models.preprocess import InputSpec

FAST = LearnerConfig(pretrain_epochs=1, finetune_epochs=1, min_epoch_samples=64, augment="none")


@pytest.mark.parametrize("spec", [InputSpec(3, 63, 63), InputSpec(1, 8, 8), InputSpec(1, 28, 28)])
def test_encoder_handles_every_spec(spec: InputSpec) -> None:
    net = AhuntNet(spec, 3, EncoderConfig())
    latent, logits = net(torch.zeros((2, *spec.shape)))
    assert latent.shape == (2, 64) and logits.shape == (2, 3)


def _trained(rng: np.random.Generator, classes: list[str]) -> tuple[AhuntLearner, np.ndarray]:
    x = rng.normal(size=(48, 1, 8, 8)).astype(np.float32)
    labels = [classes[i % len(classes)] for i in range(48)]
    learner = AhuntLearner(InputSpec(1, 8, 8), classes, FAST, seed=3)
    learner.fit(x, labels)
    return learner, x


def test_growth_keeps_old_logits_exactly(rng: np.random.Generator) -> None:
    learner, x = _trained(rng, ["a", "b"])
    with torch.no_grad():
        before = learner.net(torch.as_tensor(x))[1]
    old_weight = learner.net.head.linear.weight.detach().clone()
    added = learner.add_classes(["Lens", "a"])
    assert added == ["lens"] and learner.classes == [RESERVE, "a", "b", "lens"]
    with torch.no_grad():
        after = learner.net(torch.as_tensor(x))[1]
    # Old rows keep their exact weights; logits agree to float rounding (a wider matmul may
    # sum in another order).
    assert torch.equal(learner.net.head.linear.weight[:3], old_weight)
    assert torch.allclose(after[:, :3], before, atol=1e-6, rtol=0)
    assert after.shape[1] == 4 and torch.isfinite(after).all()


def test_growth_keeps_optimizer_state(rng: np.random.Generator) -> None:
    learner, _ = _trained(rng, ["a", "b"])
    head = learner.net.head.linear
    old_state = {k: v.clone() for k, v in learner.optimizer.state[head.weight].items()}
    other = next(learner.net.encoder.parameters())
    other_state = learner.optimizer.state[other]["exp_avg"].clone()
    learner.add_classes(["c"])
    new_head = learner.net.head.linear
    state = learner.optimizer.state[new_head.weight]
    assert torch.equal(state["step"], old_state["step"])
    assert torch.equal(state["exp_avg"][:3], old_state["exp_avg"])
    assert torch.equal(state["exp_avg_sq"][:3], old_state["exp_avg_sq"])
    assert not state["exp_avg"][3:].any()
    assert torch.equal(learner.optimizer.state[other]["exp_avg"], other_state)
    # The optimizer really trains the new parameters (not stale references).
    params = {id(p) for g in learner.optimizer.param_groups for p in g["params"]}
    assert id(new_head.weight) in params and id(head.weight) not in params


def test_fit_grows_for_new_labels_and_learns_them(rng: np.random.Generator) -> None:
    learner, x = _trained(rng, ["a", "b"])
    bright = x[:8] + 4.0
    learner.fit(np.concatenate([x, bright]), ["a", "b"] * 24 + ["bright"] * 8, epochs=5)
    assert learner.classes[-1] == "bright" and learner.counts["bright"] == 8
    probs = learner.predict(bright).probs
    assert probs[:, learner.class_index("bright")].mean() > 0.5


def test_reserve_is_never_a_target(rng: np.random.Generator) -> None:
    learner, x = _trained(rng, ["a"])
    with pytest.raises(ValueError, match="never a training target"):
        learner.fit(x[:2], ["a", "reserve"])
    with pytest.raises(ValueError):
        AhuntLearner(InputSpec(1, 8, 8), ["reserve"])


def test_same_seed_same_numbers(rng: np.random.Generator) -> None:
    x = rng.normal(size=(40, 1, 8, 8)).astype(np.float32)
    labels = ["a", "b"] * 20
    outputs = []
    for _ in range(2):
        learner = AhuntLearner(InputSpec(1, 8, 8), ["a", "b"], FAST.with_(augment="d4"), seed=7)
        learner.fit(x, labels)
        learner.fit(x[:10], ["c"] * 10)
        learner.fit_detector(x)
        outputs.append(learner.predict(x))
    assert np.array_equal(outputs[0].probs, outputs[1].probs)
    assert np.array_equal(outputs[0].novelty, outputs[1].novelty)
    other = AhuntLearner(InputSpec(1, 8, 8), ["a", "b"], FAST, seed=8)
    other.fit(x, labels)
    assert not np.array_equal(other.predict(x).probs, outputs[0].probs[:, :3])


def test_state_round_trip_resumes_identically(rng: np.random.Generator, tmp_path) -> None:
    learner, x = _trained(rng, ["a", "b"])
    learner.fit_detector(x)
    learner.save(tmp_path / "l.pt")
    clone = AhuntLearner.load(tmp_path / "l.pt")
    assert np.array_equal(clone.predict(x).probs, learner.predict(x).probs)
    learner.fit(x, ["a", "b"] * 24)
    clone.fit(x, ["a", "b"] * 24)
    assert np.array_equal(clone.predict(x).probs, learner.predict(x).probs)


def test_wrong_input_shape_is_refused(rng: np.random.Generator) -> None:
    learner, _ = _trained(rng, ["a"])
    with pytest.raises(ValueError, match="expected inputs"):
        learner.predict(np.zeros((2, 3, 8, 8), np.float32))
