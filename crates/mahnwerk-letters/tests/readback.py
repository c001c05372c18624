"""Read a PDF back with independent readers from PyPI and print JSON for the Rust tests.

Usage: readback.py FILE.pdf [DPI]

Prints {"pages": [{"width", "height", "words": [{"text","x0","x1","top","bottom"}], "text",
"lines": [{"x0","x1","top"}]}],
"qr": [payloads decoded on page 1], "xmp": "<XMP metadata>"}.
- pdfplumber gives word positions (points, origin top-left),
- pypdf gives the text and the XMP metadata,
- pdftoppm (poppler-utils) renders page 1 and zxing-cpp decodes the QR codes on it.
"""

import json
import subprocess
import sys
import tempfile

import pdfplumber
import pypdf
import zxingcpp
from PIL import Image


def main() -> None:
    path = sys.argv[1]
    dpi = sys.argv[2] if len(sys.argv) > 2 else "200"
    out = {"pages": [], "qr": [], "xmp": ""}
    reader = pypdf.PdfReader(path)
    with pdfplumber.open(path) as pdf:
        for plumber_page, pypdf_page in zip(pdf.pages, reader.pages):
            words = plumber_page.extract_words(keep_blank_chars=False, use_text_flow=True)
            out["pages"].append(
                {
                    "width": float(plumber_page.width),
                    "height": float(plumber_page.height),
                    "words": [
                        {
                            "text": w["text"],
                            "x0": float(w["x0"]),
                            "x1": float(w["x1"]),
                            "top": float(w["top"]),
                            "bottom": float(w["bottom"]),
                        }
                        for w in words
                    ],
                    "text": pypdf_page.extract_text() or "",
                    "lines": [
                        {
                            "x0": float(ln["x0"]),
                            "x1": float(ln["x1"]),
                            "top": float(ln["top"]),
                        }
                        for ln in plumber_page.lines
                    ],
                }
            )
    meta = reader.xmp_metadata
    if meta is not None:
        out["xmp"] = meta.stream.get_data().decode("utf-8", "replace")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["pdftoppm", "-r", dpi, "-f", "1", "-l", "1", "-png", path, f"{tmp}/page"],
            check=True,
        )
        import glob

        for png in sorted(glob.glob(f"{tmp}/page*.png")):
            for result in zxingcpp.read_barcodes(Image.open(png)):
                out["qr"].append(
                    {"format": str(result.format), "text": result.text, "ec_level": result.ec_level}
                )
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
