"""A FAISS index of tile embeddings saved next to its metadata, and the ``index`` pipeline step.

On disk, an index is a folder::

    INDEX/index.faiss   the FAISS index (inner product on L2-normalised embeddings)
    INDEX/meta.json     format, model (name, img_size, dim, checkpoint sha256), index type and
                        parameters, one record per tile (id, lat, lon, footprint_m, source), and
                        ``complete`` (False while a build is in progress; re-running resumes).

Index types are registered by name: ``flat`` (exact, the default), ``ivf`` (IVF-Flat, for large
galleries) and ``hnsw`` (graph). No torch here.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from geolink.deploy.tiles import Tile
from geolink.errors import ConfigError, DataError, GeoLinkError, MissingDependencyError
from geolink.registries import INDEX_TYPES
from geolink.utils import conf as conf_mod
from geolink.utils.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "geolink-index-v1"
INDEX_FILE = "index.faiss"
META_FILE = "meta.json"


def _faiss():
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("the tile index needs FAISS: pip install faiss-cpu") from None
    return faiss


# ----------------------------------------------------------------------------- index types
def flat_index(dim: int, n_hint: int) -> Any:
    """Exact inner product search."""
    return _faiss().IndexFlatIP(dim)


def ivf_index(dim: int, n_hint: int, nlist: int = 0, nprobe: int = 16) -> Any:
    """Inverted file with ``nlist`` cells (default ~4 sqrt(N)); ``nprobe`` cells searched."""
    faiss = _faiss()
    nlist = int(nlist) or max(1, min(65536, int(4 * math.sqrt(max(n_hint, 1)))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = min(int(nprobe), nlist)
    return index


def hnsw_index(
    dim: int, n_hint: int, m: int = 32, ef_search: int = 64, ef_construction: int = 80
) -> Any:
    """HNSW graph: ``m`` links per node; larger ``ef_search`` = more exact, slower."""
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(dim, int(m), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = int(ef_search)
    index.hnsw.efConstruction = int(ef_construction)
    return index


def _apply_search_params(index: Any, params: dict[str, Any]) -> None:
    # Search-time knobs are not always persisted by write_index; re-apply them after loading.
    if "nprobe" in params and hasattr(index, "nprobe"):
        index.nprobe = min(int(params["nprobe"]), index.nlist)
    if "ef_search" in params and hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(params["ef_search"])


# ----------------------------------------------------------------------------- the step's config
STEP = "index"  # presets in geolink/configs/index/: flat, ivf, hnsw


@dataclass
class IndexConfig:
    index_type: str = "flat"  # a name of geolink.registries.INDEX_TYPES
    # the type's parameters (ivf: nlist, nprobe; hnsw: m, ef_search, ef_construction), checked
    # by its factory
    params: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    flush_every: int = 1024  # tiles between saves, so an interrupted build resumes

    RUNTIME: ClassVar[tuple[str, ...]] = ("batch_size", "flush_every")


def resolve(
    conf: IndexConfig | Mapping[str, Any] | Sequence[str] | None = None, preset: str | None = None
) -> IndexConfig:
    """The step's config: ``preset``, then ``conf`` (a mapping or ``key=value`` strings),
    strictly; an unknown index type lists the known ones."""
    if not isinstance(conf, IndexConfig):
        conf = conf_mod.load(IndexConfig, STEP, preset, overrides=conf or {})
    if conf.index_type not in INDEX_TYPES:
        raise ConfigError(
            f"unknown index type '{conf.index_type}'; available: {', '.join(INDEX_TYPES.names())}"
        )
    return conf


# ----------------------------------------------------------------------------- the index
def _check_meta(meta: dict, where: Path) -> None:
    """The fields the index reads, with their types: a hand-edited or foreign meta.json is
    named, not a KeyError/AttributeError deep inside."""
    model, index, tiles = meta.get("model"), meta.get("index"), meta.get("tiles")
    problems = []
    if not isinstance(model, dict) or not isinstance(model.get("out_dim"), int):
        problems.append("'model' must be an object with an integer 'out_dim'")
    if not isinstance(index, dict) or not isinstance(index.get("params", {}), dict):
        problems.append("'index' must be an object (with an object 'params')")
    if not isinstance(tiles, list) or not all(
        isinstance(t, dict) and isinstance(t.get("id"), str) for t in tiles
    ):
        problems.append("'tiles' must be a list of objects with a string 'id'")
    if problems:
        raise DataError(f"{where}: " + "; ".join(problems) + "; rebuild with --overwrite")


class TileIndex:
    """FAISS index + tile metadata. Row ``i`` of the FAISS index is ``tiles[i]``."""

    def __init__(self, index: Any, meta: dict[str, Any]):
        self.index = index
        self.meta = meta
        self._ids = {t["id"]: i for i, t in enumerate(meta["tiles"])}

    # --- construction
    @classmethod
    def create(
        cls, model: dict[str, Any], index_type: str = "flat", n_hint: int = 0, **params: Any
    ) -> TileIndex:
        """An empty index for embeddings of ``model["out_dim"]`` dimensions."""
        factory = INDEX_TYPES.get(index_type)
        try:
            index = factory(int(model["out_dim"]), n_hint, **params)
        except TypeError as e:
            raise GeoLinkError(
                f"bad parameters {params} for index type '{index_type}': {e}"
            ) from None
        if index_type == "ivf":
            params = {**params, "nlist": index.nlist, "nprobe": index.nprobe}
        meta = {
            "format": FORMAT,
            "model": dict(model),
            "index": {"type": index_type, "params": params, "metric": "inner_product"},
            "complete": False,
            "tiles": [],
        }
        return cls(index, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TileIndex:
        """Read ``path/meta.json`` + ``path/index.faiss``; errors say what is wrong with them."""
        path = Path(path)
        meta_path, index_path = path / META_FILE, path / INDEX_FILE
        if not meta_path.is_file() or not index_path.is_file():
            raise DataError(
                f"{path} is not a GeoLink index (expected {META_FILE} and {INDEX_FILE}); "
                "build one with `geolink index`"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{meta_path} is not valid JSON: {e}") from None
        if not isinstance(meta, dict):
            raise DataError(f"{meta_path}: expected a JSON object, found {type(meta).__name__}")
        if meta.get("format") != FORMAT:
            raise DataError(
                f"{meta_path}: unknown format {meta.get('format')!r}; expected {FORMAT}"
            )
        _check_meta(meta, meta_path)
        try:
            index = _faiss().read_index(str(index_path))
        except RuntimeError as e:
            raise DataError(f"cannot read FAISS index {index_path}: {e}") from None
        if index.ntotal != len(meta["tiles"]) or index.d != int(meta["model"]["out_dim"]):
            raise DataError(
                f"{path}: {INDEX_FILE} holds {index.ntotal} vectors of dim {index.d} but {META_FILE} "
                f"lists {len(meta['tiles'])} tiles of dim {meta['model']['out_dim']}; the index is "
                "damaged, rebuild it with --overwrite"
            )
        _apply_search_params(index, meta["index"].get("params", {}))
        return cls(index, meta)

    def save(self, path: str | os.PathLike) -> Path:
        """Write both files as a pair: each goes to a temporary file first and both are renamed
        only once both are written, so a full disk or a crash while writing leaves the previous
        pair (or nothing) in place, never an index without its meta.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.meta["count"] = len(self)
        text = json.dumps(self.meta, indent=2) + "\n"
        with atomic_path(path / INDEX_FILE) as tmp_index, atomic_path(path / META_FILE) as tmp_meta:
            _faiss().write_index(self.index, str(tmp_index))
            tmp_meta.write_bytes(text.encode("utf-8"))
        return path

    # --- content
    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def tiles(self) -> list[dict[str, Any]]:
        return self.meta["tiles"]

    @property
    def model(self) -> dict[str, Any]:
        return self.meta["model"]

    @property
    def dim(self) -> int:
        return int(self.meta["model"]["out_dim"])

    def __contains__(self, tile_id: str) -> bool:
        return tile_id in self._ids

    def tile(self, tile_id: str) -> dict[str, Any]:
        if tile_id not in self._ids:
            raise DataError(f"unknown tile id '{tile_id}'")
        return self.tiles[self._ids[tile_id]]

    def add(self, emb: np.ndarray, tiles: Sequence[dict[str, Any]]) -> None:
        """Append embeddings (N, D) float32 (L2-normalised) for ``tiles`` (N tile records)."""
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim or emb.shape[0] != len(tiles):
            raise GeoLinkError(
                f"expected ({len(tiles)}, {self.dim}) embeddings, got {tuple(emb.shape)}"
            )
        if not np.isfinite(emb).all():
            bad = [tiles[i]["id"] for i in np.where(~np.isfinite(emb).all(1))[0][:5]]
            raise GeoLinkError(f"non-finite embeddings for tile(s) {', '.join(bad)}")
        dup = [t["id"] for t in tiles if t["id"] in self._ids]
        if dup:
            raise GeoLinkError(f"tile id(s) already in the index: {', '.join(dup[:5])}")
        if not self.index.is_trained:
            if emb.shape[0] < getattr(self.index, "nlist", 1):
                raise GeoLinkError(
                    f"an IVF index with nlist={self.index.nlist} needs at least that many tiles in "
                    f"its first batch, got {emb.shape[0]}; lower --nlist or use --index-type flat"
                )
            self.index.train(emb)
        self.index.add(emb)
        for t in tiles:
            self._ids[t["id"]] = len(self.meta["tiles"])
            self.meta["tiles"].append(dict(t))

    def search(self, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """query_emb (Nq, D) -> (scores (Nq, k), rows (Nq, k)), best first; k capped at len.

        Approximate index types may return fewer than k hits; those slots hold row -1.
        """
        q = np.ascontiguousarray(query_emb, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise GeoLinkError(f"query embeddings must be (N, {self.dim}), got {tuple(q.shape)}")
        k = max(1, min(int(k), len(self)))
        if len(self) == 0:
            raise GeoLinkError("the index is empty")
        scores, rows = self.index.search(q, k)
        return scores, rows


# ----------------------------------------------------------------------------- pipeline step
class Embedder(Protocol):
    """What :func:`main` needs from an encoder (see :mod:`geolink.deploy.encoders`)."""

    info: dict[str, Any]

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


def main(
    conf: IndexConfig | Mapping[str, Any] | None,
    tiles: Sequence[Tile],
    encoder: Embedder,
    out_dir: str | os.PathLike,
    add: bool = False,
    overwrite: bool = False,
) -> Path:
    """Embed ``tiles`` with ``encoder`` into the index at ``out_dir``; returns ``out_dir``.

    ``conf``: an :class:`IndexConfig` or a mapping of its options. The resolved config is
    written to ``out_dir/config.yaml``; resuming or adding with another one is refused.

    - new folder, or ``overwrite``: build from scratch;
    - existing index, same checkpoint: tiles already in it are skipped. Without ``add`` the tile
      set must be the one the index was started with (resume); with ``add`` new tiles append.
    - a different checkpoint (sha256) is refused: embeddings of two models do not mix.
    """
    out_dir = Path(out_dir)
    conf = resolve(conf)
    exists = (out_dir / META_FILE).is_file()
    ids = [t.id for t in tiles]
    if len(set(ids)) != len(ids):
        raise DataError("duplicate tile ids in the input; ids must be unique")

    store = _open_or_create(conf, tiles, encoder, out_dir, exists and not overwrite, add)
    conf_mod.record(out_dir, conf, STEP, overwrite or not exists)
    todo = [t for t in tiles if t.id not in store]
    if len(todo) < len(tiles):
        log.info(
            "%d of %d tiles already indexed; embedding %d",
            len(tiles) - len(todo),
            len(tiles),
            len(todo),
        )
    if not todo and store.meta["complete"] and exists and not overwrite:
        log.info("index %s is up to date (%d tiles)", out_dir, len(store))
        return out_dir

    _embed_into(store, todo, encoder, out_dir, conf.batch_size, conf.flush_every)
    store.meta["complete"] = True
    store.save(out_dir)
    log.info(
        "index %s: %d tiles, %s, dim %d",
        out_dir,
        len(store),
        store.meta["index"]["type"],
        store.dim,
    )
    return out_dir


def _open_or_create(
    conf: IndexConfig, tiles: Sequence[Tile], encoder: Embedder, out_dir: Path, reuse: bool,
    add: bool,
) -> TileIndex:  # fmt: skip
    """The existing index at ``out_dir`` (same model; same tile set unless ``add``) when
    ``reuse``, else a new empty one of ``conf``'s type."""
    ids = [t.id for t in tiles]
    if reuse:
        store = TileIndex.load(out_dir)
        _check_same_model(store, encoder.info, out_dir)
        if not add and store.meta["complete"] and set(store._ids) != set(ids):
            raise GeoLinkError(
                f"{out_dir} already holds an index of a different tile set ({len(store)} tiles); use "
                "--add to append these tiles or --overwrite to rebuild"
            )
    else:
        store = TileIndex.create(encoder.info, conf.index_type, n_hint=len(tiles), **conf.params)
    return store


def _embed_into(
    store: TileIndex, todo: Sequence[Tile], encoder: Embedder, out_dir: Path, batch_size: int,
    flush_every: int,
) -> None:  # fmt: skip
    """Embed ``todo`` into ``store``, saving every ``flush_every`` tiles (resumable)."""
    from tqdm.auto import tqdm

    # IVF needs its training batch before the first add.
    first_flush = flush_every
    if not store.index.is_trained:
        first_flush = max(flush_every, 40 * getattr(store.index, "nlist", 1))
    store.meta["complete"] = False
    pending_emb: list[np.ndarray] = []
    pending: list[Tile] = []
    bar = tqdm(total=len(todo), desc="indexing tiles", unit="tile")
    for s in range(0, len(todo), batch_size):
        chunk = todo[s : s + batch_size]
        pending_emb.append(encoder.embed([t.load() for t in chunk]))
        pending += chunk
        bar.update(len(chunk))
        limit = first_flush if not store.index.is_trained else flush_every
        if len(pending) >= limit:
            store.add(np.concatenate(pending_emb), [t.record() for t in pending])
            store.save(out_dir)
            pending_emb, pending = [], []
    bar.close()
    if pending:
        store.add(np.concatenate(pending_emb), [t.record() for t in pending])


def _check_same_model(store: TileIndex, info: dict[str, Any], where: Path) -> None:
    old, new = store.model.get("checkpoint_sha256"), info.get("checkpoint_sha256")
    if old != new:
        raise GeoLinkError(
            f"{where} was built with checkpoint sha256 {str(old)[:12]}… but this encoder is "
            f"{str(new)[:12]}…; embeddings of different models cannot be mixed. Use the same "
            "checkpoint, a new --out folder, or --overwrite"
        )
