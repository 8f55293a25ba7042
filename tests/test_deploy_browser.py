"""The upload page in headless Chromium: choose a drone image, press Locate, see the top-k tiles
with coordinates. Needs Debian's ``chromium`` + ``chromium-driver`` and ``pip install selenium``."""

import csv
import shutil
import socket
import threading
import time

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs headless Chromium: apt-get install chromium chromium-driver",
)


def _serve(root, rename=None):
    """Index 6 tiles (``rename``: {old stem: new stem}) and serve them on a free loopback port;
    yields (url, root)."""
    pytest.importorskip("selenium")
    uvicorn = pytest.importorskip("uvicorn")
    from geolink.deploy import store, tiles_from_folder
    from geolink.deploy.encoders import TorchEncoder
    from geolink.deploy.localizer import Localizer
    from geolink.deploy.serve.app import create_app
    from geolink.testing.deploy import make_checkpoint, make_tiles

    enc = TorchEncoder(make_checkpoint(root / "tiny.safetensors"))
    tile_dir, csv_path = make_tiles(root, 6)
    for old, new in (rename or {}).items():
        (tile_dir / f"{old}.png").rename(tile_dir / f"{new}.png")
        rows = list(csv.reader(csv_path.open()))
        with csv_path.open("w", newline="") as f:
            csv.writer(f).writerows([[new if c == old else c for c in r] for r in rows])
    out = store.main({}, tiles_from_folder(tile_dir, csv_path), enc, root / "index")
    app = create_app(Localizer(store.TileIndex.load(out), enc))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # loopback only, a free port
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", root
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from _serve(tmp_path_factory.mktemp("browser"))


# a tile file name that closes the alt attribute and adds event handlers (#14.11)
HOSTILE = 'x" onload="window.__xss=1" onerror="window.__xss=1" y="'


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    yield from _serve(tmp_path_factory.mktemp("hostile"), {"t002": HOSTILE})


def _chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def _locate_on_page(driver, url, tmp_path, tile: int, top_k: int):
    """Open the page, upload a drone view of tile ``tile`` with ``top_k``, return (wait, rows)."""
    import cv2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from geolink.testing.deploy import drone_view, textured_tile

    query = tmp_path / "drone.png"
    cv2.imwrite(str(query), cv2.cvtColor(drone_view(textured_tile(tile), 0), cv2.COLOR_RGB2BGR))
    driver.get(url)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: "tiles" in d.find_element(By.ID, "info").text)
    driver.find_element(By.ID, "topk").clear()
    driver.find_element(By.ID, "topk").send_keys(str(top_k))
    driver.find_element(By.ID, "file").send_keys(str(query))
    driver.find_element(By.ID, "submit").click()
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#results tr.match")))
    return wait, driver.find_elements(By.CSS_SELECTOR, "#results tr.match")


def test_a_tile_id_is_shown_as_text_never_run_as_markup(hostile_server, tmp_path):
    """#14.11: the tile id went unescaped into ``alt="tile ${id}"`` through innerHTML."""
    from selenium.webdriver.common.by import By

    url, _ = hostile_server
    driver = _chrome()
    try:
        # every tile, the hostile one too
        wait, rows = _locate_on_page(driver, url, tmp_path, tile=2, top_k=6)
        ids = [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows]
        assert HOSTILE in ids
        wait.until(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('#results img')].every(i => i.complete)"
            )
        )
        assert driver.execute_script("return window.__xss === undefined")
        handlers = driver.execute_script(
            "return [...document.querySelectorAll('#results img')]"
            ".filter(i => i.hasAttribute('onload') || i.hasAttribute('onerror')).length"
        )
        assert handlers == 0
    finally:
        driver.quit()


def test_upload_page_shows_top_k_tiles(server, tmp_path):
    from selenium.webdriver.common.by import By

    from geolink.testing.deploy import tile_latlon

    url, _ = server
    driver = _chrome()
    try:
        wait, rows = _locate_on_page(driver, url, tmp_path, tile=3, top_k=3)
        assert driver.find_element(By.ID, "info").text.startswith("6 tiles")
        assert len(rows) == 3
        first = rows[0].find_elements(By.TAG_NAME, "td")
        assert first[2].text == "t003"
        assert (
            first[4].text == f"{tile_latlon(3)[0]:.6f}"
            and first[5].text == f"{tile_latlon(3)[1]:.6f}"
        )
        assert "estimate:" in driver.find_element(By.ID, "best").text
        # The tile thumbnail was fetched and decoded by the browser.
        wait.until(
            lambda d: d.execute_script(
                "const i = document.querySelector('#results tr.match img'); return i.complete && i.naturalWidth > 0;"
            )
        )
        # A wrong file type shows the service's message, not a crash.
        bad = tmp_path / "notes.txt"
        bad.write_text("not an image")
        driver.execute_script("document.getElementById('file').removeAttribute('accept')")
        driver.find_element(By.ID, "file").send_keys(str(bad))
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: "error 415" in d.find_element(By.ID, "status").text)
    finally:
        driver.quit()
