"""Every experiment's typed config: the command line, OUT/config.toml and a Python call build the same object.

``--from FILE`` reads a config.toml back (the command line wins, repeatable options add), values
from a file go through the same typed conversion as the command line, earlier versions' flat
files still load, and a Python user runs an experiment without any command line.
"""

import importlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eval.experiments.config import ConfigError, config_from_dict, read_toml
from eval.experiments.session import write_config
from eval.study_folder import StudyFolder
from studies import cli

ROOT = Path(__file__).resolve().parents[1]

#: experiment module -> (config class, experiment function) of the studies with an output folder
EXPERIMENTS = {
    "search_order": ("eval.experiments.search", "SearchConfig"),
    "tune_quantizer": ("eval.experiments.tune", "TuneConfig"),
    "ablate": ("eval.experiments.ablation", "AblateConfig"),
    "bench_codec": ("eval.experiments.bench_codec", "BenchCodecConfig"),
    "bench_scale": ("eval.experiments.bench_scale", "BenchScaleConfig"),
    "bench_pipeline": ("eval.experiments.bench_pipeline", "BenchPipelineConfig"),
    "bench_order_cost": ("eval.experiments.bench_order_cost", "BenchOrderCostConfig"),
}

# options with every value type here: str, int, float, bool switches, lists, KEY=VALUE pairs, None
EXTRA_ARGS = {
    "search_order": ["--orders", "identity", "tsp-ssim", "--order-file", "hand=x.txt", "--no-keep-bitstreams", "--preset", "slow"],
    "tune_quantizer": ["--n-trials", "3", "--min-overlap", "0.75", "--max-task-loss", "-0.5", "--objective", "task"],
    "ablate": ["--no-grid", "--calib-sizes", "1", "2", "--reference-orders", "--quantizers", "log", "uniform"],
    "bench_codec": ["--codecs", "vvenc:preset=faster", "x265@tiled", "--qps-av1", "30", "40"],
    "bench_scale": ["--workers-list", "1", "3", "--inline"],
    "bench_pipeline": ["--orders", "identity"],
    "bench_order_cost": ["--metric", "mse", "--swaps", "1", "2", "--time-budget", "1.5"],
}


def config_class(name):
    module, cls = EXPERIMENTS[name]
    return getattr(importlib.import_module(module), cls)


def parse(name, argv):
    return cli.parse_config(config_class(name), argv, f"studies.{name}", "", name)


def argv_of(name, out):
    qps = [] if name in ("ablate", "bench_codec", "bench_order_cost") else ["--qps", "22", "37"]
    return ["--out", str(out), "--model-arg", "short_side=160", "--model-arg", "window=64", "--model-arg", "note=a b",
            "--limit", "2", *qps, "--quiet", *EXTRA_ARGS[name]]


def written_config(name, tmp_path):
    argv = argv_of(name, tmp_path / name)
    config, _ = parse(name, argv)
    out = Path(config.run.out if hasattr(config, "run") else config.out)
    path = write_config(StudyFolder(out), config, name, command=f"python -m studies.{name} " + " ".join(argv))
    return config, path


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_config_round_trips_every_parameter(name, tmp_path):
    config, path = written_config(name, tmp_path)
    assert path.name == "config.toml" and path.parent == tmp_path / name
    again, source = parse(name, ["--from", str(path)])
    assert again == config and source == str(path)
    params, meta = read_toml(path)
    assert meta["study"] == name and meta["version"] and meta["command"].startswith(f"python -m studies.{name} --out ")
    assert params["data"]["model_args"] == {**config.data.model_args, "short_side": 160, "window": 64, "note": "a b"}
    assert config_from_dict(config_class(name), params) == config  # a Python user reads it the same way


def test_command_line_overrides_the_file(tmp_path):
    config, path = written_config("search_order", tmp_path)
    over, _ = parse("search_order", [
        "--from", str(path), "--qps", "27", "--keep-bitstreams", "--orders", "identity", "--out", str(tmp_path / "new"),
        "--model-arg", "short_side=200", "--order-file", "more=y.txt",
    ])
    assert over.coding.qps == [27] and over.run.keep_bitstreams is True and over.orders == ["identity"]
    assert over.run.out == str(tmp_path / "new")
    # repeatable options add to the file's values; a repeated model key: the command line wins
    assert over.data.model_args == {"short_side": 200, "window": 64, "note": "a b"}
    assert over.order_file == ["hand=x.txt", "more=y.txt"]
    # everything else comes from the file, not from the defaults
    assert over.data.limit == 2 and over.run.quiet is True and over.coding.preset == "slow"


