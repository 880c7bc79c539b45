"""Images and annotated sets: bundled sample photos, image folders, COCO JSON, OpenImages CSV.

:func:`choose_splits` turns the studies' data options into a calibration and a test split.
"""

from __future__ import annotations

__all__ = ["choose_splits"]


def _dataset(spec: str):
    from eval.data import detection

    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    if kind == "coco" and len(parts) == 2:
        return detection.coco_json(parts[0], parts[1])
    if kind == "openimages" and len(parts) in (2, 3):
        return detection.openimages_vcm(parts[0], parts[1], *(parts[2:]))
    raise ValueError(f"--dataset {spec!r}: expected coco:ANNOTATIONS.json:IMAGE_DIR or openimages:BOXES.csv:IMAGE_DIR[:LABELS.csv]")


def choose_splits(dataset: str | None = None, calib: str | None = None, test: str | None = None,
                  images: str | None = None, n_calib: int | None = None, limit: int | None = None):
    """Calibration and test samples (embedded default: the bundled sample photos).

    ``dataset`` (an annotated test set, ``coco:...`` or ``openimages:...``) takes its
    calibration images from ``calib`` or its first ``n_calib`` images; ``calib`` with
    ``test`` are two folders; ``images`` is one folder split deterministically; ``limit``
    keeps the first N images of each split.
    """
    from eval.data import images as photos

    if dataset:
        test_samples = _dataset(dataset)
        if calib:
            calib_samples = photos.image_folder(calib)
        else:
            n = n_calib or max(1, len(test_samples) // 2)
            calib_samples, test_samples = test_samples[:n], test_samples[n:]
    elif calib or test:
        if not (calib and test):
            raise ValueError("--calib and --test go together: give both folders, or one --images folder to split")
        calib_samples, test_samples = photos.image_folder(calib), photos.image_folder(test)
    elif images:
        samples = photos.image_folder(images)
        if len(samples) < 2:
            raise ValueError(f"--images {images}: need at least 2 images (calibration and test), found {len(samples)}")
        n = n_calib or max(1, len(samples) // 2)
        calib_samples, test_samples = photos.split(samples, n_calib=n, seed=0)
    else:
        calib_samples, test_samples = photos.default_split()
    if limit:
        calib_samples, test_samples = calib_samples[:limit], test_samples[:limit]
    if not calib_samples or not test_samples:
        raise ValueError(f"need at least one calibration and one test image, got {len(calib_samples)} and {len(test_samples)}")
    return calib_samples, test_samples
