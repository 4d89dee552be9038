"""The whole product, end to end, on the real broker and Redis: a shortened ``ahunt demo``.

Simulated nights are replayed into Kafka, the scorer (a child process) routes alerts to two
users' topics, the users label what they receive over the REST API (a child process), the retrain
code fine-tunes, gates and promotes, the scorer hot-swaps. Margins below were set from runs over
several seeds (docs/BENCHMARKS.md, "Live demo"), well inside what every seed reached.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("torch")

# The shortened demo takes ~3-5 minutes on 2 cores (the module fixture runs inside the first test).
pytestmark = pytest.mark.timeout(1200)

from services.tools.demo.report import DemoResult  # noqa: E402
from services.tools.demo.run import default_samples, run_demo  # noqa: E402
from services.tools.demo.users import USERS  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    out = tmp_path_factory.mktemp("demo") / "out"
    return run_demo(
        out,
        nights=5,
        per_night=800,
        budget=20,
        seed=1,
        pool=1500,
        bad_per_night=2,
        samples=default_samples(),
        progress=lambda line: print(line, flush=True),
    )


def test_each_user_finds_more_of_what_they_like_and_beats_the_pixel_baseline(
    demo: DemoResult,
) -> None:
    first, last = demo.rows[0], demo.rows[-1]
    # Lensed arcs must be learnt (novelty alone never finds them on the first night), so alice's
    # share rises most; satellites are striking, so bob's cold start already finds some.
    assert last.interesting_share["alice"] >= first.interesting_share["alice"] + 0.3
    for user in USERS:
        name = user.name
        assert last.delivered[name] >= 10, f"{name} got half their budget or less"
        # Learning, stated so that a high cold start cannot fail it: the night's misses fall by
        # a third, or the model's own picks are already >= 90% right (the rest of the budget is
        # exploration, which by design rarely lands on a 2-4% class, so "liked" tops out near the
        # top picks' share of the budget). "+10 points" failed 1 full run in 4 on 2026-12-07:
        # bob's cold start found 78%, his last night 85% (top picks at the ceiling).
        misses_first = 1 - first.interesting_share[name]
        misses_last = 1 - last.interesting_share[name]
        assert misses_last <= misses_first * 2 / 3 or last.top_share[name] >= 0.9, (
            name,
            first.interesting_share[name],
            last.interesting_share[name],
            last.top_share[name],
        )
        assert last.interesting_share[name] >= 5 * demo.stream_share[name], name
        baseline = sum(r.baseline_share[name] for r in demo.rows) / len(demo.rows)
        assert last.interesting_share[name] > baseline + 0.1, name
        # The model's own picks (not the exploration share of the budget) are what it learnt.
        assert last.top_share[name] >= last.interesting_share[name], name


def test_a_class_one_user_dismissed_stops_reaching_them_but_not_the_other_user(
    demo: DemoResult,
) -> None:
    alice, bob = USERS  # alice dismissed satellites; bob came for them
    assert "satellite" in alice.boring and "satellite" in bob.interesting
    early = sum(r.boring_delivered[alice.name] for r in demo.rows[:2])
    assert early > 0, "alice never saw a satellite: the test shows nothing"
    assert demo.rows[-1].boring_delivered[alice.name] == 0
    assert demo.rows[-1].interesting_share[bob.name] > 0.5


def test_every_output_carries_a_model_version_that_existed(demo: DemoResult) -> None:
    published = set(demo.versions_published)
    assert len(published) >= 2  # at least one retrain was promoted and swapped in
    for name, seen in demo.versions_seen.items():
        assert seen and set(seen) <= published, name
    live = [r.model_version for r in demo.rows]
    assert len(set(live)) > 1, "the scorer never swapped models"


def test_only_the_injected_bad_packets_reached_the_dead_letter_topic(demo: DemoResult) -> None:
    with open(Path(demo.out) / "sim" / "bad.csv", newline="") as f:
        injected = Counter(row["reason"] for row in csv.DictReader(f))
    assert sum(injected.values()) == demo.bad_packets > 0
    assert Counter(d["reason"] for d in demo.dead_letters) == injected


def test_the_demo_writes_its_table_curves_and_galleries(demo: DemoResult) -> None:
    out = Path(demo.out)
    assert (out / "demo.json").stat().st_size > 0
    for user in USERS:
        for kind in ("discovery", "gallery"):
            png = out / f"{kind}-{user.name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
