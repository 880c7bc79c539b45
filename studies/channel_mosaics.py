"""Draw the channel mosaics of a few images, the pictures a hand-made ("subjective") order is made from.

    python -m studies.channel_mosaics --image camera --out runs/mosaics            # a bundled photo by name
    python -m studies.channel_mosaics --image photo.jpg --image other.png --out runs/mosaics
    python -m studies.channel_mosaics --model detectron2 --weights model_final_68b088.pkl --image img.jpg --out runs/c2

For each image: one mosaic of every channel in identity order (``NAME.png``) and sheets of
``--per-sheet`` channels at a size where the structure of each channel can be judged
(``NAME-sheet1.png`` ...), each tile labelled with its channel index. Look at them, write
channels that look alike as groups, one group per line, and turn the groups into an order
file with ``python -m studies.make_order`` (see README, "A hand-made order").
"""

from __future__ import annotations

import sys

from studies import cli


def build_parser():
    parser = cli.study_parser("studies.channel_mosaics", __doc__)
    parser.add_argument("--image", action="append", required=True, metavar="NAME_OR_PATH",
                        help="a bundled sample photo by name (e.g. camera, motorcycle_left) or an image file; repeatable")
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    parser.add_argument("--per-sheet", type=int, default=36, help="channels per zoomed sheet (0: no sheets)")
    parser.add_argument("--model", default="mobilenet_v2", help="model adapter: mobilenet_v2 (embedded default) or detectron2")
    parser.add_argument("--config", default=None, help="detectron2: model-zoo config name or yaml path")
    parser.add_argument("--weights", default=None, help="model weights file")
    parser.add_argument("--device", default="cpu", help="torch device for the model")
    parser.add_argument("--model-arg", action="append", type=cli._key_value, default=[], metavar="KEY=VALUE",
                        help="extra keyword for the model adapter (repeatable)")
    parser.add_argument("--cache-dir", default=".cache/features", help="feature cache")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _sample(spec: str):
    from pathlib import Path

    from eval.data import images

    if Path(spec).is_file():
        return images.Sample(id=Path(spec).stem, path=str(spec))
    bundled = {s.id: s for s in images.sample_photos(include_grey=True)}
    if spec not in bundled:
        raise ValueError(f"--image {spec!r} is neither a file nor a bundled photo; bundled: {', '.join(sorted(bundled))}")
    return bundled[spec]


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from eval.models import make_model
    from eval.pipeline.cache import FeatureCache
    from eval.plots import channel_mosaic

    if args.per_sheet < 0:
        raise ValueError(f"--per-sheet {args.per_sheet}: give 0 (no sheets) or a positive number of channels")
    out = Path(args.out)
    adapter = make_model(args.model, **cli.model_spec(args)["kwargs"])
    cache = FeatureCache(args.cache_dir)
    for spec in args.image:
        sample = _sample(spec)
        features, _ = cache.get_or_compute(adapter, sample)
        c, h, w = features.shape
        made = [channel_mosaic(features, out / f"{sample.id}.png", annotate=True,
                               title=f"{sample.id}: {c} channels of {adapter.layer}, identity order")]
        for k, start in enumerate(range(0, c, args.per_sheet or c) if args.per_sheet else []):
            idx = np.arange(start, min(c, start + args.per_sheet))
            made.append(channel_mosaic(features[idx], out / f"{sample.id}-sheet{k + 1}.png", annotate=True,
                                       title=f"{sample.id}: channels {idx[0]}-{idx[-1]} (tile number + {start} = channel index)"))
        for path in made:
            print(path)
    return 0


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
