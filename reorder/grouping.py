"""Subjective channel orders: a person's grouping of channels (picked by eye) turned into a validated order.

Someone looks at a mosaic of a layer's channels and writes down which channels look alike,
one group per line (``3 17 42``) or as JSON (``[[3, 17, 42], [5, 9]]``). The order keeps
every group together, groups in the order given, channels inside a group in the order
written; channels that were not mentioned are appended in index order (``rest="append"``)
or rejected (``rest="error"``, for a grouping meant to be complete).

Every mistake a hand-written file can hold (a channel in two groups, an index out of range,
a word that is not an index, an empty JSON group) raises :class:`GroupingError` naming the
file, the line or group and what to do, because a silently "repaired" grouping would
measure something the person did not mean.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .permutation import validate_order

__all__ = ["GroupingError", "parse_groups", "read_groups", "order_from_groups", "grouping_provenance", "REST_POLICIES"]

REST_POLICIES = ("append", "error")


class GroupingError(ValueError):
    """A channel grouping that cannot become an order (the message names where and why)."""


def _as_index(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise GroupingError(f"{where}: {value!r} is not a channel index; write whole numbers 0..C-1")
    return int(value)


def parse_groups(text: str, source: str = "groups") -> list[list[int]]:
    """Groups from text: a JSON list of lists, or one group per line.

    Text format: channel indices separated by spaces or commas, one group per line;
    ``#`` starts a comment, blank lines are skipped. Returns the groups as written
    (no range or duplicate checks: see :func:`order_from_groups`).
    """
    stripped = text.strip()
    if not stripped:
        raise GroupingError(f"{source} is empty; write one group of channel indices per line, e.g. '3 17 42'")
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise GroupingError(f"{source}: looks like JSON but does not parse ({exc}); write [[3, 17, 42], [5, 9]]") from None
        if not isinstance(data, list) or not all(isinstance(g, list) for g in data):
            raise GroupingError(f"{source}: JSON must be a list of groups, each a list of channel indices, e.g. [[3, 17], [5]]")
        groups = []
        for gi, group in enumerate(data, 1):
            if not group:
                raise GroupingError(f"{source}: group {gi} is empty; drop it or list its channels")
            groups.append([_as_index(v, f"{source}: group {gi}") for v in group])
        return groups
    groups = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        group = []
        for word in filter(None, re.split(r"[\s,;]+", line)):
            if not re.fullmatch(r"[+-]?\d+", word):
                raise GroupingError(f"{source} line {lineno}: {word!r} is not a channel index; write whole numbers 0..C-1")
            group.append(int(word))
        groups.append(group)
    if not groups:
        raise GroupingError(f"{source} holds only comments; write one group of channel indices per line")
    return groups


def read_groups(path: str | os.PathLike) -> list[list[int]]:
    """Groups from a file (see :func:`parse_groups`)."""
    p = Path(path)
    if not p.exists():
        raise GroupingError(f"grouping file {p} does not exist; check the path")
    if p.is_dir():
        raise GroupingError(f"grouping file {p} is a directory; give the path of a text or JSON file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise GroupingError(f"grouping file {p} cannot be read as text ({exc})") from None
    return parse_groups(text, source=f"grouping file {p}")


def order_from_groups(groups: Sequence[Sequence[int]], n_channels: int, rest: str = "append", source: str = "groups") -> np.ndarray:
    """The channel order (int64, length ``n_channels``) that keeps each group together.

    Groups come first in the given order, channels within a group as written; channels in
    no group follow in index order (``rest="append"``) or raise (``rest="error"``).
    """
    if rest not in REST_POLICIES:
        raise GroupingError(f"rest={rest!r}: use one of {', '.join(REST_POLICIES)}")
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
        raise GroupingError(f"n_channels={n_channels!r}: give the layer's channel count (a positive integer)")
    seen: dict[int, int] = {}
    order: list[int] = []
    for gi, group in enumerate(groups, 1):
        if len(group) == 0:
            raise GroupingError(f"{source}: group {gi} is empty; drop it or list its channels")
        for value in group:
            c = _as_index(value, f"{source}: group {gi}")
            if not 0 <= c < n_channels:
                raise GroupingError(f"{source}: group {gi} names channel {c}, outside 0..{n_channels - 1}; this layer has {n_channels} channels")
            if c in seen:
                where = "twice in that group" if seen[c] == gi else f"also in group {seen[c]}"
                raise GroupingError(f"{source}: channel {c} in group {gi} is {where}; put each channel in one group only")
            seen[c] = gi
            order.append(c)
    missing = [c for c in range(n_channels) if c not in seen]
    if missing and rest == "error":
        head = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
        raise GroupingError(
            f"{source}: {len(missing)} of {n_channels} channels are in no group ({head}); "
            "add them to a group or let them be appended (rest='append')"
        )
    order.extend(missing)
    return validate_order(np.asarray(order, dtype=np.int64), n_channels, source=source)  # a bijection by construction


def grouping_provenance(groups: Sequence[Sequence[int]], n_channels: int, rest: str, source: str | None = None) -> dict:
    """What to record beside the order: where the grouping came from and its shape."""
    canonical = json.dumps([[int(c) for c in g] for g in groups], separators=(",", ":"))
    n_grouped = sum(len(g) for g in groups)
    return {
        "kind": "subjective-grouping",
        "grouping_source": str(source) if source is not None else None,
        "grouping_sha256": hashlib.sha256(canonical.encode()).hexdigest()[:16],
        "n_groups": len(groups),
        "group_sizes": [len(g) for g in groups],
        "groups": json.loads(canonical),
        "rest": rest,
        "n_unassigned": int(n_channels - n_grouped),
    }
