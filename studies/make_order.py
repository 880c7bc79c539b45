"""Turn a hand-made grouping of channels into a validated order file for the studies.

    python -m studies.make_order groups.txt --channels 144 --out runs/hand.json
    python -m studies.make_order groups.json --rest error --out runs/hand.json   # every channel must be grouped
    python -m studies.search_order --order-file hand=runs/hand.json              # then measure it

``groups.txt`` holds one group per line (``3 17 42``; ``#`` comments) or is JSON
(``[[3, 17, 42], [5, 9]]``): channels that look alike in a mosaic of the layer. The order
keeps each group together, in the order written; channels in no group are appended in index
order (``--rest append``, default) or rejected (``--rest error``). The file written is the
package's order JSON with the grouping recorded as provenance (see :mod:`reorder.grouping`).
Without ``--channels`` the channel count is read from the ``--model`` adapter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studies import cli


def build_parser() -> argparse.ArgumentParser:
    from reorder.grouping import REST_POLICIES

    parser = cli.study_parser("studies.make_order", __doc__)
    parser.add_argument("groups", help="grouping file: one group of channel indices per line, or JSON [[...], ...]")
    parser.add_argument("--out", required=True, help="order file to write (JSON, the format --order-file reads)")
    parser.add_argument("--channels", type=int, default=None, help="channels of the layer (default: from --model)")
    parser.add_argument("--model", default="mobilenet_v2", help="model adapter whose split layer the grouping is for")
    parser.add_argument("--model-arg", action="append", type=cli._key_value, default=[], metavar="KEY=VALUE",
                        help="extra keyword for the model adapter (repeatable)")
    parser.add_argument("--rest", choices=REST_POLICIES, default="append",
                        help="channels in no group: append them in index order, or stop with an error")
    parser.add_argument("--name", default=None, help="a name recorded in the provenance (default: the grouping file's stem)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with cli.friendly_errors():
        return run(args)


def run(args) -> int:
    from reorder.grouping import grouping_provenance, order_from_groups, read_groups
    from reorder import Permutation

    groups = read_groups(args.groups)
    provenance = {}
    if args.channels is None:
        from eval.models import make_model

        adapter = make_model(args.model, **dict(args.model_arg))
        n_channels = int(adapter.n_channels)
        provenance.update(model=adapter.name, layer=adapter.layer)
    else:
        n_channels = args.channels
    order = order_from_groups(groups, n_channels, rest=args.rest, source=f"grouping file {args.groups}")
    provenance.update(grouping_provenance(groups, n_channels, args.rest, source=args.groups))
    provenance.update(orderer="subjective", name=args.name or Path(args.groups).stem)
    perm = Permutation(order, provenance)
    path = perm.save(args.out)
    info = provenance
    print(
        f"{info['n_groups']} groups ({sum(info['group_sizes'])} channels), {info['n_unassigned']} appended; "
        f"order of {n_channels} channels (digest {perm.digest()}) written to {path}"
    )
    print(f"measure it with: python -m studies.search_order --order-file {info['name']}={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
