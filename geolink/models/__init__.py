"""Models. Import submodules directly: ``geolink.models.image_encoder`` is the inference path and
must stay free of the point branch, losses and training (a test enforces this)."""
