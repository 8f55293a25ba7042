"""Figures of the paper as PNG files: PCA feature maps (Figure 5), t-SNE of drone/satellite
embeddings (Figure 6), top-k retrieval grids, and loss curves (Figure 4).

Each module is imported where used (matplotlib and scikit-learn are not needed by the rest of
the package):

- :mod:`geolink.viz.pca`: ``pca_rgb``, ``pca_figure``
- :mod:`geolink.viz.tsne`: ``tsne_2d``, ``tsne_figure``, ``tsne_from_checkpoints``
- :mod:`geolink.viz.retrieval_grid`: ``retrieval_grid``, ``read_topk_csv``, ``grid_from_csv``,
  ``grid_from_checkpoint``
- :mod:`geolink.viz.curves`: ``read_train_metrics``, ``ema_smooth``, ``loss_curves``

Every function that writes a figure writes it atomically and returns its path.
"""
