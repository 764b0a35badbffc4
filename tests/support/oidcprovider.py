"""A tiny OpenID Connect provider that can be told to misbehave: the id tokens a broken or hostile provider would
send (signed by a key it does not publish, for another audience, by another issuer, without the nonce), which a
well-behaved provider such as Halyard never sends. HTTPS on 127.0.0.1 with a CA of its own; one account, signed in
without a page (its authorize endpoint redirects at once)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from halyard.core.pki import ensure_server_tls

MODES = ("good", "bad-signature", "wrong-audience", "wrong-issuer", "no-nonce")


class TinyProvider:
    def __init__(self, directory: Path) -> None:
        self.tls = ensure_server_tls(directory, "tiny-oidc", ["localhost"], ["127.0.0.1"])
        self.ca = str(self.tls.ca_cert)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # published nowhere
        self.mode = "good"
        self.claims: dict[str, Any] = {
            "sub": "tiny-subject-1",
            "preferred_username": "tina@tiny.example",
            "email": "tina@tiny.example",
            "name": "Tina",
            "groups": ["tiny-readers"],
        }
        self._codes: dict[str, dict[str, str]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.issuer = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tiny-oidc", daemon=True)

    def start(self) -> TinyProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def _id_token(self, grant: dict[str, str]) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            **self.claims,
            "iss": self.issuer,
            "aud": grant["client_id"],
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
        }
        key = self._key
        if self.mode == "bad-signature":
            key = self._stranger  # the same kid, another key: the signature does not verify
        elif self.mode == "wrong-audience":
            body["aud"] = "some-other-application"
        elif self.mode == "wrong-issuer":
            body["iss"] = "https://impostor.example"
        elif self.mode == "no-nonce":
            del body["nonce"]
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    self._json(200, {
                        "issuer": provider.issuer,
                        "authorization_endpoint": provider.issuer + "/authorize",
                        "token_endpoint": provider.issuer + "/token",
                        "jwks_uri": provider.issuer + "/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    })  # fmt: skip
                elif parts.path == "/jwks":
                    self._json(200, provider._jwks())
                elif parts.path == "/authorize":
                    q = dict(parse_qsl(parts.query))
                    code = secrets.token_urlsafe(16)
                    provider._codes[code] = q
                    self.send_response(302)
                    self.send_header(
                        "Location", q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
                    )
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                grant = provider._codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if (
                    grant is None
                    or challenge != grant["code_challenge"]
                    or form.get("redirect_uri") != grant["redirect_uri"]
                ):
                    self._json(400, {"error": "invalid_grant"})
                    return
                self._json(
                    200, {"access_token": "opaque", "token_type": "Bearer", "id_token": provider._id_token(grant)}
                )

        return Handler
