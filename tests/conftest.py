"""Shared test setup. Tests never touch the network: hub downloads are disabled."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Keep CPU tests predictable on the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


# --- synthetic benchmark fixture (geolink.data.synthetic) -------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory):
    """Root of the ``tiny`` synthetic benchmark (seed 0), generated once per test session.

    Layout: ``root/synth.json`` + one University-1652-layout folder per region
    (``root/<region>/{train,test,cameras,depth}``, ``gps.csv``); see docs/synthetic.md.
    Skips (with the system packages to install) when no headless OpenGL context can be made.
    """
    # Import torch's compiler stack (triton, via timm) before an EGL context exists in this
    # process: importing it afterwards has crashed the interpreter.
    import timm  # noqa: F401

    from geolink.data.synthetic import GLUnavailableError, generate

    try:
        return generate(tmp_path_factory.mktemp("synth") / "tiny", preset="tiny", seed=0)
    except GLUnavailableError as e:
        pytest.skip(f"no OpenGL: {e}")
