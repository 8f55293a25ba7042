"""Synthetic cross-view benchmark: procedural 3D regions rendered headless (moderngl + EGL).

``generate(out_dir, preset="tiny", seed=0, overwrite=False, **overrides) -> Path`` writes one
University-1652-layout dataset per region plus cameras, depth maps, GPS and ``synth.json``.
See ``docs/synthetic.md``.
"""

from geolink.data.synthetic.presets import GENERATOR_VERSION, SynthParams, resolve_params
from geolink.data.synthetic.render import GLUnavailableError
from geolink.data.synthetic.write import generate

__all__ = [
    "GENERATOR_VERSION",
    "GLUnavailableError",
    "SynthParams",
    "generate",
    "resolve_params",
]
