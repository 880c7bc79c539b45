"""Orders a study compares: learned on the calibration split, or read from files.

:func:`learn_orders` fits each named orderer (:func:`reorder.make_orderer`) on the
calibration features and saves its permutation, with provenance, in an
:class:`~eval.study_folder.OrderFolder`; an order already saved there with the same orderer
parameters and calibration digest is reused, so a re-run after an interruption codes the
same cells. :func:`load_order_files` reads hand-made or saved orders (``[NAME=]PATH``).
Both return the orders in memory (and the distance matrices learned orders were solved
on), so the figures need not read them back.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["Orders", "learn_orders", "load_order_files", "order_file_name"]


@dataclass
class Orders:
    """Named :class:`reorder.Permutation` objects and, for learned ones, their calibration distance matrices."""

    permutations: dict = field(default_factory=dict)
    distances: dict = field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.permutations[name]

    def __contains__(self, name: str) -> bool:
        return name in self.permutations

    def __iter__(self):
        return iter(self.permutations)

    def __len__(self) -> int:
        return len(self.permutations)

    def items(self):
        return self.permutations.items()

    def update(self, other: "Orders") -> None:
        self.permutations.update(other.permutations)
        self.distances.update(other.distances)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(p.order) for name, p in self.permutations.items()}

    def same_permutations(self) -> list[list[str]]:
        """Groups of names whose permutations are identical (they share their coded cells)."""
        by_digest: dict[str, list[str]] = {}
        for name, p in self.permutations.items():
            by_digest.setdefault(p.digest(), []).append(name)
        return [names for names in by_digest.values() if len(names) > 1]


def _plain(value):
    """Parameters as JSON gives them back (tuples become lists), to compare with saved provenance."""
    return json.loads(json.dumps(value, default=str))


def learn_orders(names: Sequence[str], calib, folder, provenance: dict, progress: bool = True,
                 params: Mapping[str, dict] | None = None) -> Orders:
    """Fit each named orderer on ``calib`` (a FeatureSet); ``identity`` is always included (the anchor).

    ``folder`` is an :class:`~eval.study_folder.OrderFolder` where each order is saved and
    from which a matching earlier one is reused. ``params[name]`` adds keyword arguments that a
    name cannot carry (e.g. the importance file and codec of an importance-aware orderer).
    """
    from reorder import make_orderer

    names = ["identity"] + [n for n in names if n != "identity"]
    out = Orders()
    calib_digest = calib.digest()
    for name in names:
        orderer = make_orderer(name, **dict((params or {}).get(name, {})))
        fitted_params = {k: _plain(v) for k, v in orderer.get_params().items()}
        saved = folder.load(name, n_channels=calib.n_channels)
        if (saved is not None and saved.provenance.get("orderer_params") == fitted_params
                and saved.provenance.get("calibration_digest") == calib_digest):
            out.permutations[name] = saved
            distance = folder.load_distance(name)
            if distance is not None:
                out.distances[name] = distance
            continue
        t0 = time.perf_counter()
        if progress:
            print(f"learning order {name} on {len(calib)} calibration images ...", file=sys.stderr)
        orderer.fit(calib)
        perm = orderer.to_permutation(  # the orderer adds its own parameters, tour cost and solver
            **provenance, orderer=name, orderer_params=fitted_params, calibration_digest=calib_digest,
            calibration_images=calib.ids, fit_seconds=round(time.perf_counter() - t0, 3),
        )
        distance = getattr(orderer, "distance_", None)
        folder.save(name, perm, distance)
        out.permutations[name] = perm
        if distance is not None:
            out.distances[name] = np.asarray(distance, dtype=np.float32)
    return out


def order_file_name(spec: str) -> str:
    """The name an order file is reported under: ``NAME`` of ``NAME=PATH``, else ``file:STEM``."""
    name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
    return name or f"file:{Path(path).stem}"


def load_order_files(specs: Sequence[str], n_channels: int, folder=None, taken: Sequence[str] = ()) -> Orders:
    """Orders given as ``PATH`` or ``NAME=PATH`` (validated for ``n_channels``); copied into ``folder`` when given.

    A name that is ``identity`` (the anchor), one of ``taken`` (the study's other orders) or given
    twice is refused: an order file never replaces another order under its name.
    """
    from reorder import Permutation

    out = Orders()
    taken = set(taken) | {"identity"}
    for spec in specs:
        name = order_file_name(spec)
        path = spec.rpartition("=")[2] if "=" in spec else spec
        if name in out or name in taken:
            what = "the anchor order" if name == "identity" else "another order of this study"
            raise ValueError(f"order_file {spec}: the name {name!r} is already {what}; give the file another NAME=PATH")
        perm = Permutation.load(path, n_channels=n_channels)
        out.permutations[name] = perm
        if folder is not None:
            folder.save(name, perm)
    return out
