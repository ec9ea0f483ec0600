"""Clusters, processes and control plane addresses of the Atlas emulator."""

import time

import pytest
import requests

from emulators.atlas import AtlasEmulator
from emulators.atlas.contract import SpecContract
from emulators.atlas.testing import AtlasClient, Scenario, kms_statement, policy, start_moto

PUBLIC, PRIVATE = "cluster-public-key", "cluster-private-key"
EGRESS = ("198.51.100.10", "198.51.100.11")
TRANSITION = 0.2
NODES = tuple({"hostname": f"c0-shard-00-0{i}.abcde.mongodb.net", "port": 27017, "public_ip": f"203.0.113.{5 + i}"} for i in range(3))


@pytest.fixture(scope="module")
def moto_url():
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="module")
def emulator(moto_url):
    emu = AtlasEmulator(moto_url, egress_ips=EGRESS, cluster_transition_seconds=TRANSITION, contract=SpecContract())
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.reset()
    emulator.add_api_key(PUBLIC, PRIVATE)
    yield
    assert emulator.internal_errors() == []
    assert emulator.contract_violations() == []


@pytest.fixture
def api(emulator):
    return AtlasClient(emulator.base_url, PUBLIC, PRIVATE)


@pytest.fixture
def scenario(emulator, moto_url, api):
    return Scenario(emulator, moto_url, api, role_account="333333333333")


@pytest.fixture
def group(scenario, emulator):
    emulator.add_cluster(scenario.group_id, "c0", nodes=NODES)
    return scenario.group_id


def enable_role_based(scenario):
    scenario.ready_role()
    scenario.put_role_policy(policy(kms_statement(scenario.key["Arn"])))
    assert scenario.enable().status_code == 200


@pytest.mark.parametrize("version", ["2023-01-01", "2023-02-01", "2024-08-05"])
def test_get_cluster_in_every_listed_version(api, group, version):
    response = api.get(f"/groups/{group}/clusters/c0", version=version)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"application/vnd.atlas.{version}+json"
    body = response.json()
    assert body["name"] == "c0"
    assert body["groupId"] == group
    assert body["stateName"] == "IDLE"
    assert body["paused"] is False
    assert body["encryptionAtRestProvider"] == "NONE"
    assert body["connectionStrings"]["standardSrv"] == "mongodb+srv://c0.abcde.mongodb.net"
    for node in NODES:
        assert f"{node['hostname']}:27017" in body["connectionStrings"]["standard"]


def test_deprecated_versions_carry_a_sunset_header(api, group):
    assert "Sunset" in api.get(f"/groups/{group}/clusters/c0", version="2023-02-01").headers
    assert "Sunset" not in api.get(f"/groups/{group}/clusters/c0", version="2024-08-05").headers


def test_list_clusters(api, group, emulator):
    emulator.add_cluster(group, "b1")
    body = api.get(f"/groups/{group}/clusters").json()
    assert [c["name"] for c in body["results"]] == ["b1", "c0"]
    assert body["totalCount"] == 2


def test_unknown_cluster(api, group):
    response = api.get(f"/groups/{group}/clusters/nope")
    assert response.status_code == 404
    assert response.json()["errorCode"] == "CLUSTER_NOT_FOUND"


def test_enabling_aws_needs_project_encryption_at_rest(api, group):
    response = api.patch(f"/groups/{group}/clusters/c0", {"encryptionAtRestProvider": "AWS"})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "ENCRYPTION_AT_REST_PROVIDER_NOT_CONFIGURED"
    assert api.get(f"/groups/{group}/clusters/c0").json()["encryptionAtRestProvider"] == "NONE"


def test_enabling_aws_needs_a_valid_project_configuration(api, group, scenario, emulator):
    enable_role_based(scenario)
    scenario.kms().disable_key(KeyId=scenario.key["KeyId"])
    response = api.patch(f"/groups/{group}/clusters/c0", {"encryptionAtRestProvider": "AWS"})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_AWS_CREDENTIALS"


