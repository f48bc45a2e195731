#!/usr/bin/env python3
"""A real SMTP server for the tests in tests/it/smtp.rs, built on aiosmtpd.

It listens on 127.0.0.1 on a port the operating system picks, prints `PORT <n>` on stdout, and
saves every accepted message in --dir as `<n>.eml` (the bytes received) and `<n>.json` (what
Python's email parser makes of it: envelope, headers, MIME parts, parser defects, TLS and login).

It refuses on demand: while a file `reject-rcpt` or `reject-data` exists in --dir, its first line
is the reply to RCPT TO or to the end of DATA (for example `550 5.1.1 no such mailbox`).

Options: --tls starttls|implicit with --cert/--key (PEM); --auth USER:PASSWORD to require a
login. It exits when its standard input closes, so it never outlives the test that started it.

Needs Debian's python3-aiosmtpd (or `pip install aiosmtpd`).
"""

import argparse
import asyncio
import email
import email.policy
import email.utils
import json
import logging
import os
import re
import ssl
import sys
import threading
import warnings

try:
    from aiosmtpd.smtp import SMTP, AuthResult
except ImportError as e:  # the Rust side reads this line and skips (or fails in CI)
    print(f"ERROR aiosmtpd is not installed: {e}", flush=True)
    sys.exit(2)

MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")


def summarize(raw, envelope, tls, login):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    defects = []
    parts = []
    for part in msg.walk():
        defects += [type(d).__name__ for d in part.defects]
        if part.is_multipart():
            continue
        try:
            content = part.get_content()
        except Exception as e:  # an undecodable part is a defect too
            defects.append(f"undecodable part: {e}")
            content = None
        parts.append(
            {
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "transfer_encoding": part.get("Content-Transfer-Encoding"),
                "content": content,
            }
        )
    header_names = [k for k in msg.keys()]
    date = msg.get("Date")
    date_ok = False
    if date is not None:
        try:
            date_ok = email.utils.parsedate_to_datetime(str(date)).tzinfo is not None
        except (TypeError, ValueError):
            date_ok = False
    message_id = msg.get("Message-ID")
    return {
        "mail_from": envelope.mail_from,
        "rcpt_tos": envelope.rcpt_tos,
        "header_names": header_names,
        "headers": {
            "from": str(msg.get("From")) if msg.get("From") else None,
            "to": str(msg.get("To")) if msg.get("To") else None,
            "reply_to": str(msg.get("Reply-To")) if msg.get("Reply-To") else None,
            "subject": str(msg.get("Subject")) if msg.get("Subject") else None,
            "date": str(date) if date else None,
            "message_id": str(message_id) if message_id else None,
            "mime_version": str(msg.get("MIME-Version")) if msg.get("MIME-Version") else None,
            "auto_submitted": str(msg.get("Auto-Submitted")) if msg.get("Auto-Submitted") else None,
        },
        "date_ok": date_ok,
        "message_id_ok": bool(message_id and MESSAGE_ID.match(str(message_id).strip())),
        "content_type": msg.get_content_type(),
        "is_multipart": msg.is_multipart(),
        "defects": defects,
        "parts": parts,
        "tls": tls,
        "login": login,
    }


def refusal(directory, name):
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip() or "550 refused"
    except FileNotFoundError:
        return None


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = refusal(self.directory, "reject-rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = refusal(self.directory, "reject-data")
        if reply:
            return reply
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        tls = server.transport is not None and (
            server.transport.get_extra_info("ssl_object") is not None
        )
        login = None
        if session.authenticated:
            login = getattr(session.auth_data, "login", b"").decode("utf-8", "replace")
        self.count += 1
        base = os.path.join(self.directory, f"{self.count:04}")
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        summary = summarize(raw, envelope, tls, login)
        tmp = base + ".json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(summary, f)
        os.replace(tmp, base + ".json")
        return "250 OK: queued"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    args = p.parse_args()
    # The sink is loopback-only: its warnings about a login without TLS are noise here.
    warnings.filterwarnings("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    kwargs = {"hostname": "sink.localhost"}
    if args.tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                getattr(auth_data, "login", None) == user.encode()
                and getattr(auth_data, "password", None) == password.encode()
            )
            # handled=False: aiosmtpd itself answers 535 to a failed login.
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        # Loopback only, so a login without TLS is acceptable here.
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)

    handler = Sink(args.dir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, **kwargs),
            host="127.0.0.1",
            port=0,
            ssl=context if args.tls == "implicit" else None,
        )
    )
    port = server.sockets[0].getsockname()[1]

    def watch_stdin():
        sys.stdin.read()  # returns when the test closes our stdin or exits
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"PORT {port}", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
