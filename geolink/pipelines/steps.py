"""The step kinds a pipeline is declared with.

A step is a value: its fields say what it does. ``run()`` does it in this process with typed
configs and returns a JSON-able result (what ``stages.json`` records); ``commands()`` gives the
``geolink`` command lines that do the same by hand (the report prints them). Both read the same
fields, so a pipeline's report cannot describe anything but what ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolink.utils import conf


@dataclass
class Synthesize:
    name: str
    out: Path
    preset: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)  # SynthParams options

    def run(self) -> str:
        from geolink.data.synthetic import generate

        return str(generate(self.out, preset=self.preset, seed=self.seed, **self.overrides))

    def commands(self) -> list[list[str]]:
        head = ["geolink", "synth", "--preset", self.preset, "--seed", str(self.seed)]
        return [[*head, "--out", str(self.out), *conf.dotlist(self.overrides)]]


@dataclass
class Reconstruct:
    """Point clouds of one synthetic region's training scenes (+ Point-NN features)."""

    name: str
    data: Path
    region: str
    out: Path
    backend: str
    workers: int
    num_points: int

    def run(self) -> dict:
        from geolink.data import build_dataset
        from geolink.recon.pipeline import main as reconstruct

        ds = build_dataset("synthetic", self.data, regions=[self.region])
        options = {"backend": self.backend, "workers": self.workers, "num_points": self.num_points}
        manifest = json.loads(reconstruct(options, ds, self.out).read_text())
        return manifest.get("summary", {})

    def commands(self) -> list[list[str]]:
        return [
            [
                "geolink",
                "reconstruct",
                "--dataset",
                "synthetic",
                "--root",
                str(self.data),
                "-o",
                f"regions=[{self.region}]",
                "--backend",
                self.backend,
                "--workers",
                str(self.workers),
                "--num-points",
                str(self.num_points),
                "--out",
                str(self.out),
            ]  # fmt: skip
        ]


@dataclass
class Train:
    name: str
    preset: str  # a training preset (geolink/configs/train)
    overrides: dict[str, Any]  # a partial training config (nested keys)
    out: Path

    def run(self) -> str:
        from geolink.config import load_config
        from geolink.train.trainer import train

        resume = (self.out / "checkpoints" / "trainer_state.pt").is_file()
        return str(train(load_config(self.preset, self.overrides), self.out, resume=resume))

    def commands(self) -> list[list[str]]:
        head = ["geolink", "train", "--preset", self.preset, "--out", str(self.out)]
        return [[*head, *conf.dotlist(self.overrides)]]


@dataclass
class EvalJob:
    """One ``geolink eval`` of a checkpoint on one synthetic region."""

    region: str
    options: dict[str, Any]  # EvalConfig options (direction, conditions, batch_size)


@dataclass
class Evaluate:
    """A checkpoint's encoder on several regions; each job writes ``run/eval/<region>``."""

    name: str
    checkpoint: Path
    run_dir: Path
    data: Path
    jobs: list[EvalJob]

    def run(self) -> dict[str, str]:
        from geolink.checkpoint import load_image_encoder
        from geolink.data import build_dataset
        from geolink.evaluate.evaluator import evaluate

        encoder, meta = load_image_encoder(self.checkpoint)
        summary = {}
        for job in self.jobs:
            ds = build_dataset("synthetic", self.data, regions=[job.region])
            res = evaluate(
                encoder, ds, job.options, self.run_dir / "eval" / job.region,
                dataset_name=job.region, model_key=meta["sha256"],
                cache_dir=self.run_dir / "eval" / "cache",
                # models that share their frozen trunk (the untrained encoder, the baseline,
                # GeoLink) compute its activations of the test images once
                trunk_cache_dir=self.run_dir.parent / "trunk_cache",
            )  # fmt: skip
            summary[job.region] = res["metrics_path"]
        return summary

    def commands(self) -> list[list[str]]:
        lines = []
        for job in self.jobs:
            o = job.options
            flags = ["--direction", o["direction"]] if o.get("direction", "both") != "both" else []
            weather = [c for c in o.get("conditions", []) if c != "clean"]
            flags += ["--weather", ",".join(weather)] if weather else []
            flags += ["--batch-size", str(o["batch_size"])] if "batch_size" in o else []
            lines.append(
                [
                    "geolink",
                    "eval",
                    "--checkpoint",
                    str(self.checkpoint),
                    "--dataset",
                    "synthetic",
                    "--root",
                    str(self.data),
                    "-o",
                    f"regions={job.region}",
                    *flags,
                    "--out",
                    str(self.run_dir / "eval" / job.region),
                ]  # fmt: skip
            )
        return lines


@dataclass
class Call:
    """A step without a CLI equivalent (the untrained reference, the figures)."""

    name: str
    fn: Callable[[], Any]
    what: str = ""  # one line for the report

    def run(self) -> Any:
        return self.fn()

    def commands(self) -> list[list[str]]:
        return []


@dataclass
class Chain:
    """Steps recorded as one stage (a study's train-then-evaluate of one run and seed)."""

    name: str
    steps: list[Any]

    def run(self) -> Any:
        result = None
        for step in self.steps:
            result = step.run()
        return result  # the last step's

    def commands(self) -> list[list[str]]:
        return [c for s in self.steps for c in s.commands()]


Step = Synthesize | Reconstruct | Train | Evaluate | Call | Chain


def run_all(steps: list[Step], stages: Any) -> None:
    """Run every step not yet recorded as done in ``stages``."""
    for step in steps:
        stages.run(step.name, step.run)


def command_lines(steps: list[Step]) -> str:
    """The steps as shell lines, in order (steps without a command are left out)."""
    import shlex

    return "\n".join(shlex.join(c) for s in steps for c in s.commands())


__all__ = [
    "Call",
    "Chain",
    "EvalJob",
    "Evaluate",
    "Reconstruct",
    "Step",
    "Synthesize",
    "Train",
    "command_lines",
    "run_all",
]
