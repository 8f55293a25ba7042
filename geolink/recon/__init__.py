"""Offline 3D reconstruction: one point cloud per scene, post-processed and cached.

Backends (one file each, imported only when chosen): ``colmap`` (CPU SfM), ``vggt`` (the
paper's, GPU), ``depth`` (fusion of known depth maps). Entry points:
``geolink.recon.pipeline.main`` (the ``geolink reconstruct`` step),
``geolink.recon.features.load_point_features`` (the cached Point-NN features for training).
Nothing here is imported by the 2D inference path.
"""