def test_hand_written_file_with_dashes_and_scalars(tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text('qps = 32\nmodel-arg = ["short_side=128"]\nkeep-bitstreams = false\nworkers = "3"\n')
    config, _ = parse("search_order", ["--from", str(cfg)])
    assert config.coding.qps == [32] and config.data.model_args == {"short_side": 128}
    assert config.run.keep_bitstreams is False and config.run.workers == 3
    assert config.coding.codec == "vvenc" and config.run.out == "results/search_order"  # not in the file: defaults


def test_file_of_the_previous_flat_layout_still_loads():
    """A config.toml the previous version wrote (every option a top-level key, model_arg as KEY=VALUE texts)."""
    path = ROOT / "tests" / "data" / "config_v0_flat.toml"
    config, _ = parse("search_order", ["--from", str(path)])
    assert config.coding.qps == [22, 27, 32, 37] and config.orders == ["identity", "random", "tsp-correlation"]
    assert config.data.cache_dir == "/work/before_cache" and config.run.workers == 2 and config.run.quiet is True
    assert config.compare_quantizers == ["recommended"] and config.data.model_args == {}


def test_renamed_parameter_of_an_older_file_is_read_under_its_new_name(tmp_path):
    cfg = tmp_path / "tune.toml"
    cfg.write_text('normalisations = ["global"]\n')
    config, _ = parse("tune_quantizer", ["--from", str(cfg)])
    assert config.quantizer_scopes == ["global"]


@pytest.mark.parametrize("content, words", [
    ('qpz = [22]\n', ["'qpz'", "search_order", "did you mean 'qps'"]),
    ('qps = ["high"]\n', ["--qps", '"high" is not an integer']),
    ('qps = [27.9, 37]\n', ["--qps", "27.9 is not an integer"]),
    ('qps = [true, 37]\n', ["--qps", "true is not an integer"]),
    ('[data]\nlimit = true\n', ["--limit", "true is not an integer"]),
    ('bd_method = "linear"\n', ["--bd-method", "pchip"]),
    ('quiet = "yes"\n', ["--quiet", "true or false"]),
    ('codec = ["vvenc", "x265"]\n', ["--codec", "not text"]),
    ('[coding]\nbogus = 1\n', ["'bogus' in [coding]", "search_order"]),
    ('data = 3\n', ["[data] must be a table"]),
    ('qps = [22\n', ["not valid TOML"]),
])
def test_bad_file_is_one_line_error(tmp_path, capsys, content, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(SystemExit) as exc, cli.friendly_errors(cli._flags(config_class("search_order"))):
        parse("search_order", ["--from", str(cfg)])
    assert exc.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and str(cfg) in err[0], err
    for w in words:
        assert w in err[0]


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp, ["is a folder", "config.toml"]),
    (lambda tmp: Path(sys.executable).resolve(), ["is not a text file"]),
    (lambda tmp: tmp / "missing.toml", ["does not exist"]),
])
def test_from_a_folder_a_binary_or_nothing_is_one_line(tmp_path, capsys, make, words):
    with pytest.raises(SystemExit), cli.friendly_errors({}):
        parse("search_order", ["--from", str(make(tmp_path))])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: --from: ")
    for w in words:
        assert w in err[0]


def test_python_values_go_through_the_same_conversion():
    from eval.experiments import CodingConfig, DataConfig

    assert CodingConfig(qps=["22", 27]).qps == [22, 27]  # texts are parsed, as on the command line
    with pytest.raises(ConfigError, match="qps: 27.9 is not an integer"):
        CodingConfig(qps=[27.9])
    with pytest.raises(ConfigError, match="limit: -1 is below the smallest value allowed, 1"):
        DataConfig(limit=-1)
    with pytest.raises(ConfigError, match="limit: true is not an integer"):
        DataConfig(limit=True)


def test_unknown_key_exits_2_with_one_line(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('limit = 1\nnot_an_option = 3\n')
    proc = subprocess.run([sys.executable, "-m", "studies.ablate", "--from", str(cfg), "--out", str(tmp_path / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: --from: ") and "'not_an_option'" in lines[0] and "ablate" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing ran


# ---------------------------------------------------------------------------------------------- end to end


def tiny_args(tmp_path):
    """Two calibration and two test photos at a 160 px short side, real VVenC, 2 QPs, 2 orders."""
    return [
        "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        "--model-arg", "short_side=160", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "2", "--workers", "1", "--quiet", "--qps", "27", "37", "--orders", "identity", "tsp-correlation",
        "--compare-quantizers", "none", "--compare-pipelines", "none",
    ]


def run_study(args):
    return subprocess.run([sys.executable, "-m", "studies.search_order", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


def finished_rows(out: Path) -> dict:
    con = sqlite3.connect(out / "results.sqlite")
    try:
        rows = [json.loads(r) for (r,) in con.execute("SELECT row FROM results")]
    finally:
        con.close()
    assert rows and all(r["status"] == "ok" for r in rows)
    return {(r["image_id"], r["order"], r["qp"]): (r["bits"], r["feature_psnr"], r["task_stats"]) for r in rows}


@pytest.mark.slow
def test_rerun_from_config_into_new_folder_gives_identical_rows(tmp_path):
    first = run_study(tiny_args(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "out"
    options, meta = read_toml(out / "config.toml")
    assert options["coding"]["qps"] == [27, 37] and options["run"]["out"] == str(out) and meta["study"] == "search_order"

    new = tmp_path / "new"
    second = run_study(["--from", str(out / "config.toml"), "--out", str(new)])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 reused" in second.stderr  # a fresh folder: every cell coded again
    before, after = finished_rows(out), finished_rows(new)
    assert {"identity", "tsp-correlation"} <= {o for (_, o, _) in before}
    assert len({q for (_, _, q) in before}) == 2 and len({img for (img, _, _) in before}) == 2
    assert after == before

    # the new folder's configuration is the old one with the command-line override and the --from provenance
    new_options, new_meta = read_toml(new / "config.toml")
    assert new_options == dict(options, run=dict(options["run"], out=str(new)))
    assert new_meta["from"] == str(out / "config.toml")

    # the MPEG per-QP CSV: one row per order x QP
    import csv

    with open(new / "mpeg_per_qp.csv", newline="") as fh:
        mpeg = list(csv.DictReader(fh))
    orders = {o for (_, o, _) in after}
    assert len(mpeg) == len(orders) * 2 and {r["Dataset"] for r in mpeg} == orders
