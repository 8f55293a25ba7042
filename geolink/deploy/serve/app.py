"""HTTP service for localization: ``POST /locate`` (image upload -> top-k tiles as JSON),
``GET /health``, ``GET /tiles/{id}/image`` (tile thumbnail), ``GET /`` (upload page) and the
OpenAPI docs at ``/docs``.

Bad input never reaches the model: wrong content type -> 415, over the size limit -> 413, empty
file -> 400, undecodable image -> 422, each with a message. Endpoints are plain ``def`` so FastAPI
runs them in its thread pool: concurrent requests are served while one is being encoded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from importlib import resources
from typing import Any

import cv2
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from geolink import __version__
from geolink.data.images import decode_image
from geolink.deploy.geo import exif_gps
from geolink.deploy.localizer import Localizer
from geolink.deploy.mapview import tile_mosaic, tiles_origin
from geolink.deploy.mission import FlightTracker
from geolink.deploy.refine import RefineConfig
from geolink.deploy.tiles import read_tile_source
from geolink.errors import ConfigError, DataError, GeoLinkError
from geolink.utils.camera import intrinsics

log = logging.getLogger(__name__)

ALLOWED_TYPES = ("image/jpeg", "image/png", "image/tiff", "image/bmp", "image/webp")
DEFAULT_MAX_BYTES = 16 * 2**20
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the file


def _read_upload(file: UploadFile, max_bytes: int) -> bytes:
    ctype = (file.content_type or "").split(";")[0].strip().lower()
    if ctype not in ALLOWED_TYPES:
        raise HTTPException(
            415,
            f"unsupported content type '{ctype or 'none'}'; send one of {', '.join(ALLOWED_TYPES)}",
        )
    data = file.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"file too large: over the limit of {max_bytes} bytes")
    if not data:
        raise HTTPException(400, "empty file: the upload has no bytes")
    return data


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing passes it on (any
    other exception there becomes a 400 "error parsing the body")."""

    def __init__(self, message: str):
        super().__init__(413, message)


class _StreamLimit:
    """ASGI middleware: a request body declared or grown past ``limit`` bytes is answered 413
    (JSON) as soon as that is known. FastAPI's own ``max_body_size`` answers in plain text, which would break
    this API's ``{"detail": ...}`` contract."""

    def __init__(self, app, limit: int, message: str):
        self.app, self.limit, self.message = app, limit, message

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
            return
        seen, started = 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge(self.message)
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _BodyTooLarge:
            if started:
                raise
            await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)


def create_app(
    localizer: Localizer,
    max_bytes: int = DEFAULT_MAX_BYTES,
    default_top_k: int = 5,
    max_top_k: int = 50,
) -> FastAPI:
    """Build the FastAPI app around a loaded :class:`Localizer`.

    Raises:
        ConfigError: a limit that would make the service refuse every request.
    """
    if not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigError(f"upload limit {max_bytes!r} bytes: must be a positive integer")
    if not 1 <= default_top_k <= max_top_k:
        raise ConfigError(f"default top-k {default_top_k!r}: must be in 1..{max_top_k}")
    too_large = f"file too large: over the limit of {max_bytes} bytes"
    app = FastAPI(
        title="GeoLink localization",
        version=__version__,
        description="Localize drone images against an index of geo-referenced satellite tiles.",
    )
    page = (resources.files("geolink.deploy.serve") / "static" / "index.html").read_text(
        encoding="utf-8"
    )
    index = localizer.index

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error while serving %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    # refuses a declared Content-Length over the limit before reading, and counts the body while
    # it streams in, so a chunked upload (no Content-Length) stops at the limit instead of being
    # spooled to disk whole before the endpoint's own check
    app.add_middleware(_StreamLimit, limit=max_bytes + MULTIPART_OVERHEAD, message=too_large)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return page

    @app.get("/health", summary="service status, index and model")
    def health() -> dict[str, Any]:
        return _health(localizer, max_bytes)

    _add_locate_route(app, localizer, max_bytes, default_top_k, max_top_k)
    _add_map_routes(app, index)
    _add_track_routes(app, localizer, max_bytes)

    @app.get("/tiles/{tile_id}/image", summary="a JPEG thumbnail of a gallery tile")
    def tile_image(tile_id: str, size: int = Query(192, ge=16, le=1024)) -> Response:
        return Response(_thumbnail(index, tile_id, size), media_type="image/jpeg")

    return app


