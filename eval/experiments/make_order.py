"""Turn a hand-made grouping of channels into a validated order file for the experiments.

The grouping file holds one group per line (``3 17 42``; ``#`` comments) or is JSON
(``[[3, 17, 42], [5, 9]]``): channels that look alike in a mosaic of the layer. The order keeps
each group together, in the order written; channels in no group are appended in index order
(``rest = "append"``, default) or rejected (``rest = "error"``). The file written is the
package's order JSON with the grouping recorded as provenance (see :mod:`reorder.grouping`).
Without ``channels`` the channel count is read from the ``model`` adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eval.experiments.config import convert_fields, option
from reorder.grouping import REST_POLICIES

__all__ = ["MakeOrderConfig", "MakeOrderResult", "make_order"]


@dataclass
class MakeOrderConfig:
    """Parameters of :func:`make_order`."""

    groups: str = option(positional=True, metavar="GROUPS",
                         help="grouping file: one group of channel indices per line, or JSON [[...], ...]")
    out: str = option(help="order file to write (JSON, the format order_file reads)")
    channels: int | None = option(None, minimum=1, help="channels of the layer (default: from --model)")
    model: str = option("mobilenet_v2", help="model adapter whose split layer the grouping is for")
    model_args: dict = option(factory=dict, flag="--model-arg", repeat=True, metavar="KEY=VALUE", renamed_from=("model_arg",),
                              help="extra keyword for the model adapter (repeatable)")
    rest: str = option("append", choices=REST_POLICIES, help="channels in no group: append them in index order, or stop with an error")
    name: str | None = option(None, help="a name recorded in the provenance (default: the grouping file's stem)")

    def __post_init__(self):
        convert_fields(self)


@dataclass
class MakeOrderResult:
    config: MakeOrderConfig
    permutation: object  # reorder.Permutation
    path: Path
    files: dict = field(default_factory=dict)
    exit_code: int = 0

    def text(self) -> str:
        info, n = self.permutation.provenance, self.permutation.n_channels
        return (f"{info['n_groups']} groups ({sum(info['group_sizes'])} channels), {info['n_unassigned']} appended; "
                f"order of {n} channels (digest {self.permutation.digest()}) written to {self.path}\n"
                f"measure it with: python -m studies.search_order --order-file {info['name']}={self.path}")

    def notes(self) -> list[str]:
        return []


def make_order(config: MakeOrderConfig, *, command: str | None = None, source: str | None = None) -> MakeOrderResult:
    """Read the grouping, build and validate the order, save it with its provenance."""
    from reorder import Permutation
    from reorder.grouping import grouping_provenance, order_from_groups, read_groups

    groups = read_groups(config.groups)
    provenance = {}
    if config.channels is None:
        from eval.models import make_model

        adapter = make_model(config.model, **config.model_args)
        n_channels = int(adapter.n_channels)
        provenance.update(model=adapter.name, layer=adapter.layer)
    else:
        n_channels = config.channels
    order = order_from_groups(groups, n_channels, rest=config.rest, source=f"grouping file {config.groups}")
    provenance.update(grouping_provenance(groups, n_channels, config.rest, source=config.groups))
    provenance.update(orderer="subjective", name=config.name or Path(config.groups).stem)
    perm = Permutation(order, provenance)
    return MakeOrderResult(config, perm, perm.save(config.out))
