"""The exploration notebook: committed without outputs, and it runs from an empty study folder.

The run test executes ``notebooks/explore_orders.ipynb`` with nbclient in a kernel started
from this interpreter (a kernel spec written under ``tmp_path`` whose ``argv`` is
``sys.executable``, so it is the venv's Python whatever kernels the machine has). The study
folder is empty, so the notebook runs its own tiny study first (one image per split, two
orders, real model and VVenC), then draws every figure.
"""

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "explore_orders.ipynb"
KERNEL = "fcm-reorder-test"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} have outputs or execution counts; clear them before committing (Jupyter: Edit > Clear All Outputs)"


def test_notebook_reads_its_parameters_from_the_environment():
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code")
    for name in ("FCM_STUDY_DIR", "FCM_CACHE_DIR"):
        assert f'os.environ.get("{name}"' in source, f"{name} is not read by the notebook"


def _kernel_spec(tmp_path: Path) -> Path:
    """A kernel spec running this interpreter; returned folder goes first on JUPYTER_PATH."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fcm-reorder test kernel",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return tmp_path / "jupyter"


@pytest.mark.slow
def test_notebook_runs_a_tiny_study_and_shows_every_figure(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    study = tmp_path / "study"
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(_kernel_spec(tmp_path)), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("FCM_STUDY_DIR", str(study))
    monkeypatch.setenv("FCM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FCM_TINY_LIMIT", "1")
    monkeypatch.setenv("FCM_TINY_ORDERS", "identity tsp-correlation")
    monkeypatch.setenv("MPLBACKEND", "Agg")

    nb = nbformat.read(NOTEBOOK, as_version=4)  # executed in memory; the committed file is not touched
    NotebookClient(nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(ROOT)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"kernel: {sys.executable}" in text  # the venv's interpreter ran it
    assert "running eval.experiments.search_orders" in text  # the empty folder made it run the study
    assert (study / "summary.json").is_file() and (study / "results.csv").is_file()

    png_cells = [c for c in nb.cells if c.cell_type == "code" and any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert len(png_cells) >= 5, f"only {len(png_cells)} cells displayed a figure"
    saved = {p.stem for p in (study / "figures" / "notebook").glob("*.png")}
    assert {"rd_curves", "bd_rate", "mosaics", "similarity-tsp-correlation", "bits_per_image"} <= saved

    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "tsp-correlation" in html and "BD-rate feature PSNR" in html  # the BD-rate table was shown
    assert "figures shown and saved" in text  # the notebook's own closing check passed
