"""Atlas authentication: HTTP digest with API keys (RFC 2617, MD5, qop=auth) and OAuth2 client
credentials for service accounts (Bearer tokens with a lifetime)."""

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time

REALM = "MMS Public API"
NONCE_LIFETIME = 300.0
_PAIR = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def _md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # RFC 2617 digest is MD5 by definition


def parse_digest(header):
    """The parameters of an ``Authorization: Digest ...`` header, or None."""
    if not header or header[:7].lower() != "digest ":
        return None
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PAIR.finditer(header[7:])}


class Authenticator:
    """Keeps API keys, service accounts, digest nonces and bearer tokens; thread-safe."""

    def __init__(self, clock=time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self.api_keys = {}
        self.service_accounts = {}
        self._nonces = {}
        self._tokens = {}

    def reset(self):
        with self._lock:
            self.api_keys.clear()
            self.service_accounts.clear()
            self._nonces.clear()
            self._tokens.clear()

    def add_api_key(self, public_key, private_key):
        with self._lock:
            self.api_keys[public_key] = private_key

    def add_service_account(self, client_id, client_secret, token_lifetime=3600):
        with self._lock:
            self.service_accounts[client_id] = (client_secret, int(token_lifetime))

    # -- digest --------------------------------------------------------------------------------------

    def challenge(self, stale=False):
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        nonce = secrets.token_hex(16)
        now = self._clock()
        with self._lock:
            for old in [n for n, entry in self._nonces.items() if now - entry[0] > NONCE_LIFETIME]:
                del self._nonces[old]
            self._nonces[nonce] = (now, 0)
        return f'Digest realm="{REALM}", domain="", nonce="{nonce}", algorithm=MD5, qop="auth", stale={"true" if stale else "false"}'

    def check_digest(self, method, request_uri, header):
        """``(principal, stale)``: the public key on success, else None (``stale`` asks for a new nonce)."""
        params = parse_digest(header)
        if not params:
            return None, False
        username, nonce, response = params.get("username"), params.get("nonce"), params.get("response")
        private = self.api_keys.get(username)
        if private is None or not nonce or not response:
            return None, False
        if params.get("realm") != REALM or params.get("uri") != request_uri:
            return None, False
        if (params.get("algorithm") or "MD5").upper() != "MD5" or params.get("qop") != "auth":
            return None, False
        nc_text, cnonce = params.get("nc") or "", params.get("cnonce") or ""
        if not re.fullmatch(r"[0-9a-fA-F]{8}", nc_text) or not cnonce:
            return None, False
        ha1 = _md5(f"{username}:{REALM}:{private}")
        ha2 = _md5(f"{method}:{request_uri}")
        expected = _md5(f"{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}")
        if not hmac.compare_digest(expected, response.lower()):
            return None, False
        nc = int(nc_text, 16)
        with self._lock:
            known = self._nonces.get(nonce)
            if known is None or self._clock() - known[0] > NONCE_LIFETIME:
                return None, True  # right key, old or unknown nonce
            if nc <= known[1]:
                return None, False  # replayed request
            self._nonces[nonce] = (known[0], nc)
        return username, False

    # -- OAuth2 --------------------------------------------------------------------------------------

    def issue_token(self, authorization, form):
        """``(status, body, headers)`` of the token endpoint (RFC 6749 client credentials grant)."""
        client_id = client_secret = None
        if authorization and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
                client_id, client_secret = decoded.split(":", 1)
            except (ValueError, UnicodeDecodeError):
                return 400, {"error": "invalid_request", "error_description": "Malformed Basic authorization header."}, {}
        elif form.get("client_id"):
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "Only grant_type=client_credentials is supported."}, {}
        account = self.service_accounts.get(client_id or "")
        if account is None or not hmac.compare_digest(account[0], client_secret or ""):
            return 401, {"error": "invalid_client", "error_description": "Invalid client credentials."}, {"WWW-Authenticate": 'Basic realm="Atlas"'}
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (client_id, self._clock() + account[1])
        return 200, {"access_token": token, "expires_in": account[1], "token_type": "Bearer"}, {"Cache-Control": "no-store"}

    def check_bearer(self, header):
        if not header or header[:7].lower() != "bearer ":
            return None
        token = header[7:].strip()
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._tokens[token]
                return None
        return entry[0]
