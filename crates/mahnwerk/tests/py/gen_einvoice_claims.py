"""Randomised e-invoices for the import test (issue 15), produced by the independent producer
`drafthorse` (CII) and, for some, embedded in a PDF/A-3 by `factur-x`.

Usage: gen_einvoice_claims.py SEED COUNT OUTDIR

Writes OUTDIR/doc_N.xml or .pdf in import order plus OUTDIR/manifest.json with exactly the
values each document was produced from and what importing it must do:
- 380 invoices: business buyers with a VAT id, business buyers with only a Leitweg-ID
  (BT-10, valid check digits) and no VAT id, consumers; some with prepaid amounts (BT-113);
  some with Skonto terms "P % Skonto innerhalb D Tagen, N Tage netto" and no BT-9;
- 381 credit notes crediting an earlier invoice (BT-25) by part of its amount due;
- 384 corrected invoices replacing an earlier invoice (BT-25).
Amounts are computed here with Decimal; the discount is the percentage of the amount due,
rounded half up to the cent.
"""

import io
import json
import random
import sys
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from drafthorse.models.accounting import ApplicableTradeTax
from drafthorse.models.document import Document
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.party import TaxRegistration
from drafthorse.models.tradelines import LineItem

NAMES = ["Jürgen Weiß", "Änne Schäfer", "Søren Krämer", "Zoë Strauß", "Gülten Öztürk"]
FIRMS = ["Bäckerei Groß GmbH", "Straßenbau Müller KG", "Stadt Köln, Amt 12", "Kühltechnik AG"]
IBANS = ["DE89370400440532013000", "DE02120300000000202051", "DE02500105170137075030"]


def leitweg(rng):
    coarse = str(rng.randint(10**7, 10**8 - 1))
    fine = str(rng.randint(10**4, 10**5 - 1))
    digits = "".join(str(int(c, 36)) for c in coarse + fine)
    check = 98 - (int(digits) * 100) % 97
    return f"{coarse}-{fine}-{check:02d}"


def cents(d):
    return int((d * 100).to_integral_value())


