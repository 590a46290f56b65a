"""Validating admission webhook: semantic checks beyond the CRD schema.

The schema (with its CEL rules) already refuses malformed resources; the webhook refuses
well-formed ones that cannot work: a genome that does not compile, an unknown template,
exchange or time zone, an invalid cron, a spot symbol on a perpetual market, live mode
without credentials, a model URI the runner does not load, a path that climbs out of its
folder (:mod:`kubetrade.validation.manifests`).  The same checks run in every reconcile, so a resource that slipped
in while the webhook was down still ends up Failed with the reason, never trading.

Served on threads of its own, not on the operator's event loop: every ``kubectl apply``
waits for its admission, and on the loop an admission waited behind the watch events and
handlers of a whole burst of reconciliation.  The checks take some 50 microseconds.

The operator keeps the webhook configuration current (URL, CA bundle) while it leads and
withdraws its webhooks when it stops cleanly; the chart owns the (empty) object so that
``helm uninstall`` removes it.  The API server skips the webhooks (``matchConditions``)
for updates that leave the spec as it was: kopf's finalizer and progress annotations,
label and annotation edits, which the checks do not look at.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import socket
import ssl
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubetrade.resources import GROUP, VERSION
from kubetrade.validation.manifests import PLURAL_KIND, spec_problems
from kubetrade_operator import kube

log = logging.getLogger("kubetrade.operator.admission")

VALIDATING = "validate.kubetrade.io"

_CHECKS: tuple[str, ...] = ("strategies", "goals", "riskpolicies", "collectors")
"""Every kind: the webhook and the reconcilers judge each spec with :func:`spec_problems`."""

ENDPOINTS = frozenset(f"/validate/{plural}" for plural in _CHECKS)

SPEC_CHANGED = (
    "request.operation != 'UPDATE' || !has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec"
)
"""Call the validating webhook on creations and on updates that change the spec, only."""


def problems(plural: str, spec: Any) -> str | None:
    """Why a spec of this kind is refused, or None."""
    found = spec_problems(PLURAL_KIND[plural], spec if isinstance(spec, dict) else None)
    return "; ".join(found) if found else None


def review(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Answer one AdmissionReview sent to ``/validate/<plural>``."""
    request = body["request"]
    answer: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    why = problems(path.rsplit("/", 1)[-1], (request.get("object") or {}).get("spec"))
    if why:
        answer.update(allowed=False, status={"code": 422, "message": why})
    return {"apiVersion": body.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview", "response": answer}


def configuration(url: str, ca_bundle: str | None) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration: one webhook per kind, at ``url`` (the server's base URL)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": VALIDATING},
        "webhooks": [
            {
                "name": f"{plural}.{VALIDATING}",
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "resources": [plural],
                        "operations": ["CREATE", "UPDATE"],
                        "scope": "Namespaced",
                    }
                ],
                "matchConditions": [{"name": "spec-created-or-changed", "expression": SPEC_CHANGED}],
                "clientConfig": {
                    "url": f"{url.rstrip('/')}/validate/{plural}",
                    **({"caBundle": ca_bundle} if ca_bundle else {}),
                },
                "sideEffects": "None",
                "failurePolicy": "Ignore",  # every reconcile repeats the checks; the webhook answers sooner
                "matchPolicy": "Equivalent",
                "timeoutSeconds": 30,
                "admissionReviewVersions": ["v1"],
            }
            for plural in _CHECKS
        ],
    }


_PATH = f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{VALIDATING}"


def _set_webhooks(webhooks: list[dict[str, Any]]) -> None:
    kube.request("PATCH", _PATH, {"webhooks": webhooks}, content_type="application/merge-patch+json")


def register(url: str, ca_bundle: str | None) -> None:
    """Point the configuration's webhooks at this server; create it only where nobody did.

    The chart creates the (empty) object, so the operator needs only ``patch`` on that one
    name (RBAC ``resourceNames``); without the chart (tests, a bare install) it creates it.
    """
    config = configuration(url, ca_bundle)
    try:
        _set_webhooks(config["webhooks"])
    except ApiException as exc:
        if exc.status != 404:
            raise
        kube.request("POST", _PATH.rsplit("/", 1)[0], config)


