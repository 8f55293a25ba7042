"""One registry kind: lazy entries, names for CLI choices and errors, no heavy imports."""

import subprocess
import sys

import pytest

from geolink.errors import ConfigError
from geolink.utils.registry import Registry


def test_lazy_entry_is_imported_on_first_lookup_only(tmp_path, monkeypatch):
    (tmp_path / "geolink_fake_part.py").write_text(
        "IMPORTS = []\nIMPORTS.append(1)\ndef make(x): return 2 * x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "geolink_fake_part", raising=False)
    reg = Registry("widget", lazy={"fake": "geolink_fake_part:make"})
    assert reg.names() == ["fake"] and "fake" in reg
    assert "geolink_fake_part" not in sys.modules
    assert reg.build("fake", 21) == 42
    assert sys.modules["geolink_fake_part"].IMPORTS == [1]
    reg.get("fake")
    assert sys.modules["geolink_fake_part"].IMPORTS == [1]  # imported once


def test_unknown_name_lists_every_name_and_duplicates_are_refused():
    reg = Registry("widget", lazy={"b": "x:y"})
    reg.add("a", object())

    @reg.register("c")
    def _c():
        return None

    with pytest.raises(ConfigError, match=r"unknown widget 'd'; available: a, b, c"):
        reg.get("d")
    for dup in (
        lambda: reg.add("b", 1),
        lambda: reg.add_lazy("a", "m:x"),
        lambda: reg.register("c")(_c),
    ):
        with pytest.raises(ValueError, match="registered twice"):
            dup()
    with pytest.raises(ValueError, match="module:attr"):
        reg.add_lazy("e", "no_colon")


def test_registries_import_nothing_heavy_and_resolve_every_entry():
    code = (
        "import sys; import geolink.registries as r, geolink.utils.ranges; "
        "heavy = [m for m in ('torch', 'faiss', 'pycolmap', 'moderngl') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "[reg.get(n) for reg in (r.DATASETS, r.RECON_BACKENDS, r.INDEX_TYPES, r.POINT_ENCODERS, "
        "r.POINT_HEADS) for n in reg.names()]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_choices_come_from_the_registries():
    from geolink.registries import INDEX_TYPES

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "geolink.cli.main",
            "index",
            "--index-type",
            "bogus",
            "--out",
            "x",
            "y",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "invalid choice: 'bogus'" in r.stderr
    assert all(n in r.stderr for n in INDEX_TYPES.names())


def test_point_head_choices_at_load_come_from_the_registry():
    from geolink.config import load_config
    from geolink.registries import POINT_HEADS

    with pytest.raises(ConfigError, match="model.point.head") as e:
        load_config("test", ["model.point.head=mlp"])
    assert all(n in str(e.value) for n in POINT_HEADS.names())
