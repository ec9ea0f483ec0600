"""Unit tests of the Atlas Admin API client, against a local HTTP server that implements
HTTP digest (RFC 7616, qop=auth, MD5) and the OAuth 2.0 client-credentials token endpoint."""

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import socket
import struct
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from unit.fakes import Clock

from ansible_collections.cmk.atlas.plugins.module_utils import version
from ansible_collections.cmk.atlas.plugins.module_utils.atlas import client as atlas

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))))

PUBLIC_KEY = "pubkeyabcd"
PRIVATE_KEY = "priv-3f1e5a2b-9c7d-4e8f-a1b2-c3d4e5f6a7b8"
CLIENT_ID = "mdb_sa_id_64f0c0ffee"
CLIENT_SECRET = "mdb_sa_sk_Zq8Wn3Lr5Tx7Yv9Bc2Df4Gh6Jk"
GROUP_ID = "5f0123456789abcdef012345"
ROLE_ID = "64aa00000000000000000001"
REALM = "MMS Public API"

RESET = "reset"
HANG = "hang"


def md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def api_error(status, code, detail, reason="Error", parameters=None):
    body = {"error": status, "errorCode": code, "detail": detail, "reason": reason}
    if parameters is not None:
        body["parameters"] = parameters
    return status, {"Content-Type": "application/json"}, json.dumps(body)


def ok(body, status=200):
    return status, {"Content-Type": "application/vnd.atlas.2023-01-01+json"}, json.dumps(body)


class Recorded:
    def __init__(self, handler, body, kind):
        self.method = handler.command
        self.raw_path = handler.path
        parsed = urllib.parse.urlsplit(handler.path)
        self.path = parsed.path
        self.query = dict(urllib.parse.parse_qsl(parsed.query))
        self.headers = {key.lower(): value for key, value in handler.headers.items()}
        self.body = body
        self.kind = kind  # "token", "challenge", "denied" or "api"


