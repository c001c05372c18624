"""A downstream collector (a collection partner) in another language.

Subscribes with nats-py to its public hand-over subject, validates every hand-over against the
published JSON Schema (jsonschema), then fetches one letter PDF over gRPC (grpcio, stubs generated
from proto/ into a temporary directory) with its partner key, and checks that the same key cannot
read a case that was not handed to it. Prints one JSON object with what it saw.

usage: collector.py NATS_URL SUBJECT COUNT GRPC_ADDR PARTNER_KEY OTHER_CASE_ID
"""
import asyncio, hashlib, json, os, shutil, subprocess, sys, tempfile

import jsonschema
import nats

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))


def stubs():
    out = tempfile.mkdtemp(prefix="mwstubs")
    proto = os.path.join(ROOT, "proto")
    files = [os.path.join(proto, "mahnwerk/v1", f) for f in ("common.proto", "collection.proto")]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + proto, "--python_out=" + out,
                    "--grpc_python_out=" + out, *files], check=True)
    sys.path.insert(0, out)
    from mahnwerk.v1 import collection_pb2, collection_pb2_grpc  # noqa: E402
    shutil.rmtree(out, ignore_errors=True)  # the modules are loaded
    return collection_pb2, collection_pb2_grpc


async def receive(url, subject, count):
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.subscribe(subject, ordered_consumer=True)
    got = []
    for _ in range(count):
        msg = await sub.next_msg(timeout=30)
        got.append({"subject": msg.subject, "headers": dict(msg.headers or {}),
                    "envelope": json.loads(msg.data)})
    await nc.close()
    return got


def main():
    url, subject, count, addr, key, other_case = sys.argv[1:7]
    with open(os.path.join(ROOT, "docs/schemas/case.handed_over.v1.json")) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    got = asyncio.run(receive(url, subject, int(count)))
    report = {"received": [], "document": None, "other_case": None}
    for m in got:
        env = m["envelope"]
        errors = sorted(e.message for e in validator.iter_errors(env["payload"]))
        report["received"].append({"subject": m["subject"], "msg_id": m["headers"].get("Nats-Msg-Id"),
                                   "type": env["type"], "case_id": env["payload"].get("case_id"),
                                   "valid": not errors, "errors": errors[:5],
                                   "head": env["payload"]["hash_chain"]["head"] if not errors else None})
    import grpc
    pb, rpc = stubs()
    stub = rpc.CollectionServiceStub(grpc.insecure_channel(addr))
    auth = [("authorization", "Bearer " + key)]
    payload = got[0]["envelope"]["payload"]
    letter = next((l for l in payload["letters"] if l["document"]), None)
    if letter:
        fetch = letter["document"]["fetch"]
        doc = stub.GetPartnerDocument(pb.GetPartnerDocumentRequest(case_id=fetch["case_id"], sha256=fetch["sha256"]),
                               metadata=auth)
        report["document"] = {"sha256": fetch["sha256"], "content_type": doc.content_type,
                              "bytes": len(doc.content),
                              "matches": hashlib.sha256(doc.content).hexdigest() == fetch["sha256"]}
    try:
        stub.GetHandedOverCase(pb.GetHandedOverCaseRequest(case_id=other_case), metadata=auth)
        report["other_case"] = "readable"
    except grpc.RpcError as e:
        report["other_case"] = e.code().name
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
