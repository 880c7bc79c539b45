"""Video frames as samples, the calibration/test split disjoint in time, and the opencv-doc install step.

A small clip is made here with ffmpeg's test source; the tests on ``vtest.avi`` need
``python -m eval.install`` to have installed it, and fail (not skip) when it has not.
"""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from eval.data import installed
from eval.data.video import (DEFAULT_SPLIT, decode_args, decode_frames, frame_index, frame_samples, installed_video,
                             time_split_indices, video_split)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames, 64x48, MPEG-4 part 2 in AVI, from ffmpeg's moving test pattern."""
    from codec.ffmpeg import run_ffmpeg

    path = tmp_path_factory.mktemp("video") / "clip.avi"
    run_ffmpeg(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10",
                "-frames:v", "12", "-c:v", "mpeg4", "-pix_fmt", "yuv420p", str(path)])
    return path


def test_decode_args_are_an_argument_list_without_simd():
    args = decode_args("v.avi", 5)
    assert args[args.index("-cpuflags") + 1] == "0"  # the same RGB bytes on every CPU (module docstring)
    assert args[args.index("-fps_mode") + 1] == "passthrough" and args[args.index("-frames:v") + 1] == "5"
    assert args[args.index("-i") + 1] == "v.avi" and args[-5:] == ["-c:v", "ppm", "-f", "image2pipe", "-"]
    assert "-frames:v" not in decode_args("v.avi")


def test_decode_picks_frames_in_decoding_order(clip):
    frames = decode_frames(clip, [9, 0, 3, 3])
    assert sorted(frames) == [0, 3, 9]
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 and f.flags.writeable for f in frames.values())
    assert not np.array_equal(frames[0], frames[3])  # the pattern moves
    again = decode_frames(clip, [3])
    assert np.array_equal(again[3], frames[3])  # decoding is deterministic
    every = decode_frames(clip, range(12))
    assert all(np.array_equal(every[i], frames[i]) for i in (0, 3, 9))
    assert decode_frames(clip, []) == {}


def test_decode_errors_are_one_line(clip, tmp_path):
    with pytest.raises(ValueError, match="has 12 frames but frame 12 was asked for"):
        decode_frames(clip, [0, 12])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        decode_frames(tmp_path / "none.avi", [0])
    with pytest.raises(ValueError, match=">= 0"):
        decode_frames(clip, [-1])
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video" * 100)
    from codec.errors import CodecError

    with pytest.raises(CodecError, match="could not decode") as info:
        decode_frames(bad, [0])
    assert "\n" not in str(info.value)


def test_frame_samples_have_stable_ids_and_digests(clip):
    samples = frame_samples(clip, [4, 1])
    assert [s.id for s in samples] == ["clip-f0004", "clip-f0001"] and all(s.path is None for s in samples)
    assert [frame_index(s.id) for s in samples] == [4, 1]
    again = frame_samples(clip, [4], prefix="other")
    assert again[0].id == "other-f0004"
    assert again[0].content_digest() == samples[0].content_digest() != samples[1].content_digest()
    from eval.pipeline.cache import image_digest

    assert image_digest(samples[0]) == samples[0].content_digest()
    with pytest.raises(ValueError, match="not a video frame id"):
        frame_index("astronaut")


def test_time_split_is_disjoint_in_time():
    calib, test = time_split_indices(n_calib=4, n_test=3, stride=5, gap=7, start=2)
    assert calib == [2, 7, 12, 17] and test == [24, 29, 34]
    calib, test = time_split_indices()
    assert len(calib) == DEFAULT_SPLIT["n_calib"] and len(test) == DEFAULT_SPLIT["n_test"]
    assert min(test) - max(calib) >= DEFAULT_SPLIT["gap"] and max(test) < 795  # fits vtest.avi's 795 frames
    assert set(np.diff(calib)) == set(np.diff(test)) == {DEFAULT_SPLIT["stride"]}
    for bad in ({"n_calib": 0}, {"stride": 0}, {"gap": 0}, {"n_test": 2.5}, {"start": -1}):
        with pytest.raises(ValueError, match="must be an integer"):
            time_split_indices(**bad)


def test_video_split_of_a_clip(clip):
    calib, test = video_split(clip, n_calib=2, n_test=2, stride=3, gap=4)
    assert [s.id for s in calib] == ["clip-f0000", "clip-f0003"] and [s.id for s in test] == ["clip-f0007", "clip-f0010"]
    with pytest.raises(ValueError, match="has 12 frames"):
        video_split(clip, n_calib=2, n_test=3, stride=3, gap=4)


def test_installed_vtest_default_split():
    try:
        path = installed_video()
    except FileNotFoundError as exc:
        pytest.fail(f"vtest.avi is not installed ({exc}); run `python -m eval.install` first")
    calib, test = video_split(path)
    assert len(calib) == 32 and len(test) == 64
    assert calib[0].id == "vtest-f0000" and test[0].id == "vtest-f0288" and test[-1].id == "vtest-f0792"
    assert max(frame_index(s.id) for s in calib) + 40 <= min(frame_index(s.id) for s in test)
    assert calib[0].load().shape == (576, 768, 3)
    assert len({s.content_digest() for s in calib + test}) == 96


