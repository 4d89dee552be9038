"""The desk's pure parts: its colours against WCAG AA, the stamp stretch on every real packet,
the stream's event ids and the discovery curve."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from services.common.alerts import Alert, decode_message
from services.common.replay import messages_from_files
from services.feedback import stamps
from services.feedback.discovery import discovery_curve
from services.feedback.stream import format_event_id, parse_event_id
from tests.samples import sample_files

CSS = Path(__file__).resolve().parents[2] / "services/feedback/static/desk.css"
# (foreground, background) pairs the stylesheet uses for text: WCAG AA needs 4.5:1.
TEXT_PAIRS = [
    (fg, bg)
    for bg in ("bg", "surface", "control")
    for fg in ("text", "muted", "accent", "error", "ok", "focus")
]
# Non-text: control borders, the focus ring and the probability bars need 3:1 (WCAG 1.4.11).
UI_PAIRS = [
    ("border", "bg"),
    ("border", "surface"),
    ("focus", "bg"),
    ("focus", "surface"),
    ("focus", "control"),
    ("bar", "bg"),
]


def _luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb``."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """
    >>> round(contrast("#000000", "#ffffff"), 1)
    21.0
    >>> round(contrast("#777777", "#ffffff"), 2)
    4.48
    """
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _palette() -> dict[str, str]:
    root = re.search(r":root\s*{([^}]*)}", CSS.read_text())
    assert root, "desk.css must define its colours in :root"
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;", root.group(1)))


def test_every_colour_pair_passes_wcag_aa() -> None:
    colours = _palette()
    ratios = {(f, b): contrast(colours[f], colours[b]) for f, b in TEXT_PAIRS + UI_PAIRS}
    for pair in TEXT_PAIRS:
        assert ratios[pair] >= 4.5, (pair, round(ratios[pair], 2))
    for pair in UI_PAIRS:
        assert ratios[pair] >= 3.0, (pair, round(ratios[pair], 2))
    # Every colour the sheet declares is checked (a new one needs its pairs here).
    assert set(colours) == {c for pair in TEXT_PAIRS + UI_PAIRS for c in pair}


@pytest.mark.parametrize("survey", ["ztf", "ztf-fink", "ztf-real", "rubin"])
def test_stretches_show_every_real_stamp(survey: str) -> None:
    """Whatever the survey's units (ZTF DN around a sky of hundreds, Rubin nJy around 0), both
    stretches show structure (not flat), and zscale (the desk's default) is neither mostly
    saturated nor mostly black and puts the difference image's sky mid-grey. (asinh between
    percentiles may rightly show a stamp half covered by a saturated star as mostly white.)"""
    alerts = [
        r
        for p in messages_from_files(sample_files(survey))
        for r in decode_message(p)
        if isinstance(r, Alert)
    ]
    assert alerts
    checked = 0
    for alert in alerts:
        for which in stamps.STAMPS:
            image = stamps.stamp_image(which, alert.cutout_bytes, None)
            if image is None:
                continue
            finite = stamps.valid_pixels(image)[::-1]  # stretch flips rows (origin lower left)
            assert stamps.stretch(image, "asinh")[finite].std() > 10, (alert.alert_id, which)
            shown = stamps.stretch(image, "zscale")[finite]
            assert shown.std() > 10, (alert.alert_id, which)
            assert (shown == 255).mean() < 0.25, (alert.alert_id, which)
            assert (shown == 0).mean() < 0.25, (alert.alert_id, which)
            if which == "difference":
                assert 40 <= np.median(shown) <= 215, (alert.alert_id, np.median(shown))
            checked += 1
    assert checked >= len(alerts)


def test_stretch_puts_the_first_row_at_the_bottom_and_nan_black() -> None:
    image = np.zeros((5, 5))
    image[0, 2] = 100.0  # FITS row 0 is the bottom row
    image[4, 4] = np.nan
    image[3, 3] = -3.4e38  # a fill value: missing, and no part in the limits
    image[1, 1] = 50.0
    out = stamps.stretch(image, "asinh")
    assert out[-1, 2] == 255 and out[0, 4] == 0 and out[1, 3] == 0
    assert 0 < out[-2, 1] < 255  # mid-way, as if the fill value were not there


def test_preprocessed_channels_stand_in_once_the_originals_expired() -> None:
    stamp = np.stack([np.full((4, 4), float(i)) for i in range(3)])
    for i, which in enumerate(stamps.STAMPS):
        shown = stamps.stamp_image(which, [None, None, None], stamp)
        assert shown is not None and float(shown[0, 0]) == i
    assert stamps.stamp_image("science", [None, None, None], None) is None


def test_event_ids_round_trip_and_reject_junk() -> None:
    positions = {0: 17, 1: 0, 12: 123456789012}
    assert parse_event_id(format_event_id(positions)) == positions
    for junk in ("", "0", "0:", "a:1", "0:1;1:2", "0:1,", ",".join(f"{p}:0" for p in range(300))):
        with pytest.raises(ValueError):
            parse_event_id(junk)


def test_discovery_curve_keeps_the_ends_when_thinned() -> None:
    answers = [(float(t), t % 3 == 0) for t in range(1000)]
    curve = discovery_curve(answers, 50)
    assert len(curve) == 50 and curve[0] == (0.0, 1, 1) and curve[-1] == (999.0, 1000, 334)
    assert all(a[1] < b[1] and a[2] <= b[2] for a, b in zip(curve, curve[1:], strict=False))
