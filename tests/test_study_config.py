"""Every study writes OUT/config.toml and accepts it back with --from FILE (command line wins)."""

import importlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from studies import cli
from eval.study_folder import CONFIG_META_TABLE, StudyFolder, config_toml, read_config_file

ROOT = Path(__file__).resolve().parents[1]

# the studies that run through cli.run_study with an --out folder (make_order and bench_tsp write one file)
FOLDER_STUDIES = ["search_order", "tune_quantizer", "ablate", "bench_codec", "bench_scale"]

# options with every value type argparse produces here: str, int, float, bool switches, lists, KEY=VALUE pairs, None
EXTRA_ARGS = {
    "search_order": ["--orders", "identity", "tsp-ssim", "--order-file", "hand=x.txt", "--no-keep-bitstreams", "--preset", "slow"],
    "tune_quantizer": ["--n-trials", "3", "--min-overlap", "0.75", "--max-task-loss", "-0.5", "--objective", "task"],
    "ablate": ["--no-grid", "--calib-sizes", "1", "2", "--reference-orders", "--quantizers", "log", "uniform"],
    "bench_codec": ["--codecs", "vvenc:preset=faster", "x265@tiled", "--qps-av1", "30", "40"],
    "bench_scale": ["--workers-list", "1", "3", "--inline"],
}


def parser_of(name):
    return importlib.import_module(f"studies.{name}").build_parser()


def argv_of(name, out):
    return ["--out", str(out), "--model-arg", "short_side=160", "--model-arg", "window=64", "--model-arg", "note=a b",
            "--limit", "2", "--qps", "22", "37", "--quiet", *EXTRA_ARGS[name]]


def written_config(name, tmp_path):
    argv = argv_of(name, tmp_path / name)
    parser = parser_of(name)
    args = cli.parse_study_args(parser, argv)
    path = cli.write_study_config(parser, args, argv)
    return args, path


@pytest.mark.parametrize("name", FOLDER_STUDIES)
def test_config_round_trips_every_option(name, tmp_path):
    args, path = written_config(name, tmp_path)
    assert path == StudyFolder(tmp_path / name).config_toml and path.name == "config.toml"
    again = cli.parse_study_args(parser_of(name), ["--from", str(path)])
    expected = dict(vars(args), from_config=str(path))
    assert vars(again) == expected
    options, meta = read_config_file(path)
    assert meta["study"] == f"studies.{name}" and meta["version"]
    assert meta["command"].startswith(f"python -m studies.{name} --out ")
    assert "from_config" not in options and "from" not in options
    # KEY=VALUE as on the command line (bench_scale's parser starts from its own model arguments)
    assert options["model_arg"][-3:] == ["short_side=160", "window=64", "note=a b"]


def test_command_line_overrides_the_file(tmp_path):
    args, path = written_config("search_order", tmp_path)
    over = cli.parse_study_args(parser_of("search_order"), [
        "--from", str(path), "--qps", "27", "--keep-bitstreams", "--orders", "identity", "--out", str(tmp_path / "new"),
        "--model-arg", "short_side=200",
    ])
    assert over.qps == [27] and over.keep_bitstreams is True and over.orders == ["identity"]
    assert over.out == str(tmp_path / "new")
    # repeatable options add to the file's list; a repeated model key: the command line wins
    assert dict(over.model_arg) == {"short_side": 200, "window": 64, "note": "a b"}
    # everything else comes from the file, not from the parser's defaults
    assert over.limit == 2 and over.quiet is True and over.preset == "slow" and over.order_file == ["hand=x.txt"]