def test_missing_video_names_the_installer(monkeypatch, tmp_path):
    monkeypatch.setenv(installed.DATA_ENV_VAR, str(tmp_path))
    assert installed.opencv_doc_dir() == tmp_path / "opencv-doc"
    with pytest.raises(FileNotFoundError, match=r"run `python -m eval.install`.*--video PATH") as info:
        installed_video()
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="not one of the opencv-doc files"):
        installed.opencv_doc_file("other.avi")
    monkeypatch.delenv(installed.DATA_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert installed.data_dir() == tmp_path / "xdg" / "fcm-reorder" / "data"


# ----------------------------------------------------------------------------------------- the install step

FILES = {"vtest.avi": b"video bytes", "basketball1.png": b"photo one", "basketball2.png": b"photo two",
         "messi5.jpg": b"photo three"}


def _digests(files):
    import hashlib

    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


class FakeTools:
    """Stands in for apt-get and dpkg-deb in eval.install.opencv_doc: records every command."""

    def __init__(self, files=FILES, known=True):
        self.files, self.known, self.calls = files, known, []

    def run(self, cmd, cwd=None):
        self.calls.append(list(cmd))
        if cmd[:2] == ["apt-get", "download"]:
            if not self.known:
                return subprocess.CompletedProcess(cmd, 100, stdout="E: Unable to locate package opencv-doc\n")
            (Path(cwd) / "opencv-doc_4.6.0+dfsg-12_all.deb").write_bytes(b"deb")
            return subprocess.CompletedProcess(cmd, 0, stdout="")
        if cmd[:2] == ["apt-get", "update"]:
            self.known = True
            return subprocess.CompletedProcess(cmd, 0, stdout="")
        if cmd[:2] == ["dpkg-deb", "-x"]:
            from eval.install.opencv_doc import DEB_DATA_DIR

            folder = Path(cmd[3]) / DEB_DATA_DIR
            folder.mkdir(parents=True)
            for name, data in self.files.items():
                (folder / name).write_bytes(data)
            return subprocess.CompletedProcess(cmd, 0, stdout="")
        raise AssertionError(cmd)


@pytest.fixture
def tools(monkeypatch):
    import eval.install.opencv_doc as ocv

    fake = FakeTools()
    monkeypatch.setattr(ocv, "_run", fake.run)
    monkeypatch.setattr(ocv.shutil, "which", lambda name: f"/usr/bin/{name}")
    return fake


def test_install_copies_checked_files_and_keeps_valid_ones(tools, tmp_path):
    from eval.install.opencv_doc import install_opencv_doc

    logs = []
    target = install_opencv_doc(tmp_path / "d", log=logs.append, files=_digests(FILES))
    assert {p.name: p.read_bytes() for p in target.iterdir()} == FILES
    assert [c[:2] for c in tools.calls] == [["apt-get", "download"], ["dpkg-deb", "-x"]]
    install_opencv_doc(tmp_path / "d", log=logs.append, files=_digests(FILES))
    assert len(tools.calls) == 2 and "already installed and valid" in logs[-1]
    (target / "messi5.jpg").write_bytes(b"damaged")
    install_opencv_doc(tmp_path / "d", log=logs.append, files=_digests(FILES))
    assert (target / "messi5.jpg").read_bytes() == FILES["messi5.jpg"] and "installed messi5.jpg" in logs[-1]


def test_install_refuses_wrong_files_and_updates_apt_once(tools, tmp_path):
    from eval.install import InstallError
    from eval.install.opencv_doc import install_opencv_doc

    wrong = dict(_digests(FILES), **{"vtest.avi": "0" * 64})
    with pytest.raises(InstallError, match="vtest.avi: SHA-256 .* does not match") as info:
        install_opencv_doc(tmp_path / "d", log=lambda m: None, files=wrong)
    assert "\n" not in str(info.value) and not (tmp_path / "d" / "vtest.avi").exists()
    tools.known = False
    tools.calls.clear()
    install_opencv_doc(tmp_path / "e", log=lambda m: None, files=_digests(FILES))
    assert [c[:2] for c in tools.calls] == [["apt-get", "download"], ["apt-get", "update"], ["apt-get", "download"],
                                            ["dpkg-deb", "-x"]]


def test_no_apt_is_a_note_and_the_install_goes_on(monkeypatch, tmp_path, capsys):
    import eval.install as install
    import eval.install.opencv_doc as ocv

    monkeypatch.setattr(ocv.shutil, "which", lambda name: None)
    monkeypatch.setattr(ocv, "_run", lambda *a, **k: pytest.fail("nothing may run without apt"))
    with pytest.raises(ocv.AptUnavailableError, match="apt-get/dpkg-deb not found.*--video PATH / --test DIR") as info:
        ocv.install_opencv_doc(tmp_path, files=_digests(FILES))
    assert "\n" not in str(info.value)
    monkeypatch.setenv(installed.DATA_ENV_VAR, str(tmp_path / "empty"))
    capsys.readouterr()
    assert ocv.main([]) == 0 and "note: apt-get/dpkg-deb not found" in capsys.readouterr().err

    def raising(exc):
        def fn(*a, **k):
            raise exc
        return fn

    monkeypatch.setattr(install, "install_mobilenet_weights", lambda *a, **k: tmp_path / "m.pth")
    monkeypatch.setattr(ocv, "install_opencv_doc", raising(ocv.AptUnavailableError("no apt here")))
    assert install.main(["--no-python-tsp", "--no-ssdlite"]) == 0
    assert "note: no apt here" in capsys.readouterr().err
    monkeypatch.setattr(ocv, "install_opencv_doc", raising(install.InstallError("apt failed")))
    assert install.main(["--no-python-tsp", "--no-ssdlite"]) == 1
    assert "error: apt failed" in capsys.readouterr().err
