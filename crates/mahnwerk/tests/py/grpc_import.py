"""A stock grpcio client streaming invoices into ImportInvoices as fast as it can.

Usage: grpc_import.py ADDR TOKEN N OTHER_TENANT_INDEX NUL_INDEX
Generates the stubs from proto/ with grpcio-tools into a temporary directory, streams N
invoices (default channel options: 4 MiB receive limit), item OTHER_TENANT_INDEX naming the
tenant "other", item NUL_INDEX with a NUL character in the debtor name, and prints the
response as one JSON line: {"code": ..., "accepted": ..., "rejected": ..., "results": [...]}.
"""

import json
import os
import sys
import tempfile

from grpc_tools import protoc
import grpc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..")
PROTO = os.path.join(ROOT, "proto")


def stubs(out):
    files = [os.path.join("mahnwerk", "v1", f) for f in ("common.proto", "invoice.proto")]
    args = ["protoc", f"-I{PROTO}",
            f"--python_out={out}", f"--grpc_python_out={out}"] + files
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args.insert(2, f"-I{include}")
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, out)


def main():
    addr, token, n, other, nul = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    with tempfile.TemporaryDirectory() as out:
        stubs(out)
        from mahnwerk.v1 import common_pb2, invoice_pb2, invoice_pb2_grpc

        def items():
            for i in range(n):
                inv = invoice_pb2.Invoice(
                    invoice_number=f"PY-{i:07d}",
                    issue_date="2026-03-01",
                    due_date="2026-03-15",
                    currency="EUR",
                    net_amount=10000,
                    tax_amount=1900,
                    gross_amount=11900,
                    debtor=common_pb2.Debtor(
                        name="Erika Mustermann\x00" if i == nul else "Erika Mustermann",
                        kind=common_pb2.DEBTOR_KIND_CONSUMER,
                        address=common_pb2.PostalAddress(
                            street=["Heidestraße 17"], postal_code="51147", city="Köln", country="DE"
                        ),
                        language="de",
                        customer_number=f"K-{i}",
                    ),
                    creditor_account=common_pb2.BankAccount(iban="DE89370400440532013000"),
                )
                yield invoice_pb2.ImportInvoicesRequest(
                    tenant="other" if i == other else "", invoice=inv
                )

        with grpc.insecure_channel(addr) as channel:
            stub = invoice_pb2_grpc.InvoiceServiceStub(channel)
            try:
                res = stub.ImportInvoices(
                    items(), metadata=[("authorization", f"Bearer {token}")], timeout=max(600, n // 100)
                )
            except grpc.RpcError as e:
                print(json.dumps({"code": e.code().name, "details": e.details()}))
                return
            print(json.dumps({
                "code": "OK",
                "accepted": res.accepted,
                "rejected": res.rejected,
                "results": [
                    {
                        "index": r.index,
                        "invoice_number": r.invoice_number,
                        "error_code": r.error_code,
                        "error_message": r.error_message,
                        "fields": [v.field for v in r.violations],
                    }
                    for r in res.results
                    if r.error_code
                ],
            }))


if __name__ == "__main__":
    main()
