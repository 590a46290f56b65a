"""Local endpoints that speak each alert channel's protocol, on loopback, for Alertmanager and the SMS notifier.

Each accepts exactly what its provider documents and refuses the rest the way the provider
does, so a test passes only if the real client (Alertmanager's integration, kubetrade's
Twilio client) sends a request the real service would take:

* Slack incoming webhooks - https://api.slack.com/messaging/webhooks and the error strings of
  https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks:
  ``POST /services/T.../B.../<secret>`` with a JSON body carrying ``text`` or ``attachments``
  (or ``blocks``); ``200 ok``; ``400 invalid_payload`` for anything else; no auth header (the URL
  is the credential).
* Discord - Execute Webhook, https://discord.com/developers/docs/resources/webhook#execute-webhook:
  ``POST /api/webhooks/{webhook.id}/{webhook.token}``, JSON with at least one of ``content``
  (at most 2000 characters) or ``embeds`` (at most 10; title at most 256, description at most
  4096 characters); ``204 No Content``; ``400`` with ``{"code": 50006, "message": "Cannot send an
  empty message"}`` when neither is there, ``401 {"code": 50027, "message": "Invalid Webhook Token"}``.
* Telegram Bot API - https://core.telegram.org/bots/api#making-requests and #sendmessage:
  ``POST /bot<token>/sendMessage`` with ``chat_id`` and ``text`` (1-4096 characters), as JSON
  (or a form); with ``parse_mode: HTML`` only the tags the API lists; the answer is
  ``{"ok": true, "result": <Message>}``, an unknown token ``401 {"ok": false, "error_code": 401,
  "description": "Unauthorized"}``.
* Twilio Messages - https://www.twilio.com/docs/sms/api/message-resource and
  https://www.twilio.com/docs/usage/requests-to-twilio: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``
  with HTTP Basic auth (AccountSid:AuthToken), form fields ``To`` (E.164), ``From`` or
  ``MessagingServiceSid`` and ``Body`` (at most 1600 characters); ``201`` and the Message
  resource; ``401`` with error 20003; ``400`` with 21211 for a ``To`` that is not E.164; 429
  with ``Retry-After`` (error 20429, https://www.twilio.com/docs/api/errors/20429) when told to;
  ``GET`` of the same list, newest first, filtered by ``To`` and ``From``.
* A generic webhook: Alertmanager's webhook payload, version 4 (webhook_config in
  https://prometheus.io/docs/alerting/latest/configuration/).

Planned answers (:meth:`Provider.plan`) make an endpoint fail before it succeeds: the retry
tests.  Every request is kept (``requests``), accepted messages in ``messages``.
"""

from __future__ import annotations

import base64
import html.parser
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    accept: bool = False
    """Keep the message as sent even though the answer says otherwise (a lost answer)."""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float


class Provider:
    """One provider's endpoint: checks, planned failures, what it accepted."""

    name = ""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.messages: list[dict[str, Any]] = []
        self.refusals: list[tuple[int, Any]] = []
        self._plan: list[Answer] = []
        self.lock = threading.Lock()

    def plan(self, *answers: Answer) -> None:
        """The next requests get these answers, in order, before the provider behaves normally."""
        with self.lock:
            self._plan.extend(answers)

    def handle(self, req: Request) -> Answer:
        with self.lock:
            self.requests.append(req)
            planned = self._plan.pop(0) if self._plan else None
        answer, message = self.check(req)
        if planned is not None:
            if planned.accept and message is not None:
                with self.lock:
                    self.messages.append(message)
            return planned
        with self.lock:
            if message is not None:
                self.messages.append(message)
            else:
                self.refusals.append((answer.status, answer.body))
        return answer

    def check(self, req: Request) -> tuple[Answer, dict[str, Any] | None]:
        raise NotImplementedError

    def wait_for(self, predicate: Any, timeout: float = 120.0, what: str = "a message") -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [m for m in self.messages if predicate(m)]
            if got:
                return got
            if time.monotonic() > deadline:
                with self.lock:
                    raise AssertionError(f"{self.name}: {what} did not arrive within {timeout}s; "
                                         f"{len(self.requests)} requests, refusals {self.refusals[-3:]}, "
                                         f"messages {self.messages[-3:]}")
            time.sleep(0.2)

    def matching(self, predicate: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if predicate(m)]


