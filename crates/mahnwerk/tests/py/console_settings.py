"""Drive the console's policy, letterhead and debtors pages in Debian's Chromium (Playwright).

Usage: console_settings.py BASE_URL API_KEY OUT_DIR PHASE [ARG]

PHASE "policy": open the policy page, check the default policy's steps are shown, edit the
draft (approval by the creditor, a higher fee on step 2), preview it over the open cases, save it.
PHASE "letterhead" (ARG: the company name): upload a PNG logo with a new company name, save,
open each step's letter preview; the step-1 PDF's text is read back with pdfplumber.
PHASE "offers" (ARG: the invoice number offered): approve the offer on the debtors page.
Screenshots go to OUT_DIR. Prints one JSON line with what it saw; exits non-zero when a step fails.
"""

import io
import json
import pathlib
import struct
import sys
import time
import zlib

from playwright.sync_api import expect, sync_playwright


def tiny_png() -> bytes:
    """A valid 2x2 PNG (dark blue), written by hand."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x0b\x2e\x4f" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def sign_in(page, base, key):
    page.goto(base + "/login")
    page.get_by_label("API-Schlüssel").fill(key)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Übersicht")).to_be_visible()


def policy(page, base, out_dir, seen):
    page.get_by_role("link", name="Mahnregeln").first.click()
    expect(page.get_by_role("heading", name="Mahnregeln", exact=True)).to_be_visible()
    expect(page.locator("#policies")).to_contain_text("default-consumer")
    page.locator("#policies a", has_text="default-consumer").first.click()
    seen["steps_shown"] = page.locator("#steps tbody tr").count()
    seen["first_step_title"] = page.locator("#steps tbody tr").first.locator("td").nth(1).inner_text()
    page.screenshot(path=str(out_dir / "09-policy.png"), full_page=True)
    draft = json.loads(page.get_by_label("Regel als JSON").input_value())
    draft["approval"] = "creditor"
    draft["steps"][1]["fee"]["minor"] = 300
    text = json.dumps(draft, indent=2, ensure_ascii=False)
    page.get_by_label("Regel als JSON").fill(text)
    seen["draft"] = text
    seen["until"] = page.get_by_label("Vorschau bis").input_value()
    page.get_by_role("button", name="Vorschau über die offenen Fälle").click()
    expect(page.locator("#preview")).to_be_visible()
    seen["preview"] = {
        "cases": page.locator("#preview-cases").inner_text(),
        "steps": page.locator("#preview-steps").inner_text(),
        "escalations": page.locator("#preview-escalations").inner_text(),
        "fees": page.locator("#preview-fees").inner_text(),
        "lines": page.locator("#preview-lines tbody tr").count(),
    }
    page.screenshot(path=str(out_dir / "10-policy-preview.png"), full_page=True)
    # A broken draft is refused with the field named, on the page.
    page.get_by_label("Regel als JSON").fill(text.replace('"template_id": "reminder"', '"template_id": "no-such-template"', 1))
    page.get_by_role("button", name="Vorschau über die offenen Fälle").click()
    expect(page.get_by_role("alert")).to_be_visible()
    seen["bad_draft_error"] = page.get_by_role("alert").inner_text()
    page.get_by_label("Regel als JSON").fill(text)
    page.get_by_role("button", name="Als neue Version speichern").click()
    expect(page.locator("#policy-saved")).to_be_visible()
    seen["saved"] = page.locator("#policy-saved").inner_text()
    seen["selected"] = page.locator("#selected-h").inner_text()
    seen["after_last"] = page.locator("#after-last").inner_text()


def letterhead(page, base, out_dir, seen, company):
    page.get_by_role("link", name="Briefkopf").first.click()
    expect(page.get_by_role("heading", name="Briefkopf und Vorlagen")).to_be_visible()
    page.get_by_label("Firmenname").fill(company)
    page.get_by_label("Absenderzeile").fill(f"{company} · Am Kai 1 · 20457 Hamburg")
    page.get_by_label("Logo (PNG oder SVG)").set_input_files(
        files=[{"name": "logo.png", "mimeType": "image/png", "buffer": tiny_png()}]
    )
    page.get_by_label("Logohöhe in mm").fill("12")
    page.get_by_role("button", name="Briefkopf speichern").click()
    expect(page.locator("#letterhead-saved")).to_be_visible()
    seen["logo_state"] = page.locator("#logo-state").inner_text()
    seen["name_after"] = page.get_by_label("Firmenname").input_value()
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(e => !e.closest('label') && !(e.id && document.querySelector(`label[for="${e.id}"]`)))
            .length"""
    )
    seen["unlabeled_fields_letterhead"] = unlabeled
    page.screenshot(path=str(out_dir / "11-letterhead.png"), full_page=True)
    links = page.locator("#previews a.pdf")
    seen["preview_links"] = links.count()
    href = links.first.get_attribute("href")
    resp = page.request.get(base + href)
    body = resp.body()
    seen["preview_pdf"] = {
        "status": resp.status,
        "content_type": resp.headers.get("content-type"),
        "starts": body[:5].decode("latin-1"),
    }
    (out_dir / "preview-step-1.pdf").write_bytes(body)
    import pdfplumber
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        seen["preview_text"] = "\n".join((p.extract_text() or "") for p in pdf.pages)
        seen["preview_images"] = sum(len(p.images) for p in pdf.pages)


def offers(page, base, out_dir, seen, number):
    page.get_by_role("link", name="Kunden").first.click()
    row = page.locator("#offer-list tr", has_text=number)
    expect(row).to_have_count(1)
    seen["offer_case"] = row.get_attribute("data-case")
    page.screenshot(path=str(out_dir / "12-debtors-offers.png"), full_page=True)
    row.get_by_role("button", name="Mahnwerk mahnt").click()
    # The list is the console's projection: it follows the log within moments.
    deadline = time.time() + 20
    while page.locator("#offer-list tr", has_text=number).count() > 0:
        if time.time() > deadline:
            raise SystemExit("the approved offer stayed on the debtors page")
        time.sleep(0.3)
        page.reload()


def main() -> None:
    base, key, out, phase = sys.argv[1:5]
    arg = sys.argv[5] if len(sys.argv) > 5 else ""
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE")
        page = context.new_page()
        sign_in(page, base, key)
        {"policy": lambda: policy(page, base, out_dir, seen),
         "letterhead": lambda: letterhead(page, base, out_dir, seen, arg),
         "offers": lambda: offers(page, base, out_dir, seen, arg)}[phase]()
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
