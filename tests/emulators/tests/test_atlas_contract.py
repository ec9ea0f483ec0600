"""The contract checker itself: it loads the official spec, agrees with the emulator's version table and
rejects bodies that break the spec (so a clean run of the other tests means something)."""

import os

import pytest

from emulators.atlas import contract as contract_module
from emulators.atlas.contract import SpecContract, default_spec_path
from emulators.atlas.server import ROUTES, VERSIONS

GROUP = "5f1e2d3c4b5a69788796a5b4"
V1 = "application/vnd.atlas.2023-01-01+json"
ACCEPT = {"Accept": V1}
AUTH = {"Authorization": 'Digest username="k", realm="MMS Public API"'}
JSON_ERROR = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def contract():
    return SpecContract()


def ok_headers(version="2023-01-01"):
    return {"Content-Type": f"application/vnd.atlas.{version}+json"}


def test_spec_path_is_outside_the_project_and_overridable(monkeypatch, tmp_path):
    path = default_spec_path()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert not os.path.abspath(path).startswith(repo + os.sep)
    assert path.endswith(os.path.join("shared", "atlas-api", "atlas-kms-subset.yaml"))
    monkeypatch.setenv(contract_module.SPEC_ENV, str(tmp_path / "spec.yaml"))
    assert default_spec_path() == str(tmp_path / "spec.yaml")


def test_every_emulated_operation_is_in_the_spec_with_the_same_versions(contract):
    assert sorted(VERSIONS) == contract.operation_ids()
    for operation_id, (responses, requests) in VERSIONS.items():
        spec = contract.versions(operation_id)
        assert spec["response"] == responses, operation_id
        assert spec["request"] == requests, operation_id
    assert {route[2] for route in ROUTES} == set(VERSIONS)


def test_list_clusters_comes_from_the_full_spec(contract):
    found = contract.operation("GET", f"/api/atlas/v2/groups/{GROUP}/clusters")
    op, params = found[1], found[2]
    assert op["operationId"] == "listGroupClusters"
    assert params == {"groupId": GROUP}


def test_valid_bodies_pass(contract):
    role = {
        "providerName": "AWS",
        "roleId": GROUP,
        "atlasAWSAccountArn": "arn:aws:iam::536727724300:root",
        "atlasAssumedRoleExternalId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "createdDate": "2024-01-01T00:00:00Z",
        "featureUsages": [{"featureType": "ENCRYPTION_AT_REST", "featureId": None}],
    }
    path = f"/api/atlas/v2/groups/{GROUP}/cloudProviderAccess"
    assert contract.validate_response("POST", path, ACCEPT, 200, ok_headers(), role) == []
    assert contract.validate_request("POST", path, {**AUTH, **ACCEPT, **ok_headers()}, {"providerName": "AWS"}) == []
    bearer = {"Authorization": "Bearer abc"}
    assert contract.validate_request("POST", path, {**bearer, **ACCEPT, **ok_headers()}, {"providerName": "AWS"}) == []


def test_requests_without_credentials_are_caught(contract):
    path = f"/api/atlas/v2/groups/{GROUP}/cloudProviderAccess"
    assert contract.validate_request("GET", path, ACCEPT, None)
    assert contract.validate_request("GET", path, {**ACCEPT, "Authorization": "Basic eDp5"}, None)
    assert contract.validate_request("GET", "/api/atlas/v2/unauth/controlPlaneIPAddresses", {"Accept": "application/vnd.atlas.2023-11-15+json"}, None) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"awsKms": {"enabled": "yes"}}, "enabled"),
        ({"awsKms": {"region": "us-east-1"}}, "region"),
        ({"awsKms": {"roleId": "not-hex"}}, "roleId"),
        ({"awsKms": {"secretAccessKey": "s3cr3t"}}, "secretAccessKey"),  # write-only: never in a response
    ],
)
def test_bad_response_bodies_are_caught(contract, body, expected):
    found = contract.validate_response("GET", f"/api/atlas/v2/groups/{GROUP}/encryptionAtRest", ACCEPT, 200, ok_headers(), body)
    assert found
    assert expected in " ".join(found)


def test_bad_requests_are_caught(contract):
    path = f"/api/atlas/v2/groups/{GROUP}/encryptionAtRest"
    headers = {**AUTH, **ACCEPT, **ok_headers()}
    assert contract.validate_request("PATCH", path, headers, {"awsKms": {"enabled": True, "valid": True}})  # read-only field
    assert contract.validate_request("PATCH", path, {**AUTH, **ACCEPT, "Content-Type": "application/json"}, {"awsKms": {}})
    cluster = f"/api/atlas/v2/groups/{GROUP}/clusters/c0"
    v2024 = {**AUTH, "Accept": "application/vnd.atlas.2024-10-23+json", "Content-Type": "application/vnd.atlas.2024-10-23+json"}
    assert contract.validate_request("PATCH", cluster, v2024, {"encryptionAtRestProvider": "AWS"}) == []
    assert contract.validate_request("PATCH", cluster, v2024, {"encryptionAtRestProvider": "KMS"})
    assert contract.validate_request("GET", "/api/atlas/v2/groups/not-a-group/encryptionAtRest", {**AUTH, **ACCEPT}, None)


