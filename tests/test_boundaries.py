"""The deployment path (2D encoder, checkpoint loading) must not import training-only code."""

import json
import subprocess
import sys

TRAINING_ONLY = (
    "geolink.losses",
    "geolink.models.point_nn",
    "geolink.models.mme",
    "geolink.models.geolink",
    "geolink.train",
    "geolink.recon",
    "geolink.config",
)


def _imported_after(stmt: str) -> set[str]:
    code = f"import sys, json; {stmt}; print(json.dumps(sorted(m for m in sys.modules if m.startswith('geolink'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_image_encoder_and_checkpoint_import_no_training_code():
    mods = _imported_after("import geolink.models.image_encoder, geolink.checkpoint")
    assert "geolink.models.image_encoder" in mods
    bad = {m for m in mods if m.startswith(TRAINING_ONLY)}
    assert not bad, bad


def test_no_package_module_imports_the_test_fixtures():
    """#11: fixtures live in geolink.testing; index/testing.py used to sit inside the
    deployment package and import the training model."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "geolink"
    users = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "testing" not in p.relative_to(root).parts and "geolink.testing" in p.read_text()
    ]
    assert not users, users
    assert not (root / "deploy" / "testing.py").exists()
    mods = _imported_after("import geolink.deploy, geolink.deploy.localizer, geolink.deploy.export")
    assert not {m for m in mods if m.startswith("geolink.testing")}
