"""The detectron2 installer's source patching (offline, on a miniature of the v0.5 sdist) and the adapter's
missing-install message. The real download/build runs in CI as `python -m eval.install.detectron2`."""
import importlib
import subprocess
import sys
import zipfile

import pytest

from eval.install import detectron2 as inst

ORIGINAL_SETUP = "from setuptools import setup\nimport torch\nsetup(ext_modules=get_extensions())\n"
TRANSFORM = "from PIL import Image\n\nclass ExtentTransform:\n    def __init__(self, src_rect, output_size, interp=Image.LINEAR, fill=0):\n        pass\n"
MODEL_ZOO = ('import os\nimport pkg_resources\n\n\ndef get_config_file(config_path):\n'
             '    cfg_file = pkg_resources.resource_filename(\n'
             '        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )\n    return cfg_file\n')


def _mini_sdist(root):
    """The parts of detectron2-cdo 0.5 the installer patches."""
    pkg = root / "detectron2"
    for sub in ("data/transforms", "model_zoo/configs/COCO-Detection", "layers"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "0.5"\n')
    for sub in ("data", "data/transforms", "model_zoo", "layers"):
        (pkg / sub / "__init__.py").touch()
    (pkg / "data/transforms/transform.py").write_text(TRANSFORM)
    (pkg / "model_zoo/model_zoo.py").write_text(MODEL_ZOO)
    (pkg / "model_zoo/configs/Base-RCNN-FPN.yaml").write_text("MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\n")
    (pkg / "model_zoo/configs/COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml").write_text('_BASE_: "../Base-RCNN-FPN.yaml"\n')
    (pkg / "layers/rotated_boxes.py").write_text("from detectron2 import _C\n\ndef iou(a, b):\n    return _C.box_iou_rotated(a, b)\n")
    (root / "setup.py").write_text(ORIGINAL_SETUP)
    return root


def test_patch_source_fixes_pillow_pkg_resources_and_c_extension(tmp_path):
    root = _mini_sdist(tmp_path / "src")
    inst.patch_source(root)
    inst.patch_source(root)  # idempotent
    transform = (root / "detectron2/data/transforms/transform.py").read_text()
    assert "Image.LINEAR" not in transform and "interp=Image.BILINEAR" in transform
    mz = (root / "detectron2/model_zoo/model_zoo.py").read_text()
    assert "pkg_resources" not in mz and '"configs", config_path' in mz
    setup = (root / "setup.py").read_text()
    assert "ext_modules" not in setup and "import torch" not in setup and "configs/**/*.yaml" in setup
    # the stub imports, and a compiled op fails with a message that says why
    sys.path.insert(0, str(root))
    try:
        for name in [m for m in sys.modules if m == "detectron2" or m.startswith("detectron2.")]:
            sys.modules.pop(name)
        rotated = importlib.import_module("detectron2.layers.rotated_boxes")
        with pytest.raises(AttributeError, match="box_iou_rotated is unavailable.*without its compiled extension"):
            rotated.iou(None, None)
        model_zoo = importlib.import_module("detectron2.model_zoo.model_zoo")
        assert model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml").endswith(
            "configs/COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "detectron2" or m.startswith("detectron2.")]:
            sys.modules.pop(name)


def test_patched_setup_builds_a_pure_python_wheel_with_the_configs(tmp_path):
    root = _mini_sdist(tmp_path / "src")
    inst.patch_source(root)
    out = tmp_path / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(root), "-w", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("detectron2_cdo-0.5-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "detectron2/model_zoo/configs/COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml" in names
    assert "detectron2/model_zoo/configs/Base-RCNN-FPN.yaml" in names
    assert "detectron2/_C.py" in names and not any(n.endswith(".so") for n in names)


def test_patch_source_refuses_an_unexpected_sdist(tmp_path):
    root = _mini_sdist(tmp_path / "src")
    (root / "detectron2/data/transforms/transform.py").write_text("class ExtentTransform:\n    pass\n")
    with pytest.raises(inst.Detectron2InstallError, match="Pillow Image.LINEAR.*differs from detectron2-cdo==0.5"):
        inst.patch_source(root)
    with pytest.raises(inst.Detectron2InstallError, match="no detectron2 package"):
        inst.patch_source(tmp_path)


def test_constraints_pin_the_installed_torch(tmp_path):
    text = inst._constraints_file(tmp_path).read_text()
    import importlib.metadata

    assert f"torch=={importlib.metadata.version('torch')}" in text.splitlines()
    assert "torch" not in " ".join(inst.RUNTIME_DEPENDENCIES)


def test_adapter_without_detectron2_says_how_to_install(monkeypatch):
    from eval.models import detectron2 as adapter_module

    monkeypatch.setitem(sys.modules, "detectron2", None)  # makes `import detectron2` raise ImportError
    assert adapter_module.detectron2_available() is False
    with pytest.raises(ImportError, match=r"run: python -m eval\.install --detectron2"):
        adapter_module.Detectron2Adapter()
