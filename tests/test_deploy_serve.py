"""The localization service: good image, wrong type, oversized, corrupt, empty, concurrent
requests, EXIF GPS error in metres, tile thumbnails, and the upload page."""

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from geolink.deploy import store, tiles_from_folder  # noqa: E402
from geolink.deploy.encoders import TorchEncoder  # noqa: E402
from geolink.deploy.localizer import Localizer  # noqa: E402
from geolink.deploy.serve.app import create_app  # noqa: E402
from geolink.testing.deploy import (  # noqa: E402
    drone_view,
    make_checkpoint,
    make_tiles,
    textured_tile,
    tile_latlon,
)

N_TILES = 12


@pytest.fixture(scope="module")
def localizer(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    ckpt = make_checkpoint(root / "tiny.safetensors")
    tile_dir, csv_path = make_tiles(root, N_TILES)
    enc = TorchEncoder(ckpt)
    out = store.main(
        {}, tiles_from_folder(tile_dir, csv_path, footprint_m=150.0), enc, root / "index"
    )
    return Localizer(store.TileIndex.load(out), enc)


@pytest.fixture(scope="module")
def client(localizer):
    return TestClient(create_app(localizer, max_bytes=200_000))


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _query(i: int, seed: int = 1) -> bytes:
    return _png(drone_view(textured_tile(i), seed))


def test_health_and_page(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["tiles"] == N_TILES and h["backend"] == "torch"
    assert h["model"]["img_size"] == 56
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "locate" in page.text
    assert "/locate" in client.get("/openapi.json").json()["paths"]


def test_good_image_returns_its_tile(client):
    r = client.post("/locate?top_k=3", files={"file": ("q.png", _query(4), "image/png")})
    assert r.status_code == 200, r.text
    res = r.json()
    assert [m["rank"] for m in res["matches"]] == [1, 2, 3]
    assert res["matches"][0]["tile_id"] == "t004"
    assert (res["lat"], res["lon"]) == pytest.approx(tile_latlon(4), abs=1e-6)
    assert res["matches"][0]["footprint_m"] == 150.0
    assert res["error_m"] is None and res["image"]["width"] == 96
    assert res["matches"][0]["score"] >= res["matches"][1]["score"]


def test_known_position_from_query_or_exif(client):
    lat, lon = tile_latlon(4)
    r = client.post(
        f"/locate?lat={lat}&lon={lon + 0.001}", files={"file": ("q.png", _query(4), "image/png")}
    )
    expected = 111_319.49 * 0.001 * np.cos(np.radians(lat))  # R = 6378.137 km
    assert r.json()["error_m"] == pytest.approx(expected, rel=1e-3)
    assert r.json()["known_source"] == "request"
    exif = Image.Exif()
    exif[0x8825] = {
        1: "N",
        2: (float(int(lat)), 0.0, (lat - int(lat)) * 3600),
        3: "E",
        4: (float(int(lon)), 0.0, (lon - int(lon)) * 3600),
    }
    buf = io.BytesIO()
    Image.fromarray(drone_view(textured_tile(4), 1)).save(buf, "JPEG", quality=95, exif=exif)
    res = client.post("/locate", files={"file": ("q.jpg", buf.getvalue(), "image/jpeg")}).json()
    assert res["known_source"] == "exif" and res["error_m"] < 1.0


def test_locate_paths_reads_each_file_once(localizer, tmp_path, monkeypatch):
    """#11: locate decoded a file, then opened it again for its EXIF GPS."""
    lat, lon = tile_latlon(4)
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (float(int(lat)), 0.0, (lat - int(lat)) * 3600),
                    3: "E", 4: (float(int(lon)), 0.0, (lon - int(lon)) * 3600)}  # fmt: skip
    path = tmp_path / "q.jpg"
    Image.fromarray(drone_view(textured_tile(4), 1)).save(path, "JPEG", quality=95, exif=exif)
    opened: list[Path] = []
    read_bytes, image_open = Path.read_bytes, Image.open
    monkeypatch.setattr(Path, "read_bytes", lambda self: opened.append(self) or read_bytes(self))

    def spy(fp, *a, **k):
        if isinstance(fp, (str, Path)):
            opened.append(Path(fp))
        return image_open(fp, *a, **k)

    monkeypatch.setattr(Image, "open", spy)
    (res,) = localizer.locate_paths([path])
    assert res.known_source == "exif" and res.error_m < 1.0
    assert opened == [path]


@pytest.mark.parametrize(
    "name,data,ctype,status,message",
    [
        ("q.txt", b"hello", "text/plain", 415, "unsupported content type"),
        ("q.png", b"", "image/png", 400, "empty"),
        ("q.jpg", b"\xff\xd8\xff\xe0garbage" * 10, "image/jpeg", 422, "cannot decode"),
        ("q.png", b"\x89PNG" + bytes(300_000), "image/png", 413, "too large"),
    ],
)
def test_bad_uploads_get_4xx_with_a_message(client, name, data, ctype, status, message):
    r = client.post("/locate", files={"file": (name, data, ctype)})
    assert r.status_code == status and message in r.json()["detail"]
    assert client.get("/health").status_code == 200  # still serving


def test_huge_body_is_refused_before_parsing(client):
    r = client.post(
        "/locate",
        content=b"x" * 400_000,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_bad_parameters(client):
    assert client.post("/locate", files={}).status_code == 422  # no file
    r = client.post("/locate?top_k=0", files={"file": ("q.png", _query(1), "image/png")})
    assert r.status_code == 422


def test_concurrent_requests(client):
    def one(i):
        r = client.post(
            "/locate?top_k=1", files={"file": ("q.png", _query(i, seed=i), "image/png")}
        )
        return r.status_code, r.json()["matches"][0]["tile_id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(one, range(N_TILES)))
    assert all(code == 200 for code, _ in got)
    assert sum(tid == f"t{i:03d}" for i, (_, tid) in enumerate(got)) >= N_TILES - 1


def test_tile_thumbnails(client):
    r = client.get("/tiles/t002/image?size=48")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (48, 48)
    assert client.get("/tiles/nope/image").status_code == 404


def test_a_chunked_upload_stops_at_the_limit_while_streaming(localizer):
    """#14.13: without a Content-Length the whole body (1000 MB in the probe) was spooled to
    /tmp before the endpoint's 413. Count what the app actually reads."""
    import asyncio

    app = create_app(localizer, max_bytes=200_000)
    chunk, total = 64 * 1024, 40  # 2.6 MB offered in 64 KiB chunks, no content-length
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="q.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    consumed, sent = 0, []

    async def receive():
        nonlocal consumed
        if consumed >= total * chunk:
            return {"type": "http.request", "body": b"", "more_body": False}
        body = (head + bytes(chunk - len(head))) if consumed == 0 else bytes(chunk)
        consumed += len(body)
        return {"type": "http.request", "body": body, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/locate", "raw_path": b"/locate", "query_string": b"",
        "root_path": "", "server": ("test", 80), "client": ("test", 1),
        "headers": [(b"content-type", b"multipart/form-data; boundary=b"),
                    (b"transfer-encoding", b"chunked")],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 413 and b"too large" in body, body
    assert consumed <= 200_000 + 64 * 1024 + 2 * chunk  # stopped at the limit, not at 2.6 MB


def test_a_missing_tile_file_is_a_404_without_server_paths(tmp_path):
    """#14.11: the 404 message carried the server-side path of the tile file."""
    ckpt = make_checkpoint(tmp_path / "tiny.safetensors")
    tile_dir, csv_path = make_tiles(tmp_path, 2)
    enc = TorchEncoder(ckpt)
    out = store.main({}, tiles_from_folder(tile_dir, csv_path), enc, tmp_path / "index")
    client = TestClient(create_app(Localizer(store.TileIndex.load(out), enc)))
    (tile_dir / "t001.png").unlink()
    r = client.get("/tiles/t001/image")
    assert r.status_code == 404 and "not available" in r.json()["detail"]
    assert str(tmp_path) not in r.text and "t001.png" not in r.text


@pytest.mark.parametrize(
    "over,message",
    [({"max_bytes": -1}, "upload limit"), ({"max_bytes": 0}, "upload limit"),
     ({"default_top_k": 0}, "top-k"), ({"default_top_k": 51}, "top-k")],
)  # fmt: skip
def test_server_options_that_would_refuse_everything_are_errors(localizer, over, message):
    """#14.13: --max-mb -1 / --top-k 0 started a server that rejected every request."""
    from geolink.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        create_app(localizer, **over)


def test_serve_cli_validates_its_options_before_loading(tmp_path, capsys):
    from geolink.cli.main import main

    base = ["serve", "--index", str(tmp_path / "no-index")]
    assert main([*base, "--max-mb", "-1"]) == 2
    assert "--max-mb" in capsys.readouterr().err
    assert main([*base, "--top-k", "0"]) == 2
    assert "--top-k" in capsys.readouterr().err


def test_a_decompression_bomb_upload_is_a_422_before_decoding(client):
    """#14.12: a PNG declaring 20000² pixels was decoded (2.3 GB RSS, 200); 60000² gave a 500."""
    from test_data_loaders import png_declaring

    for side in (20000, 60000):
        r = client.post(
            "/locate", files={"file": ("b.png", png_declaring(side, side), "image/png")}
        )
        assert r.status_code == 422 and "over the limit" in r.json()["detail"]
    assert client.get("/health").status_code == 200


def test_locate_skips_and_reports_unreadable_images_when_asked(tmp_path, capsys):
    """#14.17: one bad image in a `locate` folder stopped the whole batch; an empty folder was
    called a "tile folder"."""
    from geolink.cli.main import main

    ckpt = make_checkpoint(tmp_path / "tiny.safetensors")
    tile_dir, csv_path = make_tiles(tmp_path, 3)
    store.main({}, tiles_from_folder(tile_dir, csv_path), TorchEncoder(ckpt), tmp_path / "index")
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "good.png").write_bytes(_query(1))
    (queries / "bad.png").write_bytes(b"\x89PNG broken")
    base = ["locate", "--index", str(tmp_path / "index"), str(queries), "--json"]
    assert main(base) == 2 and "bad.png" in capsys.readouterr().err  # default: stop, name it
    assert main([*base, "--skip-corrupt"]) == 1
    captured = capsys.readouterr()
    assert [Path(r["query"]).name for r in json.loads(captured.out)] == ["good.png"]
    assert "skipped" in captured.err and "bad.png" in captured.err
    (tmp_path / "empty").mkdir()
    assert main(["locate", "--index", str(tmp_path / "index"), str(tmp_path / "empty")]) == 2
    assert "query folder" in capsys.readouterr().err
