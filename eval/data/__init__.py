"""Images and annotated sets: bundled sample photos, image folders, COCO JSON, OpenImages CSV.

:func:`choose_splits` turns the studies' data options into a calibration and a test split.
"""

from __future__ import annotations

__all__ = ["choose_splits", "check_overlap", "SplitOverlapError"]


class SplitOverlapError(ValueError):
    """The calibration and the test split hold the same image content."""


def check_overlap(calib, test, allow: bool = False) -> list[tuple[str, str]]:
    """``(test id, calibration id)`` pairs of images with the same content (:func:`eval.data.images.content_digest`).

    Orders and quantizer ranges are learned on the calibration split, so a test image that is
    also a calibration image (under any name or path) is measured on data it was fitted to.
    Raises :class:`SplitOverlapError` with one line naming the images unless ``allow``.
    """
    seen: dict[str, str] = {}
    for s in calib:
        seen.setdefault(s.content_digest(), s.id)
    pairs = [(s.id, seen[d]) for s in test if (d := s.content_digest()) in seen]
    if pairs and not allow:
        shown = ", ".join(f"test {t!r} = calibration {c!r}" if t != c else f"{t!r}" for t, c in pairs[:5])
        more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
        raise SplitOverlapError(
            f"{len(pairs)} test image(s) are also in the calibration split (same content): {shown}{more}; "
            "use disjoint images or set allow_overlap to measure on them anyway")
    return pairs


def _dataset(spec: str):
    from eval.data import detection

    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    if kind == "coco" and len(parts) == 2:
        return detection.coco_json(parts[0], parts[1])
    if kind == "openimages" and len(parts) in (2, 3):
        return detection.openimages_vcm(parts[0], parts[1], *(parts[2:]))
    raise ValueError(f"dataset {spec!r}: expected coco:ANNOTATIONS.json:IMAGE_DIR or openimages:BOXES.csv:IMAGE_DIR[:LABELS.csv]")


def choose_splits(dataset: str | None = None, calib: str | None = None, test: str | None = None,
                  images: str | None = None, n_calib: int | None = None, limit: int | None = None,
                  allow_overlap: bool = False, video: dict | None = None):
    """Calibration and test samples (embedded default: the bundled sample photos).

    ``dataset`` (an annotated test set, ``coco:...`` or ``openimages:...``) takes its
    calibration images from ``calib`` or its first ``n_calib`` images; ``calib`` and ``test``
    are two folders or ``bundled:NAME`` sets (:func:`eval.data.images.image_set`; ``test``
    alone keeps the default calibration photos); ``images`` is one folder split deterministically; ``video``
    (``{"path", "n_calib", "n_test", "stride", "gap"}``; path ``vtest`` = the installed pedestrian video) is
    split in time (:func:`eval.data.video.video_split`); ``limit``
    keeps the first N images of each split. A test image whose content is also in the
    calibration split is an error (:func:`check_overlap`) unless ``allow_overlap``.
    """
    from eval.data import images as photos

    if video:
        from eval.data.video import installed_video, video_split

        options = dict(video)
        path = options.pop("path")
        calib_samples, test_samples = video_split(installed_video() if path == "vtest" else path, **options)
    elif dataset:
        test_samples = _dataset(dataset)
        if calib:
            calib_samples = photos.image_folder(calib)
        else:
            n = n_calib or max(1, len(test_samples) // 2)
            calib_samples, test_samples = test_samples[:n], test_samples[n:]
    elif calib or test:
        if not test:
            raise ValueError("calib needs test: give a test folder too, or one images folder to split")
        # --test alone keeps the embedded default calibration photos
        calib_samples = photos.image_set(calib) if calib else photos.bundled_set("default-calib")
        test_samples = photos.image_set(test)
    elif images:
        samples = photos.image_folder(images)
        if len(samples) < 2:
            raise ValueError(f"images {images}: need at least 2 images (calibration and test), found {len(samples)}")
        n = n_calib or max(1, len(samples) // 2)
        calib_samples, test_samples = photos.split(samples, n_calib=n, seed=0)
    else:
        calib_samples, test_samples = photos.default_split()
    if limit:
        calib_samples, test_samples = calib_samples[:limit], test_samples[:limit]
    if not calib_samples or not test_samples:
        raise ValueError(f"need at least one calibration and one test image, got {len(calib_samples)} and {len(test_samples)}")
    check_overlap(calib_samples, test_samples, allow=allow_overlap)
    return calib_samples, test_samples
