"""A simulated survey on disk: one Avro file per alert, truth beside the packets, never in them.

Layout under ``out``::

    night-01/ztf_<date>_programid1_<objectId>_<candid>.avro   one alert per file, as ZTF ships
    night-01/bad/<...>.<kind>.avro                            --bad-packets K per night
    truth.csv   alert_id (= candid), object_id, night, class
    bad.csv     night, file, kind, reason (what decode_message must say), alert_id ('' when the
                decoder cannot read one)

Night ``k`` draws from ``numpy.random.default_rng([seed, k])`` and its broken packets from
``[seed, k, 1]``, so adding broken packets or nights changes none of the other files.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from services.tools.simulator.config import CLASSES, SimulationConfig
from services.tools.simulator.corrupt import bad_packets
from services.tools.simulator.survey import iter_night

__all__ = ["SimulationSummary", "night_dir", "write_simulation"]

TRUTH_COLUMNS = ("alert_id", "object_id", "night", "class")
BAD_COLUMNS = ("night", "file", "kind", "reason", "alert_id")


class SimulationSummary(BaseModel):
    """What :func:`write_simulation` wrote, and how fast."""

    model_config = ConfigDict(frozen=True)

    out: Path
    seed: int
    nights: int
    alerts: int
    classes: dict[str, int]
    bad_packets: int
    bad_kinds: dict[str, int]
    bytes_written: int
    seconds: float
    cpu_seconds: float  # this process's CPU time: the one-core speed on a shared machine

    @property
    def alerts_per_second(self) -> float:
        return self.alerts / self.seconds if self.seconds > 0 else float("inf")

    def lines(self) -> list[str]:
        """A human summary, one line each."""
        mix = ", ".join(
            f"{name} {count} ({count / max(self.alerts, 1):.1%})"
            for name, count in self.classes.items()
        )
        out = [
            f"wrote {self.alerts} alerts over {self.nights} night(s) to {self.out} "
            f"(seed {self.seed}, {self.bytes_written / 1e6:.1f} MB)",
            f"classes: {mix}",
        ]
        if self.bad_packets:
            kinds = ", ".join(f"{kind} {count}" for kind, count in self.bad_kinds.items())
            out.append(f"broken packets: {self.bad_packets} ({kinds}), listed in bad.csv")
        out.append(f"truth: {self.out / 'truth.csv'}")
        per_cpu_second = self.alerts / self.cpu_seconds if self.cpu_seconds > 0 else 0.0
        out.append(
            f"{self.seconds:.1f} s, {self.alerts_per_second:.0f} alerts/s "
            f"({per_cpu_second:.0f} per CPU-second)"
        )
        return out


def night_dir(out: Path, night: int) -> Path:
    return out / f"night-{night:02d}"


def write_simulation(
    out: str | Path,
    nights: int,
    per_night: int,
    seed: int,
    *,
    bad_per_night: int = 0,
    config: SimulationConfig | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationSummary:
    """Simulate ``nights`` x ``per_night`` alerts into ``out`` (see the module docstring).

    Refuses to mix with an earlier simulation in ``out`` unless ``overwrite``, which removes
    only what a simulation writes (night-*/, truth.csv, bad.csv). ``progress(night, alerts)``
    is called after each night.
    """
    if nights < 1 or per_night < 0 or bad_per_night < 0:
        raise ValueError("need nights >= 1, per_night >= 0 and bad_per_night >= 0")
    config = config or SimulationConfig()
    root = Path(out)
    _prepare(root, overwrite)
    started, cpu_started = time.perf_counter(), time.process_time()
    classes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    written = 0
    with (
        (root / "truth.csv").open("w", newline="") as truth_file,
        (root / "bad.csv").open("w", newline="") as bad_file,
    ):
        truth = csv.writer(truth_file)
        truth.writerow(TRUTH_COLUMNS)
        bad = csv.writer(bad_file)
        bad.writerow(BAD_COLUMNS)
        for night in range(1, nights + 1):
            folder = night_dir(root, night)
            folder.mkdir(parents=True)
            rng = np.random.default_rng([seed, night])
            for alert in iter_night(config, night, per_night, rng):
                (folder / alert.file_name).write_bytes(alert.packet)
                written += len(alert.packet)
                truth.writerow((alert.alert_id, alert.object_id, night, alert.label))
                classes[alert.label] += 1
            if bad_per_night:
                (folder / "bad").mkdir()
                broken = bad_packets(
                    config,
                    night,
                    bad_per_night,
                    np.random.default_rng([seed, night, 1]),
                    first_index=per_night,
                )
                for packet in broken:
                    path = folder / "bad" / packet.file_name
                    path.write_bytes(packet.packet)
                    written += len(packet.packet)
                    bad.writerow(
                        (
                            night,
                            path.relative_to(root).as_posix(),
                            packet.kind,
                            packet.reason,
                            packet.alert_id or "",
                        )
                    )
                    kinds[packet.kind] += 1
            if progress is not None:
                progress(night, per_night)
    return SimulationSummary(
        out=root,
        seed=seed,
        nights=nights,
        alerts=nights * per_night,
        classes={name: classes[name] for name in CLASSES if classes[name]},
        bad_packets=sum(kinds.values()),
        bad_kinds=dict(kinds),
        bytes_written=written,
        seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu_started,
    )


def _prepare(root: Path, overwrite: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    previous = [*root.glob("night-*"), *(root / name for name in ("truth.csv", "bad.csv"))]
    previous = [path for path in previous if path.exists()]
    if previous and not overwrite:
        raise FileExistsError(
            f"{root} already holds a simulation ({previous[0].name}, ...): "
            "choose another folder or overwrite it"
        )
    for path in previous:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
