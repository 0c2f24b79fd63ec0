"""Screenshot a report with headless Chromium (Debian's ``chromium`` package): ``make report-screenshot``.

``python -m shared.report.screenshot REPORT.html OUT.png`` opens the file in a throw-away profile with
networking features off, takes a tall screenshot and trims the empty background below the page, so the
PNG shows the whole report. Without Chromium it prints how to install it and exits 0 (skipped).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")
INSTALL_HINT = "sudo apt-get update && sudo apt-get install -y chromium"


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def trim_bottom(png: Path, margin: int = 24) -> tuple[int, int]:
    """Cut the uniform background below the last row of content; returns the new size."""
    from PIL import Image, ImageChops

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    bg = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
    box = ImageChops.difference(rgb, bg).getbbox()
    if box is not None and box[3] + margin < rgb.height:
        rgb = rgb.crop((0, 0, rgb.width, box[3] + margin))
        rgb.save(png)
    return rgb.size


def screenshot(html: Path, png: Path, *, width: int = 1400, height: int = 30000, chromium: str | None = None,
               timeout: float = 120) -> tuple[int, int]:
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sigmabatch-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png.resolve()}", html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png.exists():
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return trim_bottom(png)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shared.report.screenshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("html", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=30000, help="window height before trimming (default 30000)")
    args = p.parse_args(argv)
    if not args.html.exists():
        print(f"error: {args.html} does not exist", file=sys.stderr)
        return 2
    chromium = find_chromium()
    if chromium is None:
        print(f"skipped: Chromium is not installed. Install it with:\n  {INSTALL_HINT}")
        return 0
    size = screenshot(args.html, args.png, width=args.width, height=args.height, chromium=chromium)
    print(f"{args.png} ({size[0]}x{size[1]} px)")
    if size[1] >= args.height:
        print(f"warning: the page may be taller than {args.height} px and cut; raise --height", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
