"""Authentication, versioned media types, fault injection, request log and the control API of the
Atlas emulator."""

import datetime
import hashlib
import time

import pytest
import requests

from emulators.atlas import AtlasEmulator
from emulators.atlas.auth import parse_digest
from emulators.atlas.contract import SpecContract
from emulators.atlas.testing import AtlasClient, new_group_id, oauth_token, start_moto

PUBLIC, PRIVATE = "http-public-key", "http-private-key"
V1 = "application/vnd.atlas.2023-01-01+json"
UNAUTHORIZED_BODY = {"detail": "You are not authorized for this resource.", "error": 401, "errorCode": "", "parameters": [], "reason": "Unauthorized"}


@pytest.fixture(scope="module")
def moto_url():
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="module")
def emulator(moto_url):
    emu = AtlasEmulator(moto_url, cluster_transition_seconds=0.2, contract=SpecContract())
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.reset()
    emulator.clock = time.time
    emulator.today = datetime.date.today
    emulator.add_api_key(PUBLIC, PRIVATE)
    yield
    assert emulator.internal_errors() == []
    assert emulator.contract_violations() == []


@pytest.fixture
def group(emulator):
    group_id = new_group_id()
    emulator.add_project(group_id, "http")
    emulator.add_cluster(group_id, "c0")
    return group_id


@pytest.fixture
def api(emulator):
    return AtlasClient(emulator.base_url, PUBLIC, PRIVATE)


def url(emulator, path):
    return f"{emulator.base_url}/api/atlas/v2{path}"


# -- HTTP digest -------------------------------------------------------------------------------------


def test_digest_authentication(api, group):
    assert api.get(f"/groups/{group}/cloudProviderAccess").status_code == 200


@pytest.mark.parametrize(("public", "private"), [(PUBLIC, "wrong"), ("unknown", PRIVATE)])
def test_wrong_api_key_gets_the_real_401(emulator, group, public, private):
    response = AtlasClient(emulator.base_url, public, private).get(f"/groups/{group}/cloudProviderAccess")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == UNAUTHORIZED_BODY
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Digest realm="MMS Public API"')
    assert 'qop="auth"' in challenge
    assert "algorithm=MD5" in challenge


def test_no_credentials_gets_a_challenge(emulator, group):
    response = requests.get(url(emulator, f"/groups/{group}/cloudProviderAccess"), headers={"Accept": V1}, timeout=10)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED_BODY
    assert parse_digest(response.headers["WWW-Authenticate"])["nonce"]


def _digest_header(method, uri, nonce, nc, public=PUBLIC, private=PRIVATE, realm="MMS Public API"):
    def md5(text):
        return hashlib.md5(text.encode()).hexdigest()  # RFC 2617

    cnonce = "0a4f113b"
    ha1, ha2 = md5(f"{public}:{realm}:{private}"), md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{public}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5, '
        f'response="{response}", qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    )


def test_digest_nonce_tracking(emulator, group):
    uri = f"/api/atlas/v2/groups/{group}/cloudProviderAccess"
    challenge = requests.get(f"{emulator.base_url}{uri}", headers={"Accept": V1}, timeout=10)
    nonce = parse_digest(challenge.headers["WWW-Authenticate"])["nonce"]

    def send(nc, nonce=nonce, path=uri):
        headers = {"Accept": V1, "Authorization": _digest_header("GET", path, nonce, nc)}
        return requests.get(f"{emulator.base_url}{uri}", headers=headers, timeout=10)

    assert send(1).status_code == 200
    assert send(2).status_code == 200
    assert send(2).status_code == 401  # replayed nonce count
    stale = send(1, nonce="f" * 32)
    assert stale.status_code == 401
    assert "stale=true" in stale.headers["WWW-Authenticate"]
    assert send(3, path=f"/api/atlas/v2/groups/{group}/encryptionAtRest").status_code == 401  # digest of another URI


# -- OAuth2 service accounts -------------------------------------------------------------------------


