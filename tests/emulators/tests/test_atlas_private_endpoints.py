"""Encryption-at-rest private endpoints (AWS KMS over PrivateLink) of the Atlas emulator: lifecycle,
refusals, and the refusal to disable AWS KMS while endpoints exist."""

import time

import pytest
import requests

from emulators.atlas import AtlasEmulator
from emulators.atlas.contract import SpecContract
from emulators.atlas.testing import AtlasClient, Scenario, new_group_id, start_moto

PUBLIC, PRIVATE = "pe-public-key", "pe-private-key"
TRANSITION = 0.5
KMS = {"enabled": True, "customerMasterKeyID": "1234abcd-12ab-34cd-56ef-1234567890ab", "region": "US_EAST_1", "roleId": "66aa00000000000000000001"}


class Clock:
    """A clock the test moves by hand, so state transitions need no sleeping."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture(scope="module")
def moto_url():
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="module")
def emulator(moto_url):
    emu = AtlasEmulator(moto_url, contract=SpecContract(), private_endpoint_transition_seconds=TRANSITION)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def clock(emulator):
    emulator.clock = Clock()
    yield emulator.clock
    emulator.clock = time.time


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.reset()
    emulator.private_endpoint_transition_seconds = TRANSITION
    emulator.add_api_key(PUBLIC, PRIVATE)
    yield
    assert emulator.internal_errors() == []
    assert emulator.contract_violations() == []


@pytest.fixture
def api(emulator):
    return AtlasClient(emulator.base_url, PUBLIC, PRIVATE)


@pytest.fixture
def group(emulator):
    """A project whose AWS KMS encryption at rest requires private networking (seeded, no AWS check)."""
    group_id = emulator.add_project(new_group_id(), "private")
    emulator.set_encryption_at_rest(group_id, {**KMS, "requirePrivateNetworking": True})
    return group_id


def endpoints(group):
    return f"/groups/{group}/encryptionAtRest/AWS/privateEndpoints"


def create(api, group, region="US_EAST_1"):
    return api.post(endpoints(group), {"cloudProvider": "AWS", "regionName": region})


def test_endpoint_goes_initiating_then_active(api, group, clock):
    response = create(api, group)
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["cloudProvider"] == "AWS"
    assert created["regionName"] == "US_EAST_1"
    assert created["status"] == "INITIATING"
    assert "privateEndpointConnectionName" not in created
    path = f"{endpoints(group)}/{created['id']}"
    assert api.get(path).json()["status"] == "INITIATING"
    clock.advance(TRANSITION + 0.01)
    active = api.get(path).json()
    assert active["status"] == "ACTIVE"
    assert active["privateEndpointConnectionName"].startswith("vpce-")
    assert "errorMessage" not in active


def test_list_is_paginated(api, group):
    ids = [create(api, group, region).json()["id"] for region in ("US_EAST_1", "US_EAST_2", "EU_WEST_1")]
    body = api.get(endpoints(group)).json()
    assert [e["id"] for e in body["results"]] == ids
    assert body["totalCount"] == 3
    page = api.get(f"{endpoints(group)}?itemsPerPage=2&pageNum=2").json()
    assert [e["id"] for e in page["results"]] == ids[2:]
    # Azure Key Vault cannot be enabled in the emulator: never any endpoints.
    assert api.get(f"/groups/{group}/encryptionAtRest/AZURE/privateEndpoints").json()["results"] == []


def test_delete_goes_deleting_then_gone(api, group, clock, emulator):
    endpoint_id = create(api, group).json()["id"]
    path = f"{endpoints(group)}/{endpoint_id}"
    clock.advance(TRANSITION + 0.01)
    response = api.delete(path)
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(path).json()["status"] == "DELETING"
    assert emulator.project_state(group)["privateEndpoints"][0]["status"] == "DELETING"
    # A second request while it is being deleted changes nothing.
    assert api.delete(path).status_code == 204
    clock.advance(TRANSITION + 0.01)
    gone = api.get(path)
    assert gone.status_code == 404
    assert gone.json()["errorCode"] == "RESOURCE_NOT_FOUND"
    assert api.get(endpoints(group)).json()["results"] == []
    assert emulator.project_state(group)["privateEndpoints"] == []
    assert api.delete(path).status_code == 404


def test_delete_is_refused_while_initiating(api, group, clock):
    endpoint_id = create(api, group).json()["id"]
    response = api.delete(f"{endpoints(group)}/{endpoint_id}")
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_DELETE_BLOCKED_DURING_PROVISIONING"
    assert endpoint_id in body["detail"]
    assert api.get(f"{endpoints(group)}/{endpoint_id}").json()["status"] == "INITIATING"


def test_failed_endpoint_carries_an_error_message_and_can_be_deleted(api, group, clock, emulator):
    emulator.fail_next_private_endpoint(group, "The AWS account has reached its VPC endpoint limit.")
    failing = create(api, group).json()
    assert failing["status"] == "INITIATING"
    clock.advance(TRANSITION + 0.01)
    failed = api.get(f"{endpoints(group)}/{failing['id']}").json()
    assert failed["status"] == "FAILED"
    assert failed["errorMessage"] == "The AWS account has reached its VPC endpoint limit."
    # Only the next one fails.
    other = create(api, group, "EU_WEST_1").json()
    clock.advance(TRANSITION + 0.01)
    assert api.get(f"{endpoints(group)}/{other['id']}").json()["status"] == "ACTIVE"
    assert api.delete(f"{endpoints(group)}/{failing['id']}").status_code == 204


def test_a_region_takes_one_endpoint(api, group, clock):
    first = create(api, group).json()
    duplicate = create(api, group)
    assert duplicate.status_code == 400
    assert duplicate.json()["errorCode"] == "ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_ALREADY_EXISTS"
    clock.advance(TRANSITION + 0.01)
    assert api.delete(f"{endpoints(group)}/{first['id']}").status_code == 204
    # Once the old one is being deleted, the region is free again.
    assert create(api, group).status_code == 202


def test_creating_needs_aws_kms_with_private_networking(api, emulator):
    plain = emulator.add_project(new_group_id(), "plain")
    response = create(api, plain)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "ENCRYPTION_AT_REST_PRIVATE_NETWORKING_NOT_ENABLED"
    emulator.set_encryption_at_rest(plain, KMS)
    assert create(api, plain).json()["errorCode"] == "ENCRYPTION_AT_REST_PRIVATE_NETWORKING_NOT_ENABLED"
    assert emulator.project_state(plain)["privateEndpoints"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cloudProvider": "AWS", "regionName": "GLOBAL"}, "regionName"),
        ({"cloudProvider": "AWS", "regionName": "us-east-1"}, "regionName"),
    ],
)
def test_bad_bodies_are_validation_errors(api, group, body, field):
    response = api.post(endpoints(group), body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "VALIDATION_ERROR"
    assert field in {f["field"] for f in response.json()["badRequestDetail"]["fields"]}


@pytest.mark.allow_contract_violations
def test_body_without_cloud_provider_is_refused(api, group, emulator):
    # The spec's discriminator makes cloudProvider required; the emulator refuses what breaks it.
    response = api.post(endpoints(group), {"regionName": "US_EAST_1"})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "VALIDATION_ERROR"


def test_azure_and_unknown_providers(api, group):
    azure = api.post(f"/groups/{group}/encryptionAtRest/AZURE/privateEndpoints", {"cloudProvider": "AZURE", "regionName": "US_EAST_2"})
    assert azure.status_code == 400
    assert azure.json()["errorCode"] == "VALIDATION_ERROR"
    gcp = api.get(f"/groups/{group}/encryptionAtRest/GCP/privateEndpoints")
    assert gcp.status_code == 400
    endpoint_id = create(api, group).json()["id"]
    assert api.get(f"/groups/{group}/encryptionAtRest/AZURE/privateEndpoints/{endpoint_id}").status_code == 404


def test_unknown_group_and_endpoint(api, group):
    missing = api.get(endpoints(new_group_id()))
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "GROUP_NOT_FOUND"
    assert api.get(f"{endpoints(group)}/{new_group_id()}").status_code == 404
    assert api.get(f"{endpoints(group)}/not-hex").status_code == 404


def test_disabling_aws_kms_is_refused_while_endpoints_exist(api, group, clock, emulator):
    endpoint_id = create(api, group).json()["id"]
    disable = {"awsKms": {"enabled": False}}
    response = api.patch(f"/groups/{group}/encryptionAtRest", disable)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "CANNOT_DISABLE_ENCRYPTION_AT_REST_DUE_TO_PRIVATE_ENDPOINTS"
    assert emulator.project_state(group)["encryptionAtRest"]["enabled"] is True
    clock.advance(TRANSITION + 0.01)
    assert api.delete(f"{endpoints(group)}/{endpoint_id}").status_code == 204
    # Still there while DELETING.
    assert api.patch(f"/groups/{group}/encryptionAtRest", disable).status_code == 400
    clock.advance(TRANSITION + 0.01)
    response = api.patch(f"/groups/{group}/encryptionAtRest", disable)
    assert response.status_code == 200, response.text
    assert response.json()["awsKms"]["enabled"] is False


def test_enabled_through_the_api_with_private_networking(emulator, moto_url, api):
    scenario = Scenario(emulator, moto_url, api, role_account="444444444444", region="US_EAST_1")
    scenario.ready_role()
    response = scenario.enable(requirePrivateNetworking=True)
    assert response.status_code == 200, response.text
    assert response.json()["awsKms"]["requirePrivateNetworking"] is True
    assert create(api, scenario.group_id).status_code == 202


def test_control_api(emulator, api, group, clock):
    control = f"{emulator.base_url}/__emulator"
    assert requests.post(f"{control}/projects/{group}/private-endpoint-failure", json={"error_message": "boom"}, timeout=10).status_code == 200
    assert requests.get(f"{control}/projects/{group}", timeout=10).json()["nextPrivateEndpointFailure"] == "boom"
    assert requests.post(f"{control}/private-endpoint-transition", json={"seconds": 5}, timeout=10).status_code == 200
    endpoint_id = create(api, group).json()["id"]
    clock.advance(TRANSITION + 0.01)
    assert api.get(f"{endpoints(group)}/{endpoint_id}").json()["status"] == "INITIATING"
    clock.advance(5)
    state = requests.get(f"{control}/projects/{group}", timeout=10).json()
    assert state["privateEndpoints"][0]["status"] == "FAILED"
    assert state["privateEndpoints"][0]["errorMessage"] == "boom"
    assert state["nextPrivateEndpointFailure"] is None
