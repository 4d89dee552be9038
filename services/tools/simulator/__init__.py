"""A ZTF survey simulator: realistic alert packets with known classes, for demos and tests.

Packets are byte-compatible with real ZTF alerts (the 4.02 writer schema in the container
header, gzipped FITS stamps with ZTF's header cards); the truth goes to ``truth.csv`` only.

>>> import numpy as np
>>> from services.tools.simulator import SimulationConfig, simulate_night
>>> alerts = simulate_night(SimulationConfig(), night=1, n=3, rng=np.random.default_rng(7))
>>> [a.stamps.shape for a in alerts][0], alerts[0].object_id[:5]
((3, 63, 63), 'ZTF26')

Modules: ``config`` (classes, :class:`SimulationConfig`), ``sky`` (deep-field backgrounds),
``scenes`` (stamps, pure numpy), ``packets`` (FITS, gzip, Avro container), ``survey`` (a night
in memory), ``corrupt`` (broken packets), ``writer`` (folders, truth.csv), ``cli``.
"""

from services.tools.simulator.config import CLASSES, DEFAULT_MIX, STAMP_SIZE, SimulationConfig
from services.tools.simulator.corrupt import BAD_KINDS, BadPacket, bad_packets
from services.tools.simulator.survey import (
    SimulatedAlert,
    iter_night,
    simulate_night,
    simulate_stamps,
)
from services.tools.simulator.writer import SimulationSummary, write_simulation

__all__ = [
    "BAD_KINDS",
    "CLASSES",
    "DEFAULT_MIX",
    "STAMP_SIZE",
    "BadPacket",
    "SimulatedAlert",
    "SimulationConfig",
    "SimulationSummary",
    "bad_packets",
    "iter_night",
    "simulate_night",
    "simulate_stamps",
    "write_simulation",
]