def test_update_goes_updating_then_idle(api, group, scenario):
    enable_role_based(scenario)
    scenario.put_role_policy(policy(kms_statement("*")))
    response = api.patch(f"/groups/{group}/clusters/c0", {"encryptionAtRestProvider": "AWS"})
    assert response.status_code == 200, response.text
    assert response.json()["stateName"] == "UPDATING"
    assert response.json()["encryptionAtRestProvider"] == "AWS"
    assert api.get(f"/groups/{group}/clusters/c0").json()["stateName"] == "UPDATING"
    time.sleep(TRANSITION + 0.05)
    assert api.get(f"/groups/{group}/clusters/c0").json()["stateName"] == "IDLE"
    # The same value again changes nothing.
    assert api.patch(f"/groups/{group}/clusters/c0", {"encryptionAtRestProvider": "AWS"}).json()["stateName"] == "IDLE"
    assert api.patch(f"/groups/{group}/clusters/c0", {"encryptionAtRestProvider": "NONE"}).json()["stateName"] == "UPDATING"


def test_older_request_versions_are_accepted(api, group):
    for version in ("2023-01-01", "2023-02-01", "2024-08-05"):
        response = api.patch(f"/groups/{group}/clusters/c0", {"encryptionAtRestProvider": "NONE"}, version=version)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == f"application/vnd.atlas.{version}+json"


def test_paused_cluster_refuses_updates(api, scenario, emulator):
    emulator.add_cluster(scenario.group_id, "sleepy", paused=True)
    enable_role_based(scenario)
    response = api.patch(f"/groups/{scenario.group_id}/clusters/sleepy", {"encryptionAtRestProvider": "AWS"})
    assert response.status_code == 409
    assert response.json()["errorCode"] == "CANNOT_UPDATE_PAUSED_CLUSTER"
    both = api.patch(f"/groups/{scenario.group_id}/clusters/sleepy", {"paused": False, "encryptionAtRestProvider": "AWS"})
    assert both.status_code == 409
    resumed = api.patch(f"/groups/{scenario.group_id}/clusters/sleepy", {"paused": False})
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False


def test_invalid_provider_is_a_validation_error(api, group):
    response = api.patch(f"/groups/{group}/clusters/c0", {"encryptionAtRestProvider": "KMS"})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "VALIDATION_ERROR"


# -- processes ---------------------------------------------------------------------------------------


def test_processes_list_every_node(api, group):
    body = api.get(f"/groups/{group}/processes").json()
    assert body["totalCount"] == 3
    assert [(p["hostname"], p["port"]) for p in body["results"]] == [(n["hostname"], 27017) for n in NODES]
    first = body["results"][0]
    assert first["id"] == f"{NODES[0]['hostname']}:27017"
    assert first["typeName"] == "REPLICA_PRIMARY"
    assert first["userAlias"] == NODES[0]["hostname"]
    assert first["groupId"] == group
    assert first["replicaSetName"].endswith("-shard-0")


def test_processes_are_paginated(api, group, emulator):
    emulator.add_cluster(group, "d1")
    first = api.get(f"/groups/{group}/processes?itemsPerPage=4").json()
    assert len(first["results"]) == 4
    assert first["totalCount"] == 6
    assert "next" in {link["rel"] for link in first["links"]}
    second = api.get(f"/groups/{group}/processes?itemsPerPage=4&pageNum=2&includeCount=false").json()
    assert len(second["results"]) == 2
    assert "totalCount" not in second
    assert "next" not in {link["rel"] for link in second["links"]}
    hosts = [p["hostname"] for p in first["results"] + second["results"]]
    assert len(set(hosts)) == 6
    assert api.get(f"/groups/{group}/processes?pageNum=9").json()["results"] == []
    bad = api.get(f"/groups/{group}/processes?itemsPerPage=501")
    assert bad.status_code == 400
    assert bad.json()["errorCode"] == "VALIDATION_ERROR"


# -- control plane addresses -------------------------------------------------------------------------


def test_control_plane_addresses_need_no_auth(emulator):
    response = requests.get(
        f"{emulator.base_url}/api/atlas/v2/unauth/controlPlaneIPAddresses", headers={"Accept": "application/vnd.atlas.2023-11-15+json"}, timeout=10
    )
    assert response.status_code == 200
    outbound = response.json()["outbound"]["aws"]
    assert outbound
    for addresses in outbound.values():
        assert addresses == [f"{ip}/32" for ip in EGRESS]
    assert response.json()["inbound"]["aws"]
    wrong = requests.get(
        f"{emulator.base_url}/api/atlas/v2/unauth/controlPlaneIPAddresses", headers={"Accept": "application/vnd.atlas.2023-01-01+json"}, timeout=10
    )
    assert wrong.status_code == 406