class FakeAtlas:
    """Atlas-like server: authenticates (digest or bearer), then answers from ``script`` or ``handler``."""

    def __init__(self, auth):
        self.auth = auth
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.reset()

    def reset(self):
        self.release.set()  # frees handlers a test left hanging
        self.release = threading.Event()
        self.records = []
        self.script = []
        self.handler = lambda record: ok({"ok": True, "path": record.path})
        self.nonces = set()
        self.tokens = set()
        self.token_lifetime = 3600
        self.token_script = []
        self.revoke_tokens_on_issue = False

    # -- views used by the tests
    def of_kind(self, kind):
        return [record for record in self.records if record.kind == kind]

    @property
    def api(self):
        return self.of_kind("api")

    # -- request handling
    def handle(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if handler.path == "/api/oauth/token":
            return self._token(handler, body)
        if not handler.path.startswith("/api/atlas/v2/unauth/"):
            denial = self._authenticate(handler, body)
            if denial is not None:
                return denial
        record = Recorded(handler, body, "api")
        with self.lock:
            self.records.append(record)
            scripted = self.script.pop(0) if self.script else None
        if scripted is None:
            return self.handler(record)
        return scripted

    def _token(self, handler, body):
        record = Recorded(handler, body, "token")
        self.records.append(record)
        if self.token_script:
            return self.token_script.pop(0)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = urllib.parse.parse_qs(body.decode())
        if (
            handler.command != "POST"
            or record.headers.get("authorization") != expected
            or record.headers.get("content-type") != "application/x-www-form-urlencoded"
            or form != {"grant_type": ["client_credentials"]}
        ):
            return 401, {"Content-Type": "application/json"}, json.dumps({"error": "invalid_client", "error_description": "Invalid client credentials"})
        token = secrets.token_hex(16)
        if not self.revoke_tokens_on_issue:
            self.tokens.add(token)
        return 200, {"Content-Type": "application/json"}, json.dumps({"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _unauthorized(self, handler, body, kind, challenge):
        self.records.append(Recorded(handler, body, kind))
        status, headers, text = api_error(401, "UNAUTHORIZED", "You are not authorized for this resource.", "Unauthorized")
        if challenge:
            nonce = secrets.token_hex(12)
            self.nonces.add(nonce)
            headers["WWW-Authenticate"] = f'Digest realm="{REALM}", domain="", nonce="{nonce}", algorithm=MD5, qop="auth", stale=false'
        return status, headers, text

    def _authenticate(self, handler, body):
        header = handler.headers.get("Authorization") or ""
        if self.auth == "digest":
            if not header.startswith("Digest "):
                return self._unauthorized(handler, body, "challenge", True)
            fields = urllib.request.parse_keqv_list(urllib.request.parse_http_list(header[len("Digest ") :]))
            ha1 = md5(f"{PUBLIC_KEY}:{REALM}:{PRIVATE_KEY}")
            ha2 = md5(f"{handler.command}:{fields.get('uri')}")
            expected = md5(f"{ha1}:{fields.get('nonce')}:{fields.get('nc')}:{fields.get('cnonce')}:{fields.get('qop')}:{ha2}")
            if (
                fields.get("username") != PUBLIC_KEY
                or fields.get("realm") != REALM
                or fields.get("nonce") not in self.nonces
                or fields.get("uri") != handler.path
                or fields.get("qop") != "auth"
                or fields.get("response") != expected
            ):
                return self._unauthorized(handler, body, "denied", True)
            return None
        if self.auth == "oauth":
            if not header.startswith("Bearer ") or header[len("Bearer ") :] not in self.tokens:
                return self._unauthorized(handler, body, "denied", False)
            return None
        raise AssertionError(self.auth)


class _Handler(BaseHTTPRequestHandler):
    def _dispatch(self):
        fake = self.server.fake
        reply = fake.handle(self)
        if reply == RESET:
            # SO_LINGER 0 turns close() into a TCP reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if reply == HANG:
            fake.release.wait(5)
            return
        status, headers, text = reply
        payload = text.encode() if isinstance(text, str) else text
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

    def finish(self):
        with contextlib.suppress(OSError, ValueError):  # the socket was reset on purpose
            super().finish()

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def start_server(auth):
    fake = FakeAtlas(auth)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    fake.stop = lambda: (fake.release.set(), server.shutdown(), server.server_close(), thread.join(5))
    return fake


@pytest.fixture(scope="module")
def _digest_server():
    fake = start_server("digest")
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def _oauth_server():
    fake = start_server("oauth")
    yield fake
    fake.stop()


@pytest.fixture
def digest_server(_digest_server):
    _digest_server.reset()
    yield _digest_server
    _digest_server.reset()


@pytest.fixture
def oauth_server(_oauth_server):
    _oauth_server.reset()
    yield _oauth_server
    _oauth_server.reset()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Harness:
    """Builds clients with an injected sleep, clock and jitter, and keeps what they logged."""

    def __init__(self):
        self.sleeps = []
        self.logs = []
        self.clock = FakeClock()
        self.clients = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.clock.now += seconds

    def params(self, server_url, auth="digest", **overrides):
        params = {"base_url": server_url, "timeout": 5, "retries": 3, "validate_certs": True}
        if auth == "digest":
            params.update(public_key=PUBLIC_KEY, private_key=PRIVATE_KEY)
        elif auth == "oauth":
            params.update(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        params.update(overrides)
        return params

    def client(self, server_url, auth="digest", **overrides):
        client = atlas.AtlasClient.from_params(
            self.params(server_url, auth, **overrides),
            sleep=self.sleep,
            clock=self.clock,
            jitter=lambda: 0.5,
            log=self.logs.append,
        )
        self.clients.append(client)
        return client


@pytest.fixture
def harness():
    harness = Harness()
    yield harness
    for client in harness.clients:
        client.close()


def unused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Operation table against the spec


def _subset_spec_path():
    return os.environ.get("CMK_ATLAS_SPEC") or os.path.join(REPO_ROOT, "..", "shared", "atlas-api", "atlas-kms-subset.yaml")


@pytest.fixture(scope="module")
def spec_operations():
    subset_path = _subset_spec_path()
    if not os.path.exists(subset_path):
        pytest.fail(f"Atlas API spec not found at {subset_path}; set CMK_ATLAS_SPEC")
    with open(subset_path, encoding="utf-8") as handle:
        subset = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    operations = {}
    for path, item in subset["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                operations[operation["operationId"]] = (path, method.upper(), operation, subset)
    return operations


def _versions(content):
    """Versions of the Atlas media types in a content map, and whether each is sunset."""
    found = {}
    for media, entry in (content or {}).items():
        if media.startswith("application/vnd.atlas.") and media.endswith("+json"):
            found[media[len("application/vnd.atlas.") : -len("+json")]] = bool((entry or {}).get("x-sunset"))
    return found


def _resolve_parameters(operation, spec):
    names = []
    for parameter in operation.get("parameters", []):
        resolved = spec["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]] if "$ref" in parameter else parameter
        names.append(resolved["name"])
    return names


def test_operation_table_covers_every_operation_of_the_subset(spec_operations):
    assert set(atlas.OPERATIONS) == set(spec_operations)


@pytest.mark.parametrize("operation_id", sorted(atlas.OPERATIONS))
def test_operation_table_entry_matches_the_spec(spec_operations, operation_id):
    entry = atlas.OPERATIONS[operation_id]
    path, method, operation, subset = spec_operations[operation_id]
    assert (entry.method, entry.path) == (method, path)

    success = [response for code, response in operation["responses"].items() if str(code).startswith("2")]
    response_versions = {}
    for response in success:
        response_versions.update(_versions(response.get("content")))
    candidates = {version for version, sunset in response_versions.items() if not sunset}
    assert entry.version in response_versions, "the response must list the version"
    assert not response_versions[entry.version], "the response version must not be sunset"
    if "requestBody" in operation:
        request_versions = _versions(operation["requestBody"]["content"])
        assert entry.version in request_versions, "the request body must list the version"
        assert not request_versions[entry.version], "the request version must not be sunset"
        candidates &= {version for version, sunset in request_versions.items() if not sunset}
    # ISO dates sort as strings.
    assert entry.version == max(candidates), "the newest version without a sunset"

    parameters = _resolve_parameters(operation, subset)
    assert entry.paginated == ({"itemsPerPage", "pageNum"} <= set(parameters))
    assert entry.authenticated == (operation.get("security") != [])


# ---------------------------------------------------------------------------------------------
# Authentication


def test_digest_success_sends_the_key_as_digest_user(digest_server, harness):
    client = harness.client(digest_server.url)
    assert client.call("getGroupEncryptionAtRest", groupId=GROUP_ID) == {"ok": True, "path": f"/api/atlas/v2/groups/{GROUP_ID}/encryptionAtRest"}
    assert len(digest_server.of_kind("challenge")) == 1
    (request,) = digest_server.api
    assert request.headers["authorization"].startswith("Digest ")
    assert f'username="{PUBLIC_KEY}"' in request.headers["authorization"]
    assert PRIVATE_KEY not in request.headers["authorization"]


def test_digest_reuses_the_nonce_for_later_calls(digest_server, harness):
    client = harness.client(digest_server.url)
    for _attempt in range(3):
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert len(digest_server.of_kind("challenge")) == 1
    assert len(digest_server.api) == 3


def test_digest_wrong_key_fails_with_401_naming_the_options(digest_server, harness):
    client = harness.client(digest_server.url, private_key="not-the-right-private-key")
    with pytest.raises(atlas.AtlasApiError) as caught:
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    error = caught.value
    assert error.status == 401
    assert error.error_code == "UNAUTHORIZED"
    message = str(error)
    assert message.startswith(f"Atlas API getGroupEncryptionAtRest (GET /api/atlas/v2/groups/{GROUP_ID}/encryptionAtRest) failed with HTTP 401 UNAUTHORIZED")
    assert "public_key (or environment variable MONGODB_ATLAS_PUBLIC_KEY)" in message
    assert "private_key (or environment variable MONGODB_ATLAS_PRIVATE_KEY)" in message
    assert "not-the-right-private-key" not in message
    assert digest_server.api == []
    assert harness.sleeps == []


def test_oauth_token_request_shape_and_bearer_use(oauth_server, harness):
    client = harness.client(oauth_server.url, auth="oauth")
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    (token_request,) = oauth_server.of_kind("token")
    assert token_request.method == "POST"
    assert token_request.headers["accept"] == "application/json"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_request.body == b"grant_type=client_credentials"
    assert token_request.headers["authorization"] == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    (api_request,) = oauth_server.api
    assert api_request.headers["authorization"].split(" ", 1)[1] in oauth_server.tokens


def test_oauth_token_is_cached_for_its_lifetime_then_renewed(oauth_server, harness):
    oauth_server.token_lifetime = 3600
    client = harness.client(oauth_server.url, auth="oauth")
    for _attempt in range(3):
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert len(oauth_server.of_kind("token")) == 1
    harness.clock.now += 3600 - 61  # still inside lifetime minus the margin
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert len(oauth_server.of_kind("token")) == 1
    harness.clock.now += 2  # inside the margin: renewed before Atlas would refuse it
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert len(oauth_server.of_kind("token")) == 2
    assert len(oauth_server.api) == 5


def test_oauth_refreshes_once_on_401(oauth_server, harness):
    client = harness.client(oauth_server.url, auth="oauth")
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    oauth_server.tokens.clear()  # Atlas revoked the token early
    assert client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)["ok"] is True
    assert len(oauth_server.of_kind("token")) == 2
    assert len(oauth_server.of_kind("denied")) == 1
    assert len(oauth_server.api) == 2


def test_oauth_refreshes_only_once_when_401_persists(oauth_server, harness):
    client = harness.client(oauth_server.url, auth="oauth")
    oauth_server.revoke_tokens_on_issue = True
    with pytest.raises(atlas.AtlasApiError) as caught:
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert caught.value.status == 401
    assert "client_id (or environment variable MONGODB_ATLAS_CLIENT_ID)" in str(caught.value)
    assert len(oauth_server.of_kind("token")) == 2
    assert len(oauth_server.of_kind("denied")) == 2


def test_oauth_failed_token_names_client_id_never_the_secret(oauth_server, harness):
    client = harness.client(oauth_server.url, auth="oauth", client_secret="mdb_sa_sk_wrong_secret_value")
    with pytest.raises(atlas.AtlasTokenError) as caught:
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    message = str(caught.value)
    assert message.startswith(
        "Atlas did not issue an access token for the service account (POST /api/oauth/token): HTTP 401 invalid_client: Invalid client credentials."
    )
    assert "client_id (or environment variable MONGODB_ATLAS_CLIENT_ID)" in message
    assert "client_secret (or environment variable MONGODB_ATLAS_CLIENT_SECRET)" in message
    assert "mdb_sa_sk_wrong_secret_value" not in message
    assert oauth_server.api == []
    assert harness.sleeps == []


def test_oauth_token_response_without_token_is_an_error(oauth_server, harness):
    oauth_server.token_script.append((200, {"Content-Type": "application/json"}, json.dumps({"token_type": "Bearer"})))
    client = harness.client(oauth_server.url, auth="oauth")
    with pytest.raises(atlas.AtlasTokenError, match="no bearer access_token"):
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert oauth_server.api == []


def test_oauth_token_request_is_retried_on_503(oauth_server, harness):
    oauth_server.token_script.append(api_error(503, "SERVICE_UNAVAILABLE", "try later"))
    client = harness.client(oauth_server.url, auth="oauth")
    assert client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)["ok"] is True
    assert len(oauth_server.of_kind("token")) == 2
    assert harness.sleeps == [0.5]


def test_unauthenticated_operation_sends_no_credentials(oauth_server, harness):
    oauth_server.handler = lambda record: ok({"inbound": {}, "outbound": {"aws": {"us-east-1": ["3.92.113.229/32"]}}})
    client = harness.client(oauth_server.url, auth="oauth")
    assert client.call("listControlPlaneIpAddresses")["outbound"]["aws"]["us-east-1"] == ["3.92.113.229/32"]
    (request,) = oauth_server.api
    assert "authorization" not in request.headers
    assert oauth_server.of_kind("token") == []


# ---------------------------------------------------------------------------------------------
# Media types, paths, query, user agent


def _dummy_path_params(template):
    values = {"groupId": GROUP_ID, "roleId": ROLE_ID, "cloudProvider": "AWS", "clusterName": "Cluster0"}
    values.update(orgId="5f0000000000000000000001", endpointId="5f0000000000000000000002")
    return {name: values[name] for name in atlas._PATH_PARAMETER.findall(template)}


@pytest.mark.parametrize("operation_id", sorted(atlas.OPERATIONS))
def test_each_operation_sends_its_versioned_media_type(digest_server, harness, operation_id):
    operation = atlas.OPERATIONS[operation_id]
    digest_server.handler = lambda record: (204, {}, "") if record.method == "DELETE" else ok({"seen": record.path})
    client = harness.client(digest_server.url)
    body = {"providerName": "AWS"} if operation.method in ("POST", "PATCH") else None
    result = client.call(operation_id, body=body, **_dummy_path_params(operation.path))
    (request,) = digest_server.api
    expected_media_type = f"application/vnd.atlas.{operation.version}+json"
    assert request.method == operation.method
    assert request.path == operation.path.format(**_dummy_path_params(operation.path))
    assert request.headers["accept"] == expected_media_type
    if body is None:
        assert "content-type" not in request.headers
        assert request.body == b""
    else:
        assert request.headers["content-type"] == expected_media_type
        assert json.loads(request.body) == body
    assert result is None if operation.method == "DELETE" else result == {"seen": request.path}


def test_path_parameters_are_quoted_and_checked(digest_server, harness):
    client = harness.client(digest_server.url)
    client.call("getGroupCluster", groupId=GROUP_ID, clusterName="a b/c?d")
    assert digest_server.api[0].raw_path == f"/api/atlas/v2/groups/{GROUP_ID}/clusters/a%20b%2Fc%3Fd"
    with pytest.raises(atlas.AtlasConfigError, match="needs a value for its path parameter clusterName"):
        client.call("getGroupCluster", groupId=GROUP_ID, clusterName="")
    with pytest.raises(TypeError, match="no path parameter projectId"):
        client.call("getGroupCluster", groupId=GROUP_ID, clusterName="x", projectId="y")
    with pytest.raises(ValueError, match="unknown Atlas operation"):
        client.call("getEverything")
    assert len(digest_server.api) == 1


def test_query_booleans_are_lowercase_and_none_dropped(digest_server, harness):
    client = harness.client(digest_server.url)
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID, query={"pretty": False, "envelope": None, "x": 3})
    assert digest_server.api[0].query == {"pretty": "false", "x": "3"}


def test_user_agent_names_collection_ansible_and_python(digest_server, harness):
    client = harness.client(digest_server.url)
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    agent = digest_server.api[0].headers["user-agent"]
    assert agent.startswith(f"cmk.atlas/{version.COLLECTION_VERSION} ansible-core/")
    assert f"python/{sys.version_info[0]}.{sys.version_info[1]}." in agent


# ---------------------------------------------------------------------------------------------
# Retries


def test_429_honours_retry_after(digest_server, harness):
    status, headers, text = api_error(429, "RATE_LIMITED", "Too many requests", "Too Many Requests")
    headers["Retry-After"] = "7"
    digest_server.script.append((status, headers, text))
    client = harness.client(digest_server.url)
    assert client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)["ok"] is True
    assert harness.sleeps == [7.0]
    assert len(digest_server.api) == 2


def test_retry_after_is_capped(digest_server, harness):
    status, headers, text = api_error(429, "RATE_LIMITED", "Too many requests")
    headers["Retry-After"] = "86400"
    digest_server.script.append((status, headers, text))
    harness.client(digest_server.url).call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert harness.sleeps == [atlas.RETRY_AFTER_MAX_SECONDS]


def test_503_then_success_backs_off_with_jitter(digest_server, harness):
    digest_server.script.append(api_error(503, "SERVICE_UNAVAILABLE", "Service Unavailable"))
    client = harness.client(digest_server.url)
    assert client.call("updateGroupEncryptionAtRest", groupId=GROUP_ID, body={"awsKms": {"enabled": True}})["ok"] is True
    assert harness.sleeps == [0.5]  # jitter 0.5 of the first ceiling, 1 s
    assert len(digest_server.api) == 2


@pytest.mark.parametrize("method_operation", ["getGroupEncryptionAtRest", "createGroupCloudProviderAccess"])
def test_connection_reset_then_success(digest_server, harness, method_operation):
    client = harness.client(digest_server.url)
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)  # finishes the digest handshake
    digest_server.script.append(RESET)
    body = {"providerName": "AWS"} if method_operation.startswith("create") else None
    assert client.call(method_operation, groupId=GROUP_ID, body=body)["ok"] is True
    assert len(harness.sleeps) == 1
    assert len(digest_server.api) == 3


def test_400_is_not_retried(digest_server, harness):
    digest_server.script.append(api_error(400, "INVALID_ATTRIBUTE", "Invalid attribute awsKms specified.", "Bad Request"))
    client = harness.client(digest_server.url)
    with pytest.raises(atlas.AtlasApiError) as caught:
        client.call("updateGroupEncryptionAtRest", groupId=GROUP_ID, body={"awsKms": {}})
    assert caught.value.status == 400
    assert caught.value.attempts == 1
    assert harness.sleeps == []
    assert len(digest_server.api) == 1


@pytest.mark.parametrize(
    ("operation_id", "path", "retried"),
    [
        ("getGroupEncryptionAtRest", {"groupId": GROUP_ID}, True),
        # Idempotent writes: repeating one that did happen sets the same values again.
        ("authorizeGroupCloudProviderAccessRole", {"groupId": GROUP_ID, "roleId": ROLE_ID}, True),
        ("updateGroupEncryptionAtRest", {"groupId": GROUP_ID}, True),
        ("updateGroupCluster", {"groupId": GROUP_ID, "clusterName": "Cluster0"}, True),
        ("deauthorizeGroupCloudProviderAccessRole", {"groupId": GROUP_ID, "roleId": ROLE_ID, "cloudProvider": "AWS"}, True),
        # A repeated POST could create a second role.
        ("createGroupCloudProviderAccess", {"groupId": GROUP_ID}, False),
    ],
)
def test_500_is_retried_for_reads_and_idempotent_writes(digest_server, harness, operation_id, path, retried):
    digest_server.script.append(api_error(500, "UNEXPECTED_ERROR", "Unexpected error.", "Internal Server Error"))
    client = harness.client(digest_server.url)
    body = None if atlas.OPERATIONS[operation_id].method in ("GET", "DELETE") else {}
    if retried:
        assert client.call(operation_id, body=body, **path)["ok"] is True
        assert harness.sleeps == [0.5]
    else:
        with pytest.raises(atlas.AtlasApiError, match="HTTP 500 UNEXPECTED_ERROR"):
            client.call(operation_id, body=body, **path)
    assert len(digest_server.api) == (2 if retried else 1)


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried_for_writes_too(digest_server, harness, status):
    digest_server.script.append((status, {"Content-Type": "text/html"}, "<html>gateway</html>"))
    client = harness.client(digest_server.url)
    client.call("createGroupCloudProviderAccess", groupId=GROUP_ID, body={"providerName": "AWS"})
    assert len(digest_server.api) == 2


@pytest.mark.parametrize(
    ("operation_id", "retried"), [("getGroupEncryptionAtRest", True), ("updateGroupEncryptionAtRest", True), ("createGroupCloudProviderAccess", False)]
)
def test_read_timeout_is_retried_for_reads_and_idempotent_writes(digest_server, harness, operation_id, retried):
    client = harness.client(digest_server.url)
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    client.timeout = 0.2
    digest_server.script.append(HANG)
    body = None if operation_id.startswith("get") else {}
    if retried:
        assert client.call(operation_id, groupId=GROUP_ID, body=body)["ok"] is True
        assert len(digest_server.api) == 3
    else:
        with pytest.raises(atlas.AtlasConnectionError, match=r"createGroupCloudProviderAccess \(POST .*\) timed out .* after 1 attempt:"):
            client.call(operation_id, groupId=GROUP_ID, body=body)
        assert len(digest_server.api) == 2


def test_retries_exhausted_raises_the_last_error_with_attempt_count(digest_server, harness):
    digest_server.handler = lambda record: api_error(503, "SERVICE_UNAVAILABLE", "Atlas is busy.", "Service Unavailable")
    client = harness.client(digest_server.url, retries=2)
    with pytest.raises(atlas.AtlasApiError) as caught:
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert str(caught.value) == (
        f"Atlas API getGroupEncryptionAtRest (GET /api/atlas/v2/groups/{GROUP_ID}/encryptionAtRest) failed with HTTP 503 SERVICE_UNAVAILABLE: "
        "Atlas is busy. (after 3 attempts)"
    )
    assert caught.value.attempts == 3
    assert harness.sleeps == [0.5, 1.0]
    assert len(digest_server.api) == 3


def test_connection_refused_exhausted_raises_connection_error(harness):
    client = harness.client(f"http://127.0.0.1:{unused_port()}", retries=2)
    with pytest.raises(atlas.AtlasConnectionError) as caught:
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    message = str(caught.value)
    assert message.startswith(
        f"Atlas API getGroupEncryptionAtRest (GET /api/atlas/v2/groups/{GROUP_ID}/encryptionAtRest) could not reach Atlas at http://127.0.0.1:"
    )
    assert "after 3 attempts: ConnectionError:" in message
    assert caught.value.attempts == 3
    assert len(harness.sleeps) == 2


def test_retries_zero_means_one_attempt(digest_server, harness):
    digest_server.script.append(api_error(503, "SERVICE_UNAVAILABLE", "busy"))
    client = harness.client(digest_server.url, retries=0)
    with pytest.raises(atlas.AtlasApiError, match=r"HTTP 503 SERVICE_UNAVAILABLE: busy$"):
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert harness.sleeps == []


def test_backoff_grows_exponentially_and_is_capped(harness, digest_server):
    client = harness.client(digest_server.url)
    client._jitter = lambda: 0.999
    delays = [client.backoff_delay(attempt) for attempt in range(1, 10)]
    assert delays[:4] == pytest.approx([0.999, 1.998, 3.996, 7.992])
    assert max(delays) <= atlas.BACKOFF_MAX_SECONDS
    client._jitter = lambda: 0.0
    assert client.backoff_delay(5) == 0.0


def test_tls_failure_is_not_retried_and_mentions_validate_certs(harness):
    requests = pytest.importorskip("requests")

    class FailingSession(requests.Session):
        calls = 0

        def request(self, *args, **kwargs):
            FailingSession.calls += 1
            raise requests.exceptions.SSLError("certificate verify failed: self-signed certificate")

    client = atlas.AtlasClient.from_params(harness.params("https://atlas.example.test"), session=FailingSession(), sleep=harness.sleep)
    with pytest.raises(atlas.AtlasConnectionError, match="validate_certs") as caught:
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    assert "certificate verify failed" in str(caught.value)
    assert FailingSession.calls == 1
    assert harness.sleeps == []


# ---------------------------------------------------------------------------------------------
# Pagination


def _pages(items, with_total=True):
    def handler(record):
        per_page = int(record.query["itemsPerPage"])
        page = int(record.query["pageNum"])
        chunk = items[(page - 1) * per_page : page * per_page]
        body = {"results": chunk, "links": []}
        if with_total:
            body["totalCount"] = len(items)
        return ok(body)

    return handler


def test_paginate_yields_every_item_across_pages(digest_server, harness):
    items = [{"id": f"host{i}"} for i in range(7)]
    digest_server.handler = _pages(items)
    client = harness.client(digest_server.url)
    assert list(client.paginate("listGroupProcesses", groupId=GROUP_ID, items_per_page=3)) == items
    assert [request.query for request in digest_server.api] == [{"itemsPerPage": "3", "pageNum": str(page), "includeCount": "true"} for page in (1, 2, 3)]


def test_paginate_stops_when_total_counted_on_a_full_last_page(digest_server, harness):
    digest_server.handler = _pages([{"id": i} for i in range(6)])
    client = harness.client(digest_server.url)
    assert len(list(client.paginate("listGroupClusters", groupId=GROUP_ID, items_per_page=3))) == 6
    assert len(digest_server.api) == 2


def test_paginate_without_total_stops_on_an_empty_page(digest_server, harness):
    digest_server.handler = _pages([{"id": i} for i in range(4)], with_total=False)
    client = harness.client(digest_server.url)
    assert len(list(client.paginate("listGroupProcesses", groupId=GROUP_ID, items_per_page=2))) == 4
    assert len(digest_server.api) == 3


def test_paginate_rejects_bad_arguments(digest_server, harness):
    client = harness.client(digest_server.url)
    with pytest.raises(ValueError, match="not a paginated list"):
        list(client.paginate("getGroupEncryptionAtRest", groupId=GROUP_ID))
    with pytest.raises(ValueError, match="from 1 to 500"):
        list(client.paginate("listGroupProcesses", groupId=GROUP_ID, items_per_page=501))
    assert digest_server.api == []


# ---------------------------------------------------------------------------------------------
# Error message shapes


def test_api_error_message_and_fields(digest_server, harness):
    detail = "Atlas cannot assume the AWS IAM role arn:aws:iam::123456789012:role/atlas-kms."
    digest_server.script.append(api_error(400, "CANNOT_ASSUME_ROLE", detail, "Bad Request", parameters=["arn:aws:iam::123456789012:role/atlas-kms"]))
    client = harness.client(digest_server.url)
    with pytest.raises(atlas.AtlasApiError) as caught:
        client.call("updateGroupEncryptionAtRest", groupId=GROUP_ID, body={"awsKms": {"enabled": True}})
    error = caught.value
    assert str(error) == (
        f"Atlas API updateGroupEncryptionAtRest (PATCH /api/atlas/v2/groups/{GROUP_ID}/encryptionAtRest) failed with HTTP 400 CANNOT_ASSUME_ROLE: {detail}"
    )
    assert (error.status, error.error_code, error.detail, error.reason) == (400, "CANNOT_ASSUME_ROLE", detail, "Bad Request")
    assert error.parameters == ["arn:aws:iam::123456789012:role/atlas-kms"]
    assert (error.operation, error.method, error.path) == ("updateGroupEncryptionAtRest", "PATCH", f"/api/atlas/v2/groups/{GROUP_ID}/encryptionAtRest")
    assert error.as_dict()["error_code"] == "CANNOT_ASSUME_ROLE"
    assert error.as_dict()["message"] == str(error)


def test_api_error_accepts_parameters_as_objects(digest_server, harness):
    digest_server.script.append(api_error(404, "RESOURCE_NOT_FOUND", "Cannot find resource AWS", "Not Found", parameters=[{"name": "AWS"}]))
    with pytest.raises(atlas.AtlasApiError) as caught:
        harness.client(digest_server.url).call("getGroupCloudProviderAccess", groupId=GROUP_ID, roleId=ROLE_ID)
    assert caught.value.parameters == [{"name": "AWS"}]
    assert "HTTP 404 RESOURCE_NOT_FOUND: Cannot find resource AWS" in str(caught.value)


def test_non_json_error_body_is_shortened(digest_server, harness):
    page = "<html><body>" + "Bad gateway from the load balancer. " * 40 + "</body></html>"
    digest_server.handler = lambda record: (502, {"Content-Type": "text/html"}, page)
    client = harness.client(digest_server.url, retries=0)
    with pytest.raises(atlas.AtlasApiError) as caught:
        client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    message = str(caught.value)
    assert "failed with HTTP 502 Bad Gateway: <html><body>Bad gateway from the load balancer." in message
    assert message.endswith("...")
    assert len(message) < 400
    assert caught.value.error_code is None


def test_error_without_body_uses_the_reason_phrase(digest_server, harness):
    digest_server.script.append((409, {}, ""))
    with pytest.raises(atlas.AtlasApiError) as caught:
        harness.client(digest_server.url).call("updateGroupCluster", groupId=GROUP_ID, clusterName="c", body={})
    assert str(caught.value).endswith("failed with HTTP 409 Conflict")


def test_redirect_is_reported_not_followed(digest_server, harness):
    digest_server.script.append((301, {"Location": "https://cloud.mongodb.com/api/atlas/v2/x"}, ""))
    with pytest.raises(atlas.AtlasApiError, match=re.escape("redirects to https://cloud.mongodb.com/api/atlas/v2/x; set base_url")):
        harness.client(digest_server.url).call("updateGroupEncryptionAtRest", groupId=GROUP_ID, body={})
    assert len(digest_server.api) == 1


def test_group_not_found_names_project_id_and_what_to_check(digest_server, harness):
    digest_server.script.append(api_error(404, "GROUP_NOT_FOUND", f"No group with ID {GROUP_ID} exists.", "Not Found"))
    with pytest.raises(atlas.AtlasApiError) as caught:
        harness.client(digest_server.url).call("listGroupCloudProviderAccess", groupId=GROUP_ID)
    assert str(caught.value) == (
        f"Atlas API listGroupCloudProviderAccess (GET /api/atlas/v2/groups/{GROUP_ID}/cloudProviderAccess) failed with HTTP 404 GROUP_NOT_FOUND: "
        f"No group with ID {GROUP_ID} exists. {atlas.GROUP_NOT_FOUND_HINT}"
    )
    hint = atlas.GROUP_NOT_FOUND_HINT
    assert "project_id (cmk_atlas_project_id in the cmk.atlas playbooks)" in hint
    assert "24 hexadecimal digits" in hint and "Atlas UI" in hint
    assert "API key or service account" in hint and "access to that project" in hint
    assert caught.value.as_dict()["message"] == str(caught.value)
    assert len(digest_server.api) == 1


def test_403_says_which_access_the_credentials_lack(digest_server, harness):
    digest_server.script.append(api_error(403, "USER_CANNOT_ACCESS_ORG", "Cannot access this organization.", "Forbidden"))
    with pytest.raises(atlas.AtlasApiError) as caught:
        harness.client(digest_server.url).call("updateGroupEncryptionAtRest", groupId=GROUP_ID, body={})
    message = str(caught.value)
    assert message.endswith(f"HTTP 403 USER_CANNOT_ACCESS_ORG: Cannot access this organization. {atlas.FORBIDDEN_HINT}")
    assert "Project Owner" in message and "API access list" in message and "project_id" in message
    assert caught.value.hint is None  # the default hint is shown, not stored


def test_an_explicit_hint_replaces_the_default_one():
    error = atlas.AtlasApiError(404, operation="x", method="GET", path="/p", error_code="GROUP_NOT_FOUND", hint="Look elsewhere.")
    assert str(error).endswith("failed with HTTP 404 GROUP_NOT_FOUND. Look elsewhere.")


def test_success_that_is_not_json_is_an_error(digest_server, harness):
    digest_server.script.append((200, {"Content-Type": "text/html"}, "<html>login</html>"))
    with pytest.raises(atlas.AtlasApiError, match="the response is not JSON: <html>login</html>"):
        harness.client(digest_server.url).call("getGroupEncryptionAtRest", groupId=GROUP_ID)


# ---------------------------------------------------------------------------------------------
# Configuration errors: raised before any request


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {},
            [
                "Atlas credentials are missing",
                "public_key and private_key",
                "MONGODB_ATLAS_PUBLIC_KEY",
                "client_id and client_secret",
                "MONGODB_ATLAS_CLIENT_SECRET",
            ],
        ),
        (
            {"public_key": PUBLIC_KEY},
            [
                "incomplete: public_key (or environment variable MONGODB_ATLAS_PUBLIC_KEY) is set "
                "but private_key (or environment variable MONGODB_ATLAS_PRIVATE_KEY) is not"
            ],
        ),
        (
            {"private_key": PRIVATE_KEY},
            [
                "incomplete: private_key (or environment variable MONGODB_ATLAS_PRIVATE_KEY) is set "
                "but public_key (or environment variable MONGODB_ATLAS_PUBLIC_KEY) is not"
            ],
        ),
        (
            {"client_id": CLIENT_ID, "client_secret": " "},
            [
                "client_id (or environment variable MONGODB_ATLAS_CLIENT_ID) is set "
                "but client_secret (or environment variable MONGODB_ATLAS_CLIENT_SECRET) is not"
            ],
        ),
        (
            {"public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            ["ambiguous", "(public_key, private_key, client_id, client_secret)", "Set only public_key and private_key"],
        ),
        ({"private_key": PRIVATE_KEY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, ["ambiguous", "(private_key, client_id, client_secret)"]),
    ],
)
def test_credential_errors_name_options_and_environment(digest_server, params, expected):
    full = {"base_url": digest_server.url, "timeout": 5, "retries": 1}
    full.update(params)
    with pytest.raises(atlas.AtlasConfigError) as caught:
        atlas.AtlasClient.from_params(full)
    for text in expected:
        assert text in str(caught.value)
    for secret in (PRIVATE_KEY, CLIENT_SECRET):
        assert secret not in str(caught.value)
    assert digest_server.records == []