def _json(req: Request) -> Any:
    if not req.headers.get("content-type", "").startswith("application/json"):
        raise ValueError("not application/json")
    return json.loads(req.body)


class Slack(Provider):
    name = "slack"
    PATH = re.compile(r"^/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+$")

    def __init__(self) -> None:
        super().__init__()
        self.secret_path = f"/services/T0KUBETR/B0ALERTS/{secrets.token_hex(12)}"

    def check(self, req: Request) -> tuple[Answer, dict[str, Any] | None]:
        if req.method != "POST" or not self.PATH.match(req.path):
            return Answer(404, "no_service"), None
        if req.path != self.secret_path:
            return Answer(403, "invalid_token"), None
        try:
            body = _json(req)
        except ValueError:
            return Answer(400, "invalid_payload"), None
        if not isinstance(body, dict) or not (body.get("text") or body.get("attachments") or body.get("blocks")):
            return Answer(400, "no_text"), None
        for a in body.get("attachments") or []:
            if not isinstance(a, dict) or not (a.get("text") or a.get("fallback") or a.get("title")):
                return Answer(400, "invalid_attachments"), None
        text = "\n".join(str(a.get(k, "")) for a in body.get("attachments") or [] for k in ("title", "text"))
        return Answer(200, "ok"), {"body": body, "text": (body.get("text") or "") + text,
                                   "channel": body.get("channel")}


class Discord(Provider):
    name = "discord"
    PATH = re.compile(r"^/api/webhooks/([0-9]{17,20})/([A-Za-z0-9_-]{60,80})(\?.*)?$")

    def __init__(self) -> None:
        super().__init__()
        self.webhook_id = str(10**18 + secrets.randbelow(10**17))
        self.token = secrets.token_urlsafe(51)[:68]

    @property
    def path(self) -> str:
        return f"/api/webhooks/{self.webhook_id}/{self.token}"

    def check(self, req: Request) -> tuple[Answer, dict[str, Any] | None]:
        m = self.PATH.match(req.path)
        if req.method != "POST" or not m:
            return Answer(404, {"message": "404: Not Found", "code": 0}), None
        if m.group(1) != self.webhook_id or m.group(2) != self.token:
            return Answer(401, {"message": "Invalid Webhook Token", "code": 50027}), None
        try:
            body = _json(req)
        except ValueError:
            return Answer(400, {"message": "Cannot send an empty message", "code": 50006}), None
        content, embeds = body.get("content") or "", body.get("embeds") or []
        if not content and not embeds:
            return Answer(400, {"message": "Cannot send an empty message", "code": 50006}), None
        if len(content) > 2000 or len(embeds) > 10 or any(
                len(e.get("title") or "") > 256 or len(e.get("description") or "") > 4096 for e in embeds):
            return Answer(400, {"message": "Invalid Form Body", "code": 50035}), None
        text = content + "\n".join(f"{e.get('title', '')}\n{e.get('description', '')}" for e in embeds)
        return Answer(204), {"body": body, "text": text}


class _TelegramHtml(html.parser.HTMLParser):
    ALLOWED = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "tg-spoiler",
               "tg-emoji", "blockquote"}

    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in self.ALLOWED:
            self.bad.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


