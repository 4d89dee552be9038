"""Class names: the permanent reserve class and how label names are normalised.

Torch-free on purpose: the serving services (scorer, feedback API) use it without the training
dependencies.
"""

from __future__ import annotations

import re

RESERVE = "reserve"
_VALID = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,63}$")


def normalise_class_name(name: str) -> str:
    """Canonical class name: trimmed, lower case, inner whitespace as '_'; at most 64 characters
    of letters, digits and ``_ . + -``, starting with a letter or digit.

    >>> normalise_class_name("  Not Interesting ")
    'not_interesting'
    >>> normalise_class_name("SN Ia")
    'sn_ia'
    """
    cleaned = "_".join(str(name).strip().lower().split())
    if not _VALID.match(cleaned):
        raise ValueError(
            f"invalid class name {name!r}: use letters, digits and _ . + - (at most 64 characters)"
        )
    return cleaned