def test_hand_written_file_with_dashes_and_scalars(tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text('qps = 32\nmodel-arg = ["short_side=128"]\nkeep-bitstreams = false\nworkers = "3"\n')
    args = cli.parse_study_args(parser_of("search_order"), ["--from", str(cfg)])
    assert args.qps == [32] and args.model_arg == [("short_side", 128)] and args.keep_bitstreams is False and args.workers == 3
    assert args.codec == "vvenc"  # not in the file: the parser's default


@pytest.mark.parametrize("content, words", [
    ('qpz = [22]\n', ["'qpz'", "studies.search_order", "did you mean 'qps'"]),
    ('qps = ["high"]\n', ["qps", "--qps"]),
    ('bd_method = "linear"\n', ["bd_method", "pchip"]),
    ('quiet = "yes"\n', ["quiet", "true or false"]),
    ('codec = ["vvenc", "x265"]\n', ["codec", "one value"]),
    ('qps = [22\n', ["not a valid TOML file"]),
])
def test_bad_file_is_one_line_error(tmp_path, capsys, content, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(SystemExit) as exc:
        cli.parse_study_args(parser_of("search_order"), ["--from", str(cfg)])
    assert exc.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and str(cfg) in err[0]
    for w in words:
        assert w in err[0]


def test_unknown_key_exits_2_with_one_line(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('limit = 1\nnot_an_option = 3\n')
    proc = subprocess.run([sys.executable, "-m", "studies.ablate", "--from", str(cfg), "--out", str(tmp_path / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "'not_an_option'" in lines[0] and "studies.ablate" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing ran


def test_toml_writer_values(tmp_path):
    text = config_toml({"s": 'a "q" \\ \n\t\x7f é', "f": 1e-05, "n": float("nan"), "i": -3, "b": False, "l": [1.5, "x"],
                        "e": [], "none": None, "weird key": 1}, {"version": "1"}, header="two\nlines")
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    options, meta = read_config_file(cfg)
    assert meta == {"version": "1"}
    assert options.pop("n") != options.get("n")  # nan
    assert options == {"s": 'a "q" \\ \n\t\x7f é', "f": 1e-05, "i": -3, "b": False, "l": [1.5, "x"], "e": [], "weird key": 1}
    assert text.startswith("# two\n# lines\n") and f"[{CONFIG_META_TABLE}]" in text and "# none =" in text


def test_add_config_argument_is_idempotent():
    parser = parser_of("search_order")
    cli.add_config_argument(parser)
    cli.add_config_argument(parser)
    assert sum(a.dest == cli.CONFIG_DEST for a in parser._actions) == 1
    assert "--from" in parser.format_help()


# ---------------------------------------------------------------------------------------------- end to end


def tiny_args(tmp_path):
    """Two calibration and two test photos at a 160 px short side, real VVenC, 2 QPs, 2 orders."""
    return [
        "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        "--model-arg", "short_side=160", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "2", "--workers", "1", "--quiet", "--qps", "27", "37", "--orders", "identity", "tsp-correlation",
        "--compare-quantizers", "none",
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
    options, meta = StudyFolder(out).read_config()
    assert options["qps"] == [27, 37] and options["out"] == str(out) and meta["study"] == "studies.search_order"

    new = tmp_path / "new"
    second = run_study(["--from", str(out / "config.toml"), "--out", str(new)])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 reused" in second.stderr  # a fresh folder: every cell coded again
    before, after = finished_rows(out), finished_rows(new)
    assert {"identity", "tsp-correlation"} <= {o for (_, o, _) in before}
    assert len({q for (_, _, q) in before}) == 2 and len({img for (img, _, _) in before}) == 2
    assert after == before

    # the new folder's configuration is the old one with the command-line override and the --from provenance
    new_options, new_meta = StudyFolder(new).read_config()
    assert new_options == dict(options, out=str(new))
    assert new_meta["from"] == str(out / "config.toml")

    # the MPEG per-QP CSV: one row per order x QP
    import csv

    with open(new / "mpeg_per_qp.csv", newline="") as fh:
        mpeg = list(csv.DictReader(fh))
    orders = {o for (_, o, _) in after}
    assert len(mpeg) == len(orders) * 2 and {r["Dataset"] for r in mpeg} == orders
