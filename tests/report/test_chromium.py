"""The report renders in a real browser: headless Chromium loads every embedded image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
# counts images and those that decoded; runs after the load event, before --dump-dom serialises the DOM
CHECK_SCRIPT = ('<script>window.addEventListener("load", function () {'
                "var im = document.images, ok = 0;"
                "for (var i = 0; i < im.length; i++) { if (im[i].complete && im[i].naturalWidth > 0) ok++; }"
                'var p = document.createElement("p"); p.id = "img-check"; p.textContent = im.length + "/" + ok;'
                "document.body.appendChild(p); });</script>")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's chromium, installed with apt-get when absent and we are root."""
    if not Path(CHROMIUM).exists() and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run("apt-get update && apt-get install -y chromium", shell=True, env=env, timeout=900,
                           capture_output=True, check=False)
        except subprocess.TimeoutExpired:
            pass
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent and could not be installed (needs root and apt access to Debian's "
                    "`chromium` package)")
    return CHROMIUM


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120)


def test_report_renders_with_all_images(chromium, built_run, tmp_path):
    page = built_run / "report" / "report.html"
    n_images = page.read_text().count("<img")
    assert n_images == len(list((built_run / "report" / "figures").glob("*.png"))) > 0

    check = tmp_path / "check.html"
    check.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    result = _chromium(chromium, tmp_path / "profile", "--dump-dom", check.as_uri())
    found = re.search(r'<p id="img-check">(\d+)/(\d+)</p>', result.stdout)
    assert found, f"chromium did not render the page: {result.stderr[-2000:]}"
    assert (int(found[1]), int(found[2])) == (n_images, n_images)

    shot = tmp_path / "report.png"
    _chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    image = mpimg.imread(shot)
    assert image.shape[:2] == (2400, 1280)
    grey = image[..., :3].mean(axis=2)
    # a rendered page: mostly light background with dark text and coloured banners, not one flat colour
    assert (grey > 0.9).mean() > 0.3 and (grey < 0.3).mean() > 0.005 and np.unique(grey.round(2)).size > 20