def _add_locate_route(
    app: FastAPI, localizer: Localizer, max_bytes: int, default_top_k: int, max_top_k: int
) -> None:
    """POST /locate: one uploaded image -> the ``locate --json`` object (refined on request)."""

    @app.post("/locate", summary="top-k satellite tiles for one drone image")
    def locate(
        file: UploadFile = File(..., description="drone image (JPEG, PNG, TIFF, BMP, WebP)"),
        top_k: int = Query(default_top_k, ge=1, le=max_top_k, description="tiles to return"),
        lat: float | None = Query(None, ge=-90, le=90, description="known latitude (optional)"),
        lon: float | None = Query(None, ge=-180, le=180, description="known longitude (optional)"),
        refine: bool = Query(False, description="verify the top tiles and refine the position"),
        hfov: float | None = Query(
            None, gt=0, lt=180, description="camera field of view (degrees): nadir point"
        ),
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        data = _read_upload(file, max_bytes)
        known = (lat, lon) if lat is not None and lon is not None else None
        if hfov is not None and not refine:
            raise HTTPException(422, "hfov needs refine=true")
        conf = RefineConfig(top_k=top_k) if refine else None
        return _locate_upload(
            localizer, data, file.filename or "upload", top_k, known, t0, conf, hfov
        )


MAX_TRACK_SESSIONS = 64


def _add_track_routes(app: FastAPI, localizer: Localizer, max_bytes: int) -> None:
    """POST /track/{session}: the frames of one flight, in order, each answered with the
    tracked estimate (a :class:`FlightTracker` per session; beyond MAX_TRACK_SESSIONS the least
    recently used session is dropped); DELETE ends a session."""
    sessions: OrderedDict[str, tuple[FlightTracker, threading.Lock]] = OrderedDict()
    lock = threading.Lock()

    @app.post("/track/{session}", summary="the next frame of a flight: the tracked position")
    def track(
        session: str,
        file: UploadFile = File(..., description="the flight's next frame"),
        dt: float = Query(2.0, gt=0, le=3600, description="seconds since the previous frame"),
        hfov: float | None = Query(None, gt=0, lt=180, description="camera field of view"),
    ) -> dict[str, Any]:
        data = _read_upload(file, max_bytes)
        try:
            image = decode_image(data, f"upload '{file.filename or 'frame'}'")
        except DataError as e:
            raise HTTPException(422, str(e)) from None
        try:
            with lock:
                if session not in sessions:
                    while len(sessions) >= MAX_TRACK_SESSIONS:  # the least recently used goes
                        sessions.popitem(last=False)
                    tracker = FlightTracker(localizer, refine=RefineConfig())
                    sessions[session] = (tracker, threading.Lock())
                sessions.move_to_end(session)
                tracker, session_lock = sessions[session]
            K = intrinsics(image.shape[1], image.shape[0], hfov) if hfov is not None else None
            with session_lock:  # the frames of one flight are a sequence
                res, single, est = tracker.step(image, dt, K, file.filename or "frame")
        except GeoLinkError as e:
            raise HTTPException(400, str(e)) from None
        return {
            "session": session,
            "frame": tracker.filter.frame,
            "track": est.to_dict() if est else None,
            "refined": bool(single.get("ok")),
            "locate": res.to_dict(),
        }

    @app.delete("/track/{session}", summary="end a tracking session")
    def end_track(session: str) -> dict[str, Any]:
        with lock:
            return {"session": session, "deleted": sessions.pop(session, None) is not None}


def _add_map_routes(app: FastAPI, index: Any) -> None:
    """/map.png (the index's tiles as one picture, built on the first request) and /map.json
    (its frame: lat/lon -> pixel), for the page's map; no external map service."""
    mosaic: dict[str, Any] = {}
    lock = threading.Lock()

    def view() -> dict[str, Any]:
        with lock:
            if not mosaic:
                mosaic.update(_map_view(index))
            return mosaic

    @app.get("/map.json", summary="the map picture's frame: lat/lon -> pixel")
    def map_frame() -> dict[str, Any]:
        return view()["frame"]

    @app.get("/map.png", summary="the index's tiles as one picture (no external map service)")
    def map_png() -> Response:
        return Response(view()["png"], media_type="image/png")


def _health(localizer: Localizer, max_bytes: int) -> dict[str, Any]:
    index = localizer.index
    model = index.model
    return {
        "status": "ok",
        "version": __version__,
        "tiles": len(index),
        "index_type": index.meta["index"]["type"],
        "backend": localizer.backend,
        "model": {k: model.get(k) for k in ("name", "backbone", "img_size", "out_dim")},
        "checkpoint_sha256": model.get("checkpoint_sha256"),
        "max_bytes": max_bytes,
    }


def _locate_upload(
    localizer: Localizer, data: bytes, name: str, top_k: int,
    known: tuple[float, float] | None, t0: float,
    refine: RefineConfig | None = None, hfov: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The /locate answer for one uploaded image; the known position comes from the request or
    else from the image's EXIF GPS."""
    try:
        image = decode_image(data, f"upload '{name}'")
    except DataError as e:
        raise HTTPException(422, str(e)) from None
    source = "request" if known is not None else None
    if known is None and (gps := exif_gps(data)) is not None:
        known, source = gps, "exif"
    try:
        K = intrinsics(image.shape[1], image.shape[0], hfov) if hfov is not None else None
        (res,) = localizer.locate(
            [image], top_k, names=[name], known=[known], known_source=source or "request",
            refine=refine, intrinsics=[K],
        )  # fmt: skip
    except GeoLinkError as e:
        raise HTTPException(400, str(e)) from None
    out = res.to_dict()
    out["image"] = {"width": int(image.shape[1]), "height": int(image.shape[0]), "bytes": len(data)}
    out["timing_ms"]["total"] = 1e3 * (time.perf_counter() - t0)
    return out


def _map_view(index: Any) -> dict[str, Any]:
    """The mosaic of the index's tiles as PNG bytes and its frame; 404 when tiles lack positions
    or footprints."""
    try:
        canvas, frame = tile_mosaic(index.tiles, tiles_origin(index.tiles), max_px=1024)
    except DataError as e:
        raise HTTPException(404, f"no map: {e}") from None
    ok, buf = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise HTTPException(500, "could not encode the map")
    return {"png": buf.tobytes(), "frame": frame.to_dict()}


def _thumbnail(index: Any, tile_id: str, size: int) -> bytes:
    """JPEG bytes of a gallery tile, longest side at most ``size``; 404 for unknown ids."""
    if tile_id not in index:
        raise HTTPException(404, f"unknown tile id '{tile_id}'")
    try:
        img = read_tile_source(index.tile(tile_id)["source"])
    except GeoLinkError as e:
        # the reason (with the server's file path) goes to the log, not to the client
        log.warning("tile %r image is not available: %s", tile_id, e)
        raise HTTPException(404, f"tile '{tile_id}' image is not available") from None
    scale = size / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )
    if not ok:
        raise HTTPException(500, "could not encode the tile thumbnail")
    return buf.tobytes()


def serve(
    localizer: Localizer,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    default_top_k: int = 5,
) -> None:
    """Run the app with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError:
        from geolink.errors import MissingDependencyError

        raise MissingDependencyError(
            "geolink serve needs uvicorn: pip install 'geolink[deploy]'"
        ) from None
    app = create_app(localizer, max_bytes=max_bytes, default_top_k=default_top_k)
    uvicorn.run(app, host=host, port=port, log_level="info")
