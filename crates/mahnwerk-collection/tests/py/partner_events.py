"""A downstream collector's view of everything published for one partner.

Subscribes with nats-py to `<ns>.collection.{tenant}.{token}.>` (every event published for the
partner: hand-over, reports, recall, costs waived, closed), takes COUNT messages from the start,
and validates each payload against the JSON Schema published for its type in docs/schemas/
(`jsonschema`, Draft 2020-12, formats checked). Prints one JSON object with what it saw.

usage: partner_events.py NATS_URL SUBJECT COUNT
"""
import asyncio, json, os, sys

import jsonschema
import nats

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))


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
    url, subject, count = sys.argv[1:4]
    validators = {}
    report = {"received": []}
    for m in asyncio.run(receive(url, subject, int(count))):
        env = m["envelope"]
        kind = env["type"]
        path = os.path.join(ROOT, "docs/schemas", kind + ".json")
        if kind not in validators:
            if not os.path.exists(path):
                validators[kind] = None
            else:
                with open(path) as f:
                    schema = json.load(f)
                jsonschema.Draft202012Validator.check_schema(schema)
                validators[kind] = jsonschema.Draft202012Validator(
                    schema, format_checker=jsonschema.FormatChecker())
        v = validators[kind]
        errors = ["no schema for " + kind] if v is None else sorted(
            e.message for e in v.iter_errors(env["payload"]))
        report["received"].append({
            "subject": m["subject"], "msg_id": m["headers"].get("Nats-Msg-Id"),
            "header_type": m["headers"].get("Mahnwerk-Event-Type"), "type": kind,
            "event_id": env.get("event_id"), "report": (env["payload"].get("report") or {}).get("kind"),
            "valid": not errors, "errors": errors[:5]})
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