@pytest.mark.parametrize(
    "url",
    [
        "cloud.mongodb.com",
        "ftp://cloud.mongodb.com",
        "https://",
        "https:///api",
        "https://host:notaport",
        "https://host/?a=b",
        "https://host/#x",
        "https://exa mple.com",
        " ",
    ],
)
def test_bad_base_url_names_the_option_and_an_example(url):
    with pytest.raises(atlas.AtlasConfigError) as caught:
        atlas.AtlasClient.from_params({"base_url": url, "public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY})
    message = str(caught.value)
    assert message.startswith("base_url (or environment variable MONGODB_ATLAS_BASE_URL) ")
    assert "such as https://cloud.mongodb.com" in message


@pytest.mark.parametrize(
    ("url", "fixed"),
    [
        ("https://cloud.mongodb.com/api/atlas/v2", "https://cloud.mongodb.com"),
        ("https://cloud.mongodb.com/api/atlas/v2/", "https://cloud.mongodb.com"),
        ("https://cloud.mongodb.com/api/atlas/v1.0", "https://cloud.mongodb.com"),
        ("https://cloud.mongodb.com/api/atlas/v2/groups", "https://cloud.mongodb.com"),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080"),
        ("https://proxy.example.com/atlas/api/atlas/v2", "https://proxy.example.com/atlas"),
    ],
)
def test_base_url_with_the_api_path_is_refused_before_any_call(digest_server, url, fixed):
    with pytest.raises(atlas.AtlasConfigError) as caught:
        atlas.AtlasClient.from_params({"base_url": url, "public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY})
    assert str(caught.value) == (
        f"base_url (or environment variable MONGODB_ATLAS_BASE_URL) is '{url}'; "
        f"base_url is the Atlas host without the API path, e.g. https://cloud.mongodb.com: set it to {fixed}."
    )
    assert digest_server.records == []


def test_base_url_may_have_a_path_that_is_not_the_api():
    assert atlas.validate_base_url("https://proxy.example.com/atlas/") == "https://proxy.example.com/atlas"
    assert atlas.validate_base_url("https://apis.example.com/apiary") == "https://apis.example.com/apiary"


def test_empty_base_url_means_the_default():
    client = atlas.AtlasClient.from_params({"base_url": "", "public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY})
    assert client.base_url == atlas.DEFAULT_BASE_URL
    client.close()
    with pytest.raises(atlas.AtlasConfigError, match="is empty"):
        atlas.validate_base_url("")


def test_base_url_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(atlas.AtlasConfigError) as caught:
        atlas.validate_base_url("https://user:hunter2secret@cloud.mongodb.com")
    assert "hunter2secret" not in str(caught.value)
    assert "user name or password" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"), [("https://cloud.mongodb.com/", "https://cloud.mongodb.com"), ("http://127.0.0.1:8080//", "http://127.0.0.1:8080")]
)
def test_base_url_trailing_slash_tolerated(url, expected):
    assert atlas.validate_base_url(url) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"), [("timeout", 0, "positive number of seconds"), ("retries", -1, "0 or more"), ("retries", 1.5, "whole number")]
)
def test_bad_timeout_or_retries(name, value, expected):
    params = {"public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY, name: value}
    with pytest.raises(atlas.AtlasConfigError, match=expected) as caught:
        atlas.AtlasClient.from_params(params)
    assert str(caught.value).startswith(f"{name} is ")


def test_argument_spec_reads_the_environment(monkeypatch):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    monkeypatch.setenv("MONGODB_ATLAS_BASE_URL", "https://atlas.example.test/")
    monkeypatch.setenv("MONGODB_ATLAS_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("MONGODB_ATLAS_CLIENT_SECRET", CLIENT_SECRET)
    for name in ("MONGODB_ATLAS_PUBLIC_KEY", "MONGODB_ATLAS_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = ArgumentSpecValidator(atlas.atlas_argument_spec()).validate({})
    assert result.error_messages == []
    params = result.validated_parameters
    assert (params["timeout"], params["retries"], params["validate_certs"]) == (atlas.DEFAULT_TIMEOUT, atlas.DEFAULT_RETRIES, True)
    assert CLIENT_SECRET in result._no_log_values
    client = atlas.AtlasClient.from_params(params)
    assert client.base_url == "https://atlas.example.test"
    assert isinstance(client.auth_method, atlas.AtlasAuthMethodServiceAccount)
    client.close()


def test_argument_spec_marks_secrets_no_log():
    spec = atlas.atlas_argument_spec()
    assert sorted(spec) == ["base_url", "client_id", "client_secret", "private_key", "public_key", "retries", "timeout", "validate_certs"]
    assert spec["private_key"]["no_log"] is True
    assert spec["client_secret"]["no_log"] is True
    assert spec["public_key"]["no_log"] is False


# ---------------------------------------------------------------------------------------------
# Secrets never shown


def test_no_secret_in_messages_reprs_or_logs(oauth_server, digest_server, harness):
    texts = []
    # An error body that echoes credentials back.
    oauth_server.handler = lambda record: api_error(400, "BAD", f"got {record.headers['authorization']} and {CLIENT_SECRET}")
    service_client = harness.client(oauth_server.url, auth="oauth")
    with pytest.raises(atlas.AtlasApiError) as caught:
        service_client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    texts += [str(caught.value), repr(caught.value), json.dumps(caught.value.as_dict()), repr(service_client), repr(service_client.auth_method)]
    token = next(iter(oauth_server.tokens))
    assert atlas.REDACTED in caught.value.detail

    digest_server.handler = lambda record: (502, {}, f"upstream saw {PRIVATE_KEY}")
    key_client = harness.client(digest_server.url, retries=1)
    with pytest.raises(atlas.AtlasApiError) as caught:
        key_client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    texts += [str(caught.value), repr(key_client), repr(key_client.auth_method)]
    texts += harness.logs
    for make in ({"public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY, "client_secret": CLIENT_SECRET}, {"private_key": PRIVATE_KEY}):
        with pytest.raises(atlas.AtlasConfigError) as caught:
            atlas.AtlasClient.from_params(make)
        texts.append(str(caught.value))

    assert harness.logs, "the retry was logged"
    everything = "\n".join(texts)
    for secret in (PRIVATE_KEY, CLIENT_SECRET, token):
        assert secret not in everything


# ---------------------------------------------------------------------------------------------
# Request counting


def test_request_counts_by_operation_and_write(oauth_server, harness):
    oauth_server.script.append(api_error(503, "SERVICE_UNAVAILABLE", "busy"))
    oauth_server.handler = lambda record: ok({"results": [], "totalCount": 0}) if record.path.endswith("/processes") else ok({})
    client = harness.client(oauth_server.url, auth="oauth")
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    client.call("updateGroupEncryptionAtRest", groupId=GROUP_ID, body={})
    list(client.paginate("listGroupProcesses", groupId=GROUP_ID))
    assert client.request_counts == {
        atlas.TOKEN_OPERATION: {"method": "POST", "write": False, "calls": 1, "requests": 1},
        "getGroupEncryptionAtRest": {"method": "GET", "write": False, "calls": 2, "requests": 3},
        "updateGroupEncryptionAtRest": {"method": "PATCH", "write": True, "calls": 1, "requests": 1},
        "listGroupProcesses": {"method": "GET", "write": False, "calls": 1, "requests": 1},
    }
    assert client.request_summary() == {"calls": 5, "requests": 6, "write_calls": 1, "write_requests": 1}


# ---------------------------------------------------------------------------------------------
# retry_on_error_codes


def _propagation_error(code="CANNOT_ASSUME_ROLE"):
    return atlas.AtlasApiError(400, "authorizeGroupCloudProviderAccessRole", "PATCH", "/x", error_code=code, detail="not yet")


def test_retry_on_error_codes_until_success():
    timing = Clock()
    outcomes = [_propagation_error(), _propagation_error(), {"done": True}]

    def attempt():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert atlas.retry_on_error_codes(attempt, {"CANNOT_ASSUME_ROLE"}, 120, sleep=timing.sleep, clock=timing) == {"done": True}
    assert timing.sleeps == [5.0, 10.0]


def test_retry_on_error_codes_other_code_raises_at_once():
    timing = Clock()

    def attempt():
        raise _propagation_error("INVALID_ATTRIBUTE")

    with pytest.raises(atlas.AtlasApiError, match="INVALID_ATTRIBUTE"):
        atlas.retry_on_error_codes(attempt, {"CANNOT_ASSUME_ROLE"}, 120, sleep=timing.sleep, clock=timing)
    assert timing.sleeps == []


def test_retry_on_error_codes_gives_up_at_the_deadline():
    timing = Clock()
    calls = []

    def attempt():
        calls.append(timing.now)
        raise _propagation_error()

    with pytest.raises(atlas.AtlasApiError) as caught:
        atlas.retry_on_error_codes(attempt, {"CANNOT_ASSUME_ROLE"}, 40, sleep=timing.sleep, clock=timing, interval=5, max_interval=20)
    assert timing.sleeps == [5, 10, 20, 5]
    assert calls == [0, 5, 15, 35, 40]
    assert str(caught.value).endswith("CANNOT_ASSUME_ROLE: not yet (still CANNOT_ASSUME_ROLE after 5 tries over 40 s)")


# ---------------------------------------------------------------------------------------------
# Building a client from a module


class FailJson(Exception):
    pass


class FakeModule:
    def __init__(self, params):
        self.params = params
        self.debugged = []

    def debug(self, message):
        self.debugged.append(message)

    def fail_json(self, **result):
        raise FailJson(result)


def test_client_from_module_fails_with_the_config_message(digest_server):
    module = FakeModule({"base_url": digest_server.url, "public_key": PUBLIC_KEY})
    with pytest.raises(FailJson) as caught:
        atlas.atlas_client_from_module(module)
    assert "private_key (or environment variable MONGODB_ATLAS_PRIVATE_KEY)" in caught.value.args[0]["msg"]
    assert digest_server.records == []


def test_client_from_module_reports_missing_requests(monkeypatch):
    from ansible.module_utils.basic import missing_required_lib

    monkeypatch.setitem(sys.modules, "requests", None)  # makes `import requests` raise ImportError
    module = FakeModule({"public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY})
    with pytest.raises(FailJson) as caught:
        atlas.atlas_client_from_module(module)
    result = caught.value.args[0]
    assert result["msg"] == missing_required_lib("requests")
    assert "import of requests" in result["exception"]


def test_client_from_module_logs_through_module_debug(digest_server):
    module = FakeModule({"base_url": digest_server.url, "public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY})
    client = atlas.atlas_client_from_module(module)
    client.call("getGroupEncryptionAtRest", groupId=GROUP_ID)
    client.close()
    assert any("getGroupEncryptionAtRest GET" in line for line in module.debugged)


def test_fail_json_from_atlas_error_carries_the_fields():
    module = FakeModule({})
    with pytest.raises(FailJson) as caught:
        atlas.fail_json_from_atlas_error(module, _propagation_error(), changed=False)
    result = caught.value.args[0]
    assert result["msg"].startswith("Atlas API authorizeGroupCloudProviderAccessRole (PATCH /x) failed with HTTP 400 CANNOT_ASSUME_ROLE")
    assert result["atlas_error"]["status"] == 400
    assert result["changed"] is False


def test_importing_the_module_does_not_import_requests():
    code = (
        "import sys\n"
        "from ansible_collections.cmk.atlas.plugins.module_utils.atlas import client as atlas\n"
        "assert 'requests' not in sys.modules, 'requests imported'\n"
        "atlas.atlas_argument_spec()\n"
        "assert 'requests' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, ".ansible", "collections"))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# ---------------------------------------------------------------------------------------------
# Documentation fragments


def _fragment(module_name, variable="DOCUMENTATION"):
    import importlib

    fragment_module = importlib.import_module(f"ansible_collections.cmk.atlas.plugins.doc_fragments.{module_name}")
    return yaml.safe_load(getattr(fragment_module.ModuleDocFragment, variable))


def test_connection_fragment_matches_the_argument_spec():
    options = _fragment("atlas")["options"]
    spec = atlas.atlas_argument_spec()
    assert sorted(options) == sorted(spec)
    for name, option in spec.items():
        assert options[name]["type"] == option["type"], name
        assert options[name].get("default") == option.get("default"), name
        env = option.get("fallback", (None, []))[1]
        for variable in env:
            assert f"E({variable})" in " ".join(options[name]["description"]), name


def test_attribute_fragments_are_complete():
    with open(os.path.join(REPO_ROOT, "meta", "runtime.yml"), encoding="utf-8") as handle:
        groups = yaml.safe_load(handle)["action_groups"]
    action_group = _fragment("attributes", "ACTION_GROUP")["attributes"]["action_group"]
    assert action_group["membership"] == ["cmk.atlas.atlas"]
    assert "atlas" in groups
    for variable in ("CHECK_MODE_FULL", "CHECK_MODE_READ_ONLY", "DIFF_MODE_FULL", "DIFF_MODE_NONE", "INFO_MODULE", "ACTION_GROUP"):
        fragment = _fragment("attributes", variable)
        assert fragment["options"] == {}
        for name, attribute in fragment["attributes"].items():
            assert attribute["description"], (variable, name)
            assert attribute["support"] in ("full", "partial", "none", "N/A"), (variable, name)
