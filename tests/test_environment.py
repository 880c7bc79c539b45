"""The environment block of summary.json: its keys, real versions, and probes that fail without failing."""

import re
import subprocess

import pytest

from eval import environment as env

KEYS = {"package", "python", "libraries", "cpu", "threads", "ffmpeg", "encoder"}


@pytest.fixture(autouse=True)
def fresh_caches():
    for fn in (env.package_info, env._libraries, env._ffmpeg, env.codec_versions, env.cpu_info):
        fn.cache_clear()
    yield
    for fn in (env.package_info, env._libraries, env._ffmpeg, env.codec_versions, env.cpu_info):
        fn.cache_clear()


def test_environment_block_keys_and_values():
    block = env.environment("vvenc", workers=3)
    assert KEYS <= set(block)
    pkg = block["package"]
    assert pkg["name"] == "fcm-reorder" and pkg["version"] not in ("", None)
    assert pkg["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", pkg["git_commit"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", block["python"]["version"])
    for lib in ("torch", "torchvision", "numpy"):
        assert isinstance(block["libraries"][lib], str) and block["libraries"][lib][0].isdigit()
    assert block["ffmpeg"]["version"].startswith("ffmpeg version")
    assert block["encoder"]["codec"] == "vvenc" and re.match(r"\d+\.\d+", block["encoder"]["version"])
    assert "libvvenc" in block["encoder"]["line"]
    assert block["cpu"]["model"] and block["cpu"]["logical_cores"] >= 1
    threads = block["threads"]
    assert threads["workers"] == 3 and isinstance(threads["torch"], int)
    assert {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"} <= set(threads)
    assert "vtm" not in block


def test_thread_settings_follow_the_codec_spec_and_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    t = env.thread_settings(workers=2, codec_spec="vvenc:preset=faster,threads=1")
    assert t["OMP_NUM_THREADS"] == "1" and t["codec_threads"] == 1 and t["workers"] == 2


def test_a_failing_probe_is_recorded_not_raised(monkeypatch):
    import codec.ffmpeg

    def broken():
        raise FileNotFoundError("no ffmpeg here\n(second line)")

    monkeypatch.setattr(codec.ffmpeg, "ffmpeg_exe", broken)
    block = env.environment("vvenc", workers=1)
    assert block["ffmpeg"] == {"error": "FileNotFoundError: no ffmpeg here (second line)"}
    assert "error" in block["encoder"]
    assert block["package"]["name"] == "fcm-reorder"  # the other probes still ran


def test_vtm_version_is_probed_only_for_vtm(monkeypatch, tmp_path):
    monkeypatch.delenv("FCM_VTM_ENCODER", raising=False)
    block = env.environment("vtm:encoder=/nonexistent/EncoderApp", workers=1)
    assert "encoder" not in block and "error" in block["vtm"]
    fake = tmp_path / "EncoderApp"
    fake.write_text("#!/bin/sh\necho\necho 'VVCSoftware: VTM Encoder Version 9.0 [Linux][GCC 12.2.0][64 bit]'\nexit 1\n")
    fake.chmod(0o755)
    env.codec_versions.cache_clear()
    vtm = env.environment(f"vtm:encoder={fake}", workers=1)["vtm"]
    assert vtm["version"] == "9.0" and "VTM Encoder Version 9.0" in vtm["banner"]


def test_outside_a_checkout_the_commit_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(env, "_ROOT", tmp_path)
    assert env.package_info()["git_commit"] == "unknown"


def test_probes_run_once_per_process(monkeypatch):
    env.environment("vvenc", workers=1)
    calls = []
    real = subprocess.run

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    again = env.environment("vvenc", workers=2)
    assert calls == [] and again["threads"]["workers"] == 2