class Telegram(Provider):
    name = "telegram"

    def __init__(self) -> None:
        super().__init__()
        self.token = f"{secrets.randbelow(10**9)}:{secrets.token_urlsafe(26)}"
        self.chat_id = -1001234567890
        self._ids = 0

    @staticmethod
    def _bad(what: str) -> Answer:
        return Answer(400, {"ok": False, "error_code": 400, "description": f"Bad Request: {what}"})

    def check(self, req: Request) -> tuple[Answer, dict[str, Any] | None]:
        m = re.match(r"^/bot([^/]+)/([A-Za-z]+)$", req.path)
        if not m:
            return Answer(404, {"ok": False, "error_code": 404, "description": "Not Found"}), None
        if m.group(1) != self.token:
            return Answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}), None
        if req.method not in ("GET", "POST") or m.group(2) != "sendMessage":
            return Answer(404, {"ok": False, "error_code": 404, "description": "Not Found"}), None
        ctype = req.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            params = json.loads(req.body)
        elif ctype.startswith("application/x-www-form-urlencoded"):
            params = dict(urllib.parse.parse_qsl(req.body.decode()))
        else:
            return self._bad("message text is empty"), None
        text = str(params.get("text") or "")
        if str(params.get("chat_id")) != str(self.chat_id):
            return self._bad("chat not found"), None
        if params.get("parse_mode") == "HTML":
            parser = _TelegramHtml()
            parser.feed(text)
            if parser.bad:
                return self._bad(f"can't parse entities: Unsupported start tag \"{parser.bad[0]}\""), None
            plain = "".join(parser.text)
        else:
            plain = text
        if not plain.strip() or len(plain) > 4096:
            return self._bad("message text is empty" if not plain.strip() else "message is too long"), None
        with self.lock:
            self._ids += 1
            message_id = self._ids
        result = {"message_id": message_id, "date": int(time.time()), "text": plain,
                  "chat": {"id": self.chat_id, "type": "supergroup", "title": "kubetrade alerts"},
                  "from": {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "kubetrade"}}
        return Answer(200, {"ok": True, "result": result}), {"params": params, "text": plain}