def withdraw() -> None:
    """Empty the configuration: the API server stops calling a server that is going away."""
    try:
        _set_webhooks([])
    except ApiException as exc:
        if exc.status != 404:
            raise


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the API server keeps its connections open
    timeout = 300  # an idle kept-alive connection ends after this
    # One send per answer, without Nagle's delay: headers and body written apart would wait
    # for the API server's delayed ACK (some 40 ms) on every admission.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path  # the API server adds ?timeout=...
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path not in ENDPOINTS:
            data, status = json.dumps({"error": f"no admission endpoint {path}"}).encode(), 404
        else:
            try:
                data, status = json.dumps(review(path, json.loads(body))).encode(), 200
            except (ValueError, LookupError, TypeError) as exc:
                data, status = json.dumps({"error": f"bad AdmissionReview: {exc!r}"}).encode(), 400
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("admission request", extra={"line": format % args})


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens on the connection's own thread, not the accepting one.
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()


class AdmissionServer:
    """The webhook's HTTPS endpoint on threads of its own; registers itself while it runs.

    Certificate files are re-read when they change (a rotated certificate, a renewed CA),
    and the configuration is then updated with the new CA bundle.
    """

    def __init__(
        self,
        *,
        addr: str,
        port: int,
        host: str | None,
        certfile: Path,
        keyfile: Path,
        cafile: Path | None,
        check_every: float = 60.0,
    ) -> None:
        self.addr, self.port, self.host = addr, port, host
        self.certfile, self.keyfile, self.cafile = certfile, keyfile, cafile
        self.check_every = check_every
        self._stop = threading.Event()
        self._server: _TLSServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host = self.host or (self.addr if self.addr not in ("", "0.0.0.0", "::") else socket.getfqdn())
        return f"https://{host}:{self.port}"

    def _files(self) -> tuple[bytes, ...]:
        return tuple(p.read_bytes() for p in (self.certfile, self.keyfile, self.cafile) if p is not None)

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def _ca_bundle(self) -> str | None:
        return base64.b64encode(self.cafile.read_bytes()).decode() if self.cafile else None

    def start(self) -> None:
        """Listen, then register the webhook (blocking calls: run it off the event loop)."""
        self._server = _TLSServer((self.addr, self.port), _Handler)
        self._server.context = self._context()
        serving = threading.Thread(target=self._server.serve_forever, name="admission", daemon=True)
        serving.start()
        registered = self._register()
        watching = threading.Thread(target=self._watch, args=(registered,), name="admission-certs", daemon=True)
        watching.start()
        self._threads = [serving, watching]

    def _register(self) -> bool:
        try:
            register(self.url, self._ca_bundle())
        except Exception as exc:  # the API server or the files: retried by _watch; failures are ignored meanwhile
            log.warning("admission webhook not registered", extra={"error": f"{type(exc).__name__}: {exc}"})
            return False
        log.info("admission webhook registered", extra={"url": self.url})
        return True

    def _watch(self, registered: bool) -> None:
        """Re-register after a failed attempt (every 5 s) or when the certificate files change."""
        seen = self._files()
        while not self._stop.wait(self.check_every if registered else 5.0):
            try:
                now = self._files()
                if now != seen:
                    assert self._server is not None
                    self._server.context = self._context()
                    seen, registered = now, False
                    log.info("webhook certificate reloaded")
            except Exception as exc:  # a half-written file: try again at the next check
                log.warning("webhook certificate not reloaded", extra={"error": f"{type(exc).__name__}: {exc}"})
                continue
            if not registered:
                registered = self._register()

    def stop(self, withdraw_webhooks: bool = True) -> None:
        """Withdraw the webhooks (unless another replica now owns them), then stop serving."""
        self._stop.set()
        if withdraw_webhooks:
            try:
                withdraw()
            except Exception as exc:
                log.warning("admission webhooks not withdrawn", extra={"error": f"{type(exc).__name__}: {exc}"})
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