def test_service_account_token_and_bearer(emulator, group):
    emulator.add_service_account("mdb_sa_id_1", "mdb_sa_sk_1", token_lifetime=60)
    response = requests.post(f"{emulator.base_url}/api/oauth/token", auth=("mdb_sa_id_1", "mdb_sa_sk_1"), data={"grant_type": "client_credentials"}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    bearer = AtlasClient(emulator.base_url, token=body["access_token"])
    assert bearer.get(f"/groups/{group}/cloudProviderAccess").status_code == 200
    assert AtlasClient(emulator.base_url, token="not-a-token").get(f"/groups/{group}/cloudProviderAccess").status_code == 401


def test_bearer_tokens_expire(emulator, group):
    emulator.add_service_account("sa", "secret", token_lifetime=30)
    bearer = AtlasClient(emulator.base_url, token=oauth_token(emulator.base_url, "sa", "secret"))
    assert bearer.get(f"/groups/{group}/cloudProviderAccess").status_code == 200
    emulator.clock = lambda: time.time() + 31
    expired = bearer.get(f"/groups/{group}/cloudProviderAccess")
    assert expired.status_code == 401
    assert expired.json() == UNAUTHORIZED_BODY


def test_token_endpoint_refusals(emulator):
    emulator.add_service_account("sa", "secret")
    token_url = f"{emulator.base_url}/api/oauth/token"
    wrong = requests.post(token_url, auth=("sa", "nope"), data={"grant_type": "client_credentials"}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    grant = requests.post(token_url, auth=("sa", "secret"), data={"grant_type": "password"}, timeout=10)
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"
    anonymous = requests.post(token_url, data={"grant_type": "client_credentials"}, timeout=10)
    assert anonymous.status_code == 401


# -- versioned media types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [None, "application/json", "*/*", "application/vnd.atlas.2024-08-05+json", "application/vnd.atlas.2023-01-02+json", "application/vnd.atlas.preview+json"],
)
def test_unlisted_versions_are_refused(api, group, accept):
    response = api.get(f"/groups/{group}/encryptionAtRest", headers={"Accept": accept} if accept else {"Accept": None})
    assert response.status_code == 406
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "Invalid accept header or version date.",
        "error": 406,
        "errorCode": "INVALID_VERSION_DATE",
        "parameters": [],
        "reason": "Not Acceptable",
    }