class Webhook(Provider):
    """A user's own endpoint taking Alertmanager's webhook payload."""

    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.path = f"/hooks/kubetrade/{secrets.token_hex(8)}"

    def check(self, req: Request) -> tuple[Answer, dict[str, Any] | None]:
        if req.method != "POST" or req.path != self.path:
            return Answer(404, "not found"), None
        try:
            body = _json(req)
        except ValueError:
            return Answer(400, "not json"), None
        if body.get("version") != "4" or not isinstance(body.get("alerts"), list) or not body["alerts"]:
            return Answer(400, "not an Alertmanager webhook payload"), None
        for a in body["alerts"]:
            if not {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"} <= set(a):
                return Answer(400, "alert without its fields"), None
        return Answer(200, ""), {"body": body, "alertnames": {a["labels"].get("alertname") for a in body["alerts"]},
                                 "text": json.dumps(body)}


class Twilio(Provider):
    name = "twilio"
    E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

    def __init__(self) -> None:
        super().__init__()
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.sender = "+15005550006"
        self.sent: list[dict[str, Any]] = []
        """Every message created, as the list resource shows them (also those whose answer was lost)."""

    @property
    def path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def _error(self, status: int, code: int, message: str) -> Answer:
        return Answer(status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                               "status": status})

    def check(self, req: Request) -> tuple[Answer, dict[str, Any] | None]:
        path = req.path.split("?", 1)[0]
        if path != self.path:
            return self._error(404, 20404, "The requested resource was not found"), None
        auth = req.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if auth != expected:
            return self._error(401, 20003, "Authenticate"), None
        if req.method == "GET":
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.path).query))
            with self.lock:
                found = [m for m in reversed(self.sent) if m["to"] == query.get("To")
                         and ("From" not in query or m["from"] == query["From"])]
            return Answer(200, {"messages": found[: int(query.get("PageSize", "50"))], "page": 0}), None
        if req.method != "POST" or not req.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return self._error(405, 20004, "Method not allowed"), None
        form = dict(urllib.parse.parse_qsl(req.body.decode(), keep_blank_values=True))
        if "To" not in form:
            return self._error(400, 21604, "A 'To' phone number is required."), None
        if not self.E164.match(form["To"]):
            return self._error(400, 21211, f"The 'To' number {form['To']} is not a valid phone number."), None
        if form.get("From") != self.sender and not form.get("MessagingServiceSid"):
            return self._error(400, 21212, "The 'From' number is not a valid phone number or shortcode."), None
        body = form.get("Body", "")
        if not body or len(body) > 1600:
            return self._error(400, 21602 if not body else 21617, "Message body is required." if not body
                               else "The concatenated message body exceeds the 1600 character limit."), None
        message = {"sid": "SM" + secrets.token_hex(16), "account_sid": self.account_sid, "to": form["To"],
                   "from": form.get("From"), "body": body, "status": "queued", "direction": "outbound-api",
                   "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), "date_sent": None,
                   "num_segments": str(1 + len(body) // 161), "api_version": "2010-04-01"}
        with self.lock:
            self.sent.append(message)
        return Answer(201, message), {**message, "text": body}


class Providers:
    """Every HTTP provider behind one loopback server (each under its own paths)."""

    def __init__(self) -> None:
        self.slack, self.discord, self.telegram = Slack(), Discord(), Telegram()
        self.webhook, self.twilio = Webhook(), Twilio()
        providers = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length), time.time())
                answer = providers.route(req).handle(req)
                body = answer.body
                data = b"" if body is None else (body if isinstance(body, bytes) else
                                                 (json.dumps(body) if not isinstance(body, str) else body).encode())
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json" if isinstance(body, dict | list)
                                 else "text/plain; charset=utf-8")
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data and answer.status != 204:
                    self.wfile.write(data)

            do_POST = do_GET = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def route(self, req: Request) -> Provider:
        if req.path.startswith("/services/"):
            return self.slack
        if req.path.startswith("/api/webhooks/"):
            return self.discord
        if req.path.startswith("/bot"):
            return self.telegram
        if req.path.startswith("/2010-04-01/"):
            return self.twilio
        return self.webhook

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """A real SMTP server (aiosmtpd) on loopback: STARTTLS required before AUTH, AUTH required before mail."""

    def __init__(self, cert: Any, key: Any, user: str, password: str) -> None:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

        class Smtp(SMTP):
            # AUTH LOGIN's challenges as Postfix/Dovecot send them (aiosmtpd's own say "User Name\0")
            AuthLoginUsernameChallenge = "Username:"
            AuthLoginPasswordChallenge = "Password:"

        class Serving(Controller):
            def factory(self) -> Any:
                return Smtp(self.handler, **self.SMTP_kwargs)

        from kubetrade.localstack.servers.processes import free_port

        self.messages: list[Any] = []
        self.lock = threading.Lock()
        self.auth_failures = 0
        self.login: str | None = None
        server = self
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))

        class Handler:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                import email
                from email import policy

                message = email.message_from_bytes(envelope.content, policy=policy.default)
                with server.lock:
                    server.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                            "message": message, "tls": session.ssl is not None,
                                            "authenticated": session.authenticated, "login": server.login})
                return "250 Message accepted for delivery"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
            if not ok:
                server.auth_failures += 1
            else:
                server.login = data.login.decode()
            return AuthResult(success=ok)

        self.port = free_port()
        self.controller = Serving(Handler(), hostname="127.0.0.1", port=self.port, tls_context=context,
                                     require_starttls=True, auth_required=True, auth_require_tls=True,
                                     authenticator=authenticate, server_hostname="127.0.0.1")
        self.controller.start()

    def wait_for(self, predicate: Any, timeout: float = 120.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [m for m in self.messages if predicate(m)]
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"smtp: no such message within {timeout}s; got {len(self.messages)}")
            time.sleep(0.2)

    def close(self) -> None:
        self.controller.stop()


def text_of(message: Any) -> str:
    """The text/plain part of an e-mail."""
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""