def document(rng, n, type_code, number, issue, ref=None):
    lines = [(i + 1, rng.randint(1, 9), Decimal(rng.randint(100, 200_000)) / 100)
             for i in range(rng.randint(1, 3))]
    net = sum(Decimal(q) * p for (_, q, p) in lines)
    rate = rng.choice([Decimal("19.00"), Decimal("7.00")])
    tax = (net * rate / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    gross = net + tax
    prepaid = Decimal("0.00")
    if type_code == "380" and (n in (0, 2) or rng.random() < 0.35):
        prepaid = Decimal(rng.randint(1, cents(gross) - 1)) / 100
    payable = gross - prepaid
    # The first three cover each kind of buyer; the rest are random.
    kind = ["leitweg", "vat", "consumer"][n] if n < 3 else rng.choice(["vat", "leitweg", "consumer"])
    buyer = rng.choice(FIRMS) if kind != "consumer" else rng.choice(NAMES)
    vat_id = f"DE{rng.randint(100000000, 999999999)}" if kind == "vat" else None
    buyer_ref = leitweg(rng) if kind == "leitweg" else None
    iban = rng.choice(IBANS)
    skonto = None
    due = None
    terms = None
    if type_code != "381":
        if n == 0 or rng.random() < 0.5:
            days = rng.randint(5, 14)
            net_days = rng.randint(20, 60)
            percent = rng.choice(["2", "3", "1,5"])
            terms = f"{percent} % Skonto innerhalb {days} Tagen, {net_days} Tage netto"
            due = issue + timedelta(days=net_days)
            p = Decimal(percent.replace(",", "."))
            discount = (payable * p / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            skonto = {"until": (issue + timedelta(days=days)).isoformat(),
                      "percent": f"{p:.2f}", "discount": cents(discount)}
            due_rule = "payment_terms_days"
        else:
            due = issue + timedelta(days=rng.randint(7, 45))
            due_rule = "due_date"

    doc = Document()
    doc.context.guideline_parameter.id = "urn:cen.eu:en16931:2017"
    doc.header.id = number
    doc.header.type_code = type_code
    doc.header.issue_date_time = issue
    t = doc.trade
    t.agreement.seller.name = "Mahnwerk Testlieferant GmbH"
    t.agreement.seller.address.country_id = "DE"
    t.agreement.seller.address.postcode = "10115"
    t.agreement.seller.address.city_name = "Berlin"
    t.agreement.seller.address.line_one = "Invalidenstraße 1"
    t.agreement.seller.tax_registrations.add(TaxRegistration(id=("VA", "DE123456789")))
    if buyer_ref:
        t.agreement.buyer_reference = buyer_ref
    b = t.agreement.buyer
    b.name = buyer
    b.address.line_one = f"Hauptstraße {rng.randint(1, 99)}"
    b.address.postcode = "50667"
    b.address.city_name = "Köln"
    b.address.country_id = "DE"
    if vat_id:
        b.tax_registrations.add(TaxRegistration(id=("VA", vat_id)))
    for (lid, qty, price) in lines:
        li = LineItem()
        li.document.line_id = str(lid)
        li.product.name = f"Leistung {lid}"
        li.agreement.net.amount = price
        li.agreement.net.basis_quantity = (Decimal("1.0000"), "C62")
        li.delivery.billed_quantity = (Decimal(qty), "C62")
        li.settlement.trade_tax.type_code = "VAT"
        li.settlement.trade_tax.category_code = "S"
        li.settlement.trade_tax.rate_applicable_percent = rate
        li.settlement.monetary_summation.total_amount = Decimal(qty) * price
        t.items.add(li)
    s = t.settlement
    s.currency_code = "EUR"
    s.payment_reference = number
    pm = PaymentMeans()
    pm.type_code = "58"
    pm.payee_account.iban = iban
    s.payment_means.add(pm)
    if terms or due:
        pt = PaymentTerms()
        if terms:
            pt.description = terms
        else:
            pt.due = due
        s.terms.add(pt)
    if ref:
        s.invoice_referenced_document.issuer_assigned_id = ref
    tt = ApplicableTradeTax()
    tt.calculated_amount = tax
    tt.basis_amount = net
    tt.type_code = "VAT"
    tt.category_code = "S"
    tt.rate_applicable_percent = rate
    s.trade_tax.add(tt)
    ms = s.monetary_summation
    ms.line_total = net
    ms.charge_total = Decimal("0.00")
    ms.allowance_total = Decimal("0.00")
    ms.tax_basis_total = net
    ms.tax_total = (tax, "EUR")
    ms.grand_total = gross
    ms.prepaid_total = prepaid
    ms.due_amount = payable
    xml = doc.serialize(schema="FACTUR-X_EXTENDED")
    expected = {
        "number": number, "type_code": type_code, "issue_date": issue.isoformat(),
        "net": cents(net), "tax": cents(tax), "gross": cents(gross), "prepaid": cents(prepaid),
        "amount_due": cents(payable), "buyer": buyer,
        "kind": "consumer" if kind == "consumer" else "business",
        "kind_rule": {"vat": "vat_id", "leitweg": "routing_id", "consumer": "tenant_default"}[kind],
        "iban": iban, "references": ref,
    }
    if type_code != "381":
        expected.update({"due_date": due.isoformat(), "due_rule": due_rule,
                         "cash_discounts": [skonto] if skonto else []})
    return xml, expected


def write(out, n, xml, pdf):
    if not pdf:
        p = out / f"doc_{n:03d}.xml"
        p.write_bytes(xml)
        return p
    from facturx import generate_from_binary
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    w.write(buf)
    p = out / f"doc_{n:03d}.pdf"
    p.write_bytes(generate_from_binary(buf.getvalue(), xml, flavor="factur-x",
                                       level="extended", check_xsd=True))
    return p


def main():
    seed, count, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    docs = []
    invoices = []  # (number, amount_due, issue) of 380s not yet credited or replaced
    for n in range(count):
        issue = date(2026, 1, 1) + timedelta(days=rng.randrange(0, 300))
        number = f"EI-{seed % 10000}-{n:03d}"
        type_code = "380"
        ref = None
        if n in (3, 4) or (invoices and n > 4 and rng.random() < 0.4):
            type_code = {3: "381", 4: "384"}.get(n) or rng.choice(["381", "384"])
            ref, _, ref_issue = invoices.pop(rng.randrange(len(invoices)))
            issue = max(issue, ref_issue)
        xml, exp = document(rng, n, type_code, number, issue, ref)
        if type_code == "381":
            # The credit must not exceed the invoice's amount due: produce again until it fits.
            target = next(d for d in docs if d["number"] == ref)
            while exp["amount_due"] >= target["amount_due"]:
                xml, exp = document(rng, n, type_code, number, issue, ref)
            target["credited"] = exp["amount_due"]
        if type_code == "384":
            next(d for d in docs if d["number"] == ref)["replaced_by"] = number
        if type_code in ("380", "384"):
            invoices.append((number, exp["amount_due"], issue))
        exp["file"] = str(write(out, n, xml, pdf=rng.random() < 0.3))
        docs.append(exp)
    (out / "manifest.json").write_text(json.dumps({"seed": seed, "documents": docs},
                                                  ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
