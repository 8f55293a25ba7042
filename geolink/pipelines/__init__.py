"""Pipelines: the demo, its report and the ablation study, built from declared steps.

Each pipeline declares its steps once, as values of the step kinds in :mod:`.steps`
(synthesize, reconstruct, train, evaluate, or a call without a CLI equivalent). The same
declaration runs the pipeline (:class:`.stages.Stages` records each finished step) and renders
the report's command-by-command section, so the two cannot drift apart.
"""