def test_accept_lists_and_parameters(api, group):
    response = api.get(f"/groups/{group}/encryptionAtRest", headers={"Accept": f"application/json, {V1};charset=utf-8"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == V1


def test_body_media_type_must_be_a_listed_version(api, group):
    path = f"/groups/{group}/cloudProviderAccess"
    assert api.post(path, {"providerName": "AWS"}, headers={"Content-Type": "application/json"}).status_code == 406
    assert api.post(path, {"providerName": "AWS"}, content_version="2024-08-05").status_code == 406
    assert api.post(path, {"providerName": "AWS"}).status_code == 200


def test_malformed_json_and_missing_body(api, group):
    malformed = api.post(f"/groups/{group}/cloudProviderAccess", "{not json")
    assert malformed.status_code == 400
    assert malformed.json()["errorCode"] == "INVALID_JSON"
    empty = api.request("POST", f"/groups/{group}/cloudProviderAccess", headers={"Content-Type": V1})
    assert empty.status_code == 400


def test_sunset_versions_are_gone(emulator, api, group):
    emulator.today = lambda: datetime.date(2027, 7, 1)
    gone = api.get(f"/groups/{group}/clusters/c0", version="2023-02-01")
    assert gone.status_code == 410
    assert gone.json()["errorCode"] == "VERSION_GONE"
    assert api.get(f"/groups/{group}/clusters/c0", version="2024-08-05").status_code == 200


def test_unknown_path_and_method(emulator, api, group):
    assert api.get("/groups/nothing/here").status_code == 404
    assert api.request("PUT", f"/groups/{group}/encryptionAtRest", body={}).status_code == 405


# -- faults ------------------------------------------------------------------------------------------


def test_rate_limit_with_retry_after_for_the_next_calls(emulator, api, group):
    emulator.inject_fault("getGroupEncryptionAtRest", status=429, count=2, retry_after=3)
    for _attempt in range(2):
        response = api.get(f"/groups/{group}/encryptionAtRest")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json()["errorCode"] == "RATE_LIMITED"
    assert api.get(f"/groups/{group}/encryptionAtRest").status_code == 200
    # Other operations were never affected.
    assert api.get(f"/groups/{group}/cloudProviderAccess").status_code == 200


def test_service_unavailable_does_not_change_state(emulator, api, group):
    emulator.inject_fault("createGroupCloudProviderAccess", status=503, count=1)
    response = api.post(f"/groups/{group}/cloudProviderAccess", {"providerName": "AWS"})
    assert response.status_code == 503
    assert response.json()["errorCode"] == "SERVICE_UNAVAILABLE"
    assert emulator.project_state(group)["roles"] == []
    assert api.post(f"/groups/{group}/cloudProviderAccess", {"providerName": "AWS"}).status_code == 200
    assert len(emulator.project_state(group)["roles"]) == 1


def test_slow_responses_and_any_operation(emulator, api, group):
    assert api.get(f"/groups/{group}/processes").status_code == 200  # digest handshake done
    emulator.inject_fault("*", status=None, delay=0.3)
    started = time.monotonic()
    assert api.get(f"/groups/{group}/processes").status_code == 200
    assert time.monotonic() - started >= 0.3
    emulator.inject_fault("*", status=500, delay=0.1)
    response = api.get(f"/groups/{group}/clusters/c0")
    assert response.status_code == 500
    assert response.json()["errorCode"] == "UNEXPECTED_ERROR"


def test_faults_count_authenticated_calls_only(emulator, group):
    emulator.inject_fault("listGroupCloudProviderAccess", status=429, count=1)
    client = AtlasClient(emulator.base_url, PUBLIC, PRIVATE)  # a new session: its first request is challenged
    assert client.get(f"/groups/{group}/cloudProviderAccess").status_code == 429
    assert client.get(f"/groups/{group}/cloudProviderAccess").status_code == 200


# -- request log, reset, control API -----------------------------------------------------------------


def test_request_log(emulator, api, group):
    emulator.clear_request_log()
    api.get(f"/groups/{group}/cloudProviderAccess")
    api.post(f"/groups/{group}/cloudProviderAccess", {"providerName": "AWS"})
    emulator.inject_fault("getGroupEncryptionAtRest", status=429)
    api.get(f"/groups/{group}/encryptionAtRest")
    log = emulator.request_log()
    assert [(e["method"], e["operation_id"], e["status"], e["write"]) for e in log] == [
        ("GET", "listGroupCloudProviderAccess", 401, False),
        ("GET", "listGroupCloudProviderAccess", 200, False),
        ("POST", "createGroupCloudProviderAccess", 200, True),
        ("GET", "getGroupEncryptionAtRest", 429, False),
    ]
    assert log[0]["path"] == f"/api/atlas/v2/groups/{group}/cloudProviderAccess"
    emulator.clear_request_log()
    assert emulator.request_log() == []


def test_reset_drops_everything(emulator, api, group):
    emulator.inject_fault("*", status=503, count=5)
    emulator.reset()
    emulator.add_api_key(PUBLIC, PRIVATE)
    missing = api.get(f"/groups/{group}/cloudProviderAccess")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "GROUP_NOT_FOUND"
    assert [e["status"] for e in emulator.request_log()] == [401, 404]


def test_http_control_api(emulator, moto_url):
    control = f"{emulator.base_url}/__emulator"
    group = new_group_id()
    assert requests.post(f"{control}/api-keys", json={"public_key": "k2", "private_key": "p2"}, timeout=10).status_code == 200
    assert requests.post(f"{control}/projects", json={"group_id": group, "name": "demo"}, timeout=10).json() == {"group_id": group}
    nodes = [{"hostname": "x0-shard-00-00.fghij.mongodb.net", "port": 27017, "public_ip": "203.0.113.50"}]
    assert requests.post(f"{control}/projects/{group}/clusters", json={"name": "x0", "nodes": nodes}, timeout=10).status_code == 200
    ip = {"hostname": nodes[0]["hostname"], "ip": "203.0.113.51"}
    assert requests.post(f"{control}/projects/{group}/clusters/x0/node-ip", json=ip, timeout=10).status_code == 200
    seed = {"aws_kms": {"enabled": True, "customerMasterKeyID": "k", "region": "US_EAST_1", "accessKeyID": "AKIA0000000000000000", "secretAccessKey": "s"}}
    assert requests.post(f"{control}/projects/{group}/encryption-at-rest", json=seed, timeout=10).status_code == 200
    assert requests.post(f"{control}/faults", json={"operation_id": "getGroupCluster", "status": 503}, timeout=10).status_code == 200
    assert requests.post(f"{control}/propagation-delay", json={"seconds": 0}, timeout=10).status_code == 200
    state = requests.get(f"{control}/projects/{group}", timeout=10).json()
    assert state["clusters"]["x0"]["nodes"][0]["public_ip"] == "203.0.113.51"
    assert state["encryptionAtRest"]["credentialsStored"] is True
    client = AtlasClient(emulator.base_url, "k2", "p2")
    assert client.get(f"/groups/{group}/clusters/x0").status_code == 503
    log = requests.get(f"{control}/requests", timeout=10).json()
    assert all(not e["path"].startswith("/__emulator") for e in log)
    assert [e["status"] for e in log] == [401, 503]
    assert requests.delete(f"{control}/requests", timeout=10).status_code == 200
    assert requests.get(f"{control}/requests", timeout=10).json() == []
    assert requests.get(f"{control}/contract-violations", timeout=10).json() == []
    assert requests.get(f"{control}/nothing", timeout=10).status_code == 404
    assert requests.post(f"{control}/reset", timeout=10).status_code == 200
    assert requests.get(f"{control}/projects/{group}", timeout=10).status_code == 404


def test_the_emulator_records_what_breaks_the_spec(emulator, api, group, monkeypatch):
    monkeypatch.setattr(emulator, "_control_plane_ips", lambda call: (200, {"outbound": {"aws": {"us-east-1": "198.51.100.10/32"}}}))
    assert api.get("/unauth/controlPlaneIPAddresses").status_code == 200
    # Accepted by the emulator (it ignores read-only fields), but not a valid request for the spec.
    assert api.patch(f"/groups/{group}/clusters/c0", {"stateName": "IDLE"}).status_code == 200
    found = emulator.contract_violations()
    assert any("listControlPlaneIpAddresses" in v and "response" in v for v in found)
    assert any("updateGroupCluster" in v and "request" in v for v in found)
    emulator.reset()
