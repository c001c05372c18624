"""Drive the creditor console in Debian's Chromium with Playwright, as a creditor would.

Usage: console_browser.py BASE_URL API_KEY OUT_DIR REMINDER_INVOICE PAYMENT_INVOICE

Sign in, find the overdue (reminded) invoice from the overview, open its case, open the
reminder PDF, pause and resume dunning, match the payment waiting in the review queue to PAYMENT_INVOICE.
Screenshots of each page go to OUT_DIR. Prints one JSON line with what it saw; exits non-zero
(with the reason on stderr) when a step fails.
"""

import json
import pathlib
import sys
import time

from playwright.sync_api import expect, sync_playwright


def main() -> None:
    base, key, out, reminder_invoice, payment_invoice = sys.argv[1:6]
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
        shot = lambda name: page.screenshot(path=str(out_dir / f"{name}.png"), full_page=True)

        # Not signed in: the sign-in page. A wrong key is refused with a message.
        page.goto(base + "/")
        expect(page).to_have_url(base + "/login")
        page.get_by_label("API-Schlüssel").fill("mwk_wrong_key")
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("alert")).to_contain_text("ungültig")
        page.get_by_label("API-Schlüssel").fill(key)
        shot("01-login")
        page.get_by_role("button", name="Anmelden").click()
        expect(page).to_have_url(base + "/")
        expect(page.get_by_role("heading", name="Übersicht")).to_be_visible()
        # The session cookie is not readable by scripts.
        cookies = {c["name"]: c for c in context.cookies()}
        seen["session_cookie"] = {
            "http_only": cookies["mw_session"]["httpOnly"],
            "same_site": cookies["mw_session"]["sameSite"],
        }
        # The overview links its figures; the reminder step is a stage row.
        review_figure = page.locator("#review-queue .v").inner_text()
        seen["overview_review_queue"] = review_figure.strip()
        shot("02-overview")

        # Find the overdue invoice from the overview: the reminder stage's row.
        page.locator("a[data-stage='dunning']").first.click()
        expect(page.locator("#invoices")).to_contain_text(reminder_invoice)
        shot("03-invoices")
        page.get_by_role("link", name=reminder_invoice, exact=True).click()
        expect(page.get_by_role("heading", name=f"Rechnung {reminder_invoice}")).to_be_visible()
        timeline = page.locator("ol.timeline")
        expect(timeline.locator("li[data-type='letter.dispatched.v1']")).to_have_count(1)
        seen["next_action"] = page.locator("#next").locator("xpath=following-sibling::*[1]").inner_text()
        shot("04-case")

        # Open the reminder PDF (a new tab): the bytes are a PDF, served inline.
        link = timeline.locator("li[data-type='letter.dispatched.v1'] a.pdf")
        href = link.get_attribute("href")
        resp = page.request.get(base + href)
        body = resp.body()
        seen["pdf"] = {
            "status": resp.status,
            "content_type": resp.headers.get("content-type"),
            "disposition": resp.headers.get("content-disposition"),
            "starts": body[:5].decode("latin-1"),
            "bytes": len(body),
        }
        (out_dir / "reminder.pdf").write_bytes(body)
        # Clicking opens it in a new tab (headless Chromium may hand a PDF to its downloader
        # instead of the viewer: the tab is what is checked, the bytes were checked above).
        try:
            with context.expect_page(timeout=10000) as new_tab:
                link.click()
            pdf_page = new_tab.value
            pdf_page.wait_for_load_state(timeout=10000)
            seen["pdf_tab_url"] = pdf_page.url
            pdf_page.close()
        except Exception as e:  # noqa: BLE001 - recorded for the Rust side to show
            seen["pdf_tab_error"] = str(e)[:200]

        # Pause dunning: the page shows the resulting event on the timeline.
        pause = page.locator("form[data-action='pause']")
        pause.get_by_label("Grund").fill("Kunde hat Rückruf erbeten")
        pause.get_by_role("button", name="Mahnung pausieren").click()
        expect(timeline.locator("li[data-type='dunning.paused.v1']")).to_have_count(1)
        seen["paused_actor"] = timeline.locator("li[data-type='dunning.paused.v1'] .actor").inner_text()
        shot("05-case-paused")

        # Resume: the case page offers it once the console's projection has the hold.
        resume = page.get_by_role("button", name="Mahnung fortsetzen")
        deadline = time.time() + 20
        while resume.count() == 0:
            if time.time() > deadline:
                raise SystemExit("the case page never offered to resume")
            time.sleep(0.3)
            page.reload()
        resume.click()
        expect(timeline.locator("li[data-type='dunning.resumed.v1']")).to_have_count(1)
        seen["resumed_actor"] = timeline.locator("li[data-type='dunning.resumed.v1'] .actor").inner_text()

        # The payment in the review queue: match it to the other invoice by its number.
        page.get_by_role("link", name="Zahlungen prüfen").first.click()
        entry = page.locator("article.entry").first
        expect(entry).to_be_visible()
        seen["review_entry"] = entry.get_attribute("data-entry")
        shot("06-review")
        entry.get_by_label("oder Rechnungsnummer").fill(payment_invoice)
        entry.get_by_role("button", name="Zuordnen").click()
        # The queue is the matching service's projection: it follows the log within moments.
        deadline = time.time() + 20
        while page.locator(f"article.entry[data-entry='{seen['review_entry']}']").count() > 0:
            if time.time() > deadline:
                raise SystemExit("the matched entry stayed in the review queue")
            time.sleep(0.3)
            page.reload()
        shot("07-review-done")

        # Accessibility basics: every visible form field has a label; keyboard reaches the skip link.
        unlabeled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
                .filter(e => !e.closest('label') && !(e.id && document.querySelector(`label[for="${e.id}"]`)))
                .length"""
        )
        seen["unlabeled_fields_review"] = unlabeled
        page.keyboard.press("Tab")
        seen["first_tab"] = page.evaluate("() => document.activeElement.className")

        # English, and a phone-width overview.
        page.goto(base + "/")
        page.get_by_role("link", name="EN", exact=True).click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        page.set_viewport_size({"width": 390, "height": 844})
        shot("08-overview-phone-en")
        seen["phone_scroll_width"] = page.evaluate("() => document.documentElement.scrollWidth")
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