def test_response_media_type_must_match_the_request(contract):
    path = f"/api/atlas/v2/groups/{GROUP}/clusters/c0"
    body = {"name": "c0", "stateName": "IDLE"}
    accept = {"Accept": "application/vnd.atlas.2024-08-05+json"}
    assert contract.validate_response("GET", path, accept, 200, ok_headers("2024-08-05"), body) == []
    assert contract.validate_response("GET", path, accept, 200, ok_headers("2023-02-01"), body)
    assert contract.validate_response("GET", path, accept, 200, {"Content-Type": "application/json"}, body)


def test_error_bodies_are_checked(contract):
    path = f"/api/atlas/v2/groups/{GROUP}/encryptionAtRest"
    good = {"detail": "x", "error": 404, "errorCode": "GROUP_NOT_FOUND", "parameters": [], "reason": "Not Found"}
    assert contract.validate_response("GET", path, ACCEPT, 404, JSON_ERROR, good) == []
    assert contract.validate_response("GET", path, ACCEPT, 404, JSON_ERROR, {**good, "parameters": ["bare string"]})
    assert contract.validate_response("GET", path, ACCEPT, 404, JSON_ERROR, {"error": 404})
    assert contract.validate_response("GET", path, ACCEPT, 404, ok_headers(), good)
    # Statuses outside the operation's list: only the platform-wide ones, still as ApiError.
    assert contract.validate_response("GET", path, ACCEPT, 406, JSON_ERROR, {**good, "error": 406, "errorCode": "INVALID_VERSION_DATE"}) == []
    assert contract.validate_response("GET", path, ACCEPT, 418, JSON_ERROR, {**good, "error": 418})


def test_no_body_on_204(contract):
    path = f"/api/atlas/v2/groups/{GROUP}/cloudProviderAccess/AWS/{GROUP}"
    assert contract.validate_response("DELETE", path, ACCEPT, 204, ok_headers(), None) == []
    assert contract.validate_response("DELETE", path, ACCEPT, 204, ok_headers(), {"x": 1})


def test_polymorphic_workaround_keeps_subtype_checks(contract):
    schemas = contract._openapi.spec / "components" / "schemas"
    assert "CloudProviderAccessRole__Base" in schemas
    path = f"/api/atlas/v2/groups/{GROUP}/cloudProviderAccess/{GROUP}"
    assert contract.validate_response("GET", path, ACCEPT, 200, ok_headers(), {"providerName": "AWS", "roleId": "bad"})


def test_private_endpoint_relaxations_keep_the_region_check(contract):
    path = f"/api/atlas/v2/groups/{GROUP}/encryptionAtRest/AWS/privateEndpoints"
    headers = {**AUTH, **ACCEPT, **ok_headers()}
    # US_EAST_2 is in both the Azure and the AWS enum (oneOf would fail); cloudProvider is the discriminator.
    assert contract.validate_request("POST", path, headers, {"cloudProvider": "AWS", "regionName": "US_EAST_2"}) == []
    assert contract.validate_request("POST", path, headers, {"cloudProvider": "AWS", "regionName": "us-east-2"})
    assert contract.validate_request("POST", path, headers, {"regionName": "US_EAST_2"})
    assert contract.validate_request("POST", path, headers, {"cloudProvider": "AWS", "regionName": "US_EAST_2", "status": "ACTIVE"})
    endpoint = {"cloudProvider": "AWS", "id": GROUP, "regionName": "EU_WEST_1", "status": "ACTIVE"}
    assert contract.validate_response("POST", path, ACCEPT, 202, ok_headers(), endpoint) == []
    assert contract.validate_response("POST", path, ACCEPT, 202, ok_headers(), {**endpoint, "status": "READY"})


def test_group_name_pattern_is_checked(contract):
    path = f"/api/atlas/v2/groups/{GROUP}"
    group = {"id": GROUP, "name": "Zahlungen-Ü_1", "orgId": GROUP, "clusterCount": 0, "created": "2024-01-01T00:00:00Z"}
    assert contract.validate_response("GET", path, ACCEPT, 200, ok_headers(), group) == []
    assert contract.validate_response("GET", path, ACCEPT, 200, ok_headers(), {**group, "name": "two words"})
    assert contract.validate_response("GET", path, ACCEPT, 200, ok_headers(), {**group, "clusterCount": None})


def test_an_unauthorized_role_may_carry_nulls_but_not_other_types(contract):
    role = {
        "providerName": "AWS",
        "roleId": GROUP,
        "atlasAWSAccountArn": "arn:aws:iam::536727724300:root",
        "atlasAssumedRoleExternalId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "createdDate": "2024-01-01T00:00:00Z",
        "featureUsages": [],
        "authorizedDate": None,
        "iamAssumedRoleArn": None,
    }
    path = f"/api/atlas/v2/groups/{GROUP}/cloudProviderAccess"
    assert contract.validate_response("POST", path, ACCEPT, 200, ok_headers(), role) == []
    assert contract.validate_response("POST", path, ACCEPT, 200, ok_headers(), dict(role, iamAssumedRoleArn=42))
