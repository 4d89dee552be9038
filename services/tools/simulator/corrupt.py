"""Deliberately broken packets, one kind of damage each, with the rejection it must cause.

They are made from ordinary simulated alerts (their own ids, never in truth.csv), so an
end-to-end test can check that the dead-letter topic holds exactly these and nothing else.
Every kind is built so that :func:`services.common.alerts.decode_message` has one possible answer:

- ``truncated``: the file cut short -> ``truncated`` (whole message);
- ``bit_flip``: bits flipped in the sync marker that closes the data block -> ``corrupt_avro``;
- ``stamp_bit_flip``: bits flipped in a stamp's gzip CRC -> ``corrupt_cutout`` (the record);
- ``jpeg_stamp``: a JPEG science stamp, as 2016-era ZTF test alerts had -> ``not_fits``;
- ``missing_cutout``: a null template cutout -> ``missing_cutout``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import numpy as np

from services.tools.simulator.config import SimulationConfig
from services.tools.simulator.survey import Schedule, draft_alerts, draw_labels

__all__ = ["BAD_KINDS", "BadPacket", "bad_packets"]

#: kind -> the ``Rejected.reason`` the decoder must give.
BAD_KINDS: Final[dict[str, str]] = {
    "truncated": "truncated",
    "bit_flip": "corrupt_avro",
    "stamp_bit_flip": "corrupt_cutout",
    "jpeg_stamp": "not_fits",
    "missing_cutout": "missing_cutout",
}
#: Kinds that reject the whole message: the decoder never gets as far as an alert id.
WHOLE_MESSAGE: Final = frozenset({"truncated", "bit_flip"})


@dataclass(frozen=True)
class BadPacket:
    """A broken packet. ``alert_id`` is set where the decoder still reads the record's id."""

    kind: str
    reason: str
    packet: bytes
    alert_id: str | None
    file_name: str


def bad_packets(
    config: SimulationConfig, night: int, count: int, rng: np.random.Generator, *, first_index: int
) -> list[BadPacket]:
    """``count`` broken packets for ``night``, kinds in rotation (starting where the night's
    number puts them, so a few nights cover every kind). ``first_index`` must be past the
    night's good alerts so ids stay unique."""
    if count == 0:
        return []
    schedule = Schedule.draw(config, night, first_index, count, rng)
    draft = draft_alerts(
        config, schedule, draw_labels(config, count, rng), rng, first_index=first_index
    )
    kinds = list(BAD_KINDS)
    out = []
    for i, record in enumerate(draft.records):
        kind = kinds[(night - 1 + i) % len(kinds)]
        alert_id = None if kind in WHOLE_MESSAGE else str(record["candid"])
        if kind == "stamp_bit_flip":
            stamp = bytearray(record["cutoutDifference"]["stampData"])
            stamp[-8 + int(rng.integers(0, 4))] ^= 1 << int(rng.integers(0, 8))  # CRC32 bytes
            record["cutoutDifference"] = {**record["cutoutDifference"], "stampData": bytes(stamp)}
        elif kind == "jpeg_stamp":
            science = draft.scenes.stamps[i, 0]
            record["cutoutScience"] = {
                "fileName": record["cutoutScience"]["fileName"].replace(".fits.gz", ".jpg"),
                "stampData": _jpeg(science),
            }
        elif kind == "missing_cutout":
            record["cutoutTemplate"] = None
        packet = draft.packet(i)
        if kind == "truncated":
            packet = packet[: int(len(packet) * rng.uniform(0.2, 0.95))]
        elif kind == "bit_flip":
            damaged = bytearray(packet)
            for bit in rng.choice(16 * 8, size=int(rng.integers(1, 4)), replace=False):
                damaged[len(damaged) - 16 + bit // 8] ^= 1 << (bit % 8)
            packet = bytes(damaged)
        name = draft.file_names[i].replace(".avro", f".{kind}.avro")
        out.append(BadPacket(kind, BAD_KINDS[kind], packet, alert_id, name))
    return out


def _jpeg(image: np.ndarray) -> bytes:
    """A real baseline JPEG of the stamp (8-bit, asinh-stretched), via Pillow."""
    from PIL import Image  # comes with scikit-image (the demo extra)

    low, high = np.percentile(image, [1.0, 99.5])
    scaled = np.arcsinh((image - low) / max(high - low, 1e-6) * 10) / np.arcsinh(10)
    pixels = (np.clip(scaled, 0, 1) * 255).astype(np.uint8)[::-1]  # FITS rows go up
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()
