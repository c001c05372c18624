"""A test SMTP server: aiosmtpd on 127.0.0.1:PORT saving each message to DIR/<n>.eml.

Usage: smtp_sink.py PORT DIR [REJECT,ADDRESSES]
RCPT TO one of REJECT is answered with a permanent 550; the first RCPT TO of an address
starting with "tempfail" is answered with a transient 451 (accepted from the second on).
"""
import asyncio
import os
import sys
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, reject):
        self.directory = directory
        self.reject = reject
        self.tempfailed = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 mailbox unavailable"
        if address.lower().startswith("tempfail") and address.lower() not in self.tempfailed:
            self.tempfailed.add(address.lower())
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(self.directory, uuid.uuid4().hex)
        with open(name + ".tmp", "wb") as f:
            f.write(b"X-Rcpt-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name + ".eml")
        return "250 Message accepted"


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    reject = {a.strip().lower() for a in (sys.argv[3] if len(sys.argv) > 3 else "").split(",") if a.strip()}
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Sink(directory, reject), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
