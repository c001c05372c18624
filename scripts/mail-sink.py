"""The local mail sink of `make run` and `make demo`: an SMTP server (aiosmtpd) on 127.0.0.1:PORT
that keeps every message it receives as DIR/<time>-<n>.eml, to open with any mail program.

Usage: mail-sink.py PORT DIR
Nothing is relayed anywhere: it is a mailbox directory, not a mail server.
"""
import asyncio
import itertools
import os
import signal
import sys
import time

from aiosmtpd.controller import Controller


class Mailbox:
    def __init__(self, directory):
        self.directory = directory
        self.seq = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = os.path.join(self.directory, f"{stamp}-{next(self.seq):04d}")
        with open(name + ".tmp", "wb") as f:
            f.write(b"X-Rcpt-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name + ".eml")
        return "250 Message accepted"


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Mailbox(directory), hostname="127.0.0.1", port=port)
    controller.start()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    try:
        loop.run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
