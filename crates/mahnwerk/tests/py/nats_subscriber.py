"""A downstream collector in another language: subscribe to Mahnwerk's public event subjects
with nats-py (JetStream), print each message as one JSON line: subject, headers, envelope."""
import asyncio, json, sys

import nats


async def main(url: str, subject: str, expected: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.subscribe(subject, ordered_consumer=True)
    for _ in range(expected):
        msg = await sub.next_msg(timeout=30)
        print(json.dumps({"subject": msg.subject, "headers": dict(msg.headers or {}),
                          "envelope": json.loads(msg.data)}), flush=True)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
