"""Backups in the Atlas emulator: the Backup Compliance Policy, replica set and sharded cluster snapshots,
and clusters deleted with their backups retained."""

import datetime
import uuid

import pytest
import requests

from emulators.atlas.testing import new_group_id

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KMS = {"enabled": True, "customerMasterKeyID": KEY_ID, "region": "US_EAST_1", "roleId": "66aa00000000000000000001"}
DAY = 86400
T0 = datetime.datetime(2026, 11, 1, 3, 0, tzinfo=datetime.timezone.utc).timestamp()


pytestmark = pytest.mark.usefixtures("clean_emulator")


@pytest.fixture
def group(emulator):
    return emulator.add_project(new_group_id(), "backups")


def snapshots(group, cluster, sharded=False):
    return f"/groups/{group}/clusters/{cluster}/backup/snapshots" + ("/shardedClusters" if sharded else "")


# -- Backup Compliance Policy ------------------------------------------------------------------------


def test_no_policy_is_not_found(api, group):
    response = api.get(f"/groups/{group}/backupCompliancePolicy")
    assert response.status_code == 404
    assert response.json()["errorCode"] == "RESOURCE_NOT_FOUND"
    assert api.get(f"/groups/{new_group_id()}/backupCompliancePolicy").json()["errorCode"] == "GROUP_NOT_FOUND"


@pytest.mark.parametrize("version", ["2023-01-01", "2023-10-01"])
def test_seeded_policy_in_both_versions(api, group, emulator, version):
    emulator.set_backup_compliance_policy(group, encryption_at_rest_enabled=True, pit_enabled=True, restore_window_days=2)
    response = api.get(f"/groups/{group}/backupCompliancePolicy", version=version)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"application/vnd.atlas.{version}+json"
    assert ("Sunset" in response.headers) == (version == "2023-01-01")
    body = response.json()
    assert body["projectId"] == group
    assert body["encryptionAtRestEnabled"] is True
    assert body["pitEnabled"] is True
    assert body["restoreWindowDays"] == 2
    assert body["state"] == "ACTIVE"
    assert body["deletable"] is False
    assert body["authorizedEmail"] and body["authorizedUserFirstName"] and body["authorizedUserLastName"]
    assert body["scheduledPolicyItems"][0]["frequencyType"] == "daily"
    assert len(body["scheduledPolicyItems"][0]["id"]) == 24
    assert emulator.project_state(group)["backupCompliancePolicy"]["encryptionAtRestEnabled"] is True


def test_policy_items_and_removal(api, group, emulator):
    on_demand = {"frequencyInterval": 0, "frequencyType": "ondemand", "retentionUnit": "days", "retentionValue": 3}
    items = [{"frequencyInterval": 6, "frequencyType": "hourly", "retentionUnit": "days", "retentionValue": 2}]
    emulator.set_backup_compliance_policy(group, encryption_at_rest_enabled=False, scheduled_policy_items=items, on_demand_policy_item=on_demand)
    body = api.get(f"/groups/{group}/backupCompliancePolicy").json()
    assert body["encryptionAtRestEnabled"] is False
    assert body["onDemandPolicyItem"]["frequencyType"] == "ondemand"
    assert [i["frequencyType"] for i in body["scheduledPolicyItems"]] == ["hourly"]
    emulator.remove_backup_compliance_policy(group)
    assert api.get(f"/groups/{group}/backupCompliancePolicy").status_code == 404


# -- snapshots ---------------------------------------------------------------------------------------


def test_replica_set_snapshots_newest_first_with_encryption_fields(api, group, emulator):
    emulator.set_encryption_at_rest(group, KMS)
    emulator.add_cluster(group, "c0", backup_enabled=True, encryption_at_rest_provider="AWS")
    old = emulator.add_snapshot(group, "c0", created_at=T0, encrypted=False)
    new = emulator.add_snapshot(group, "c0", created_at=T0 + DAY)
    on_demand = emulator.add_snapshot(group, "c0", created_at="2026-11-03T12:00:00Z", snapshot_type="onDemand", description="before the key switch")
    response = api.get(snapshots(group, "c0"))
    assert response.status_code == 200
    body = response.json()
    assert [s["id"] for s in body["results"]] == [on_demand, new, old]
    assert body["totalCount"] == 3
    latest, scheduled, plain = body["results"]
    assert latest["createdAt"] == "2026-11-03T12:00:00Z"
    assert latest["snapshotType"] == "onDemand"
    assert latest["description"] == "before the key switch"
    assert scheduled["type"] == "replicaSet"
    assert scheduled["status"] == "completed"
    assert scheduled["replicaSetName"].endswith("-shard-0")
    assert scheduled["cloudProvider"] == "AWS"
    assert scheduled["createdAt"] == "2026-11-02T03:00:00Z"
    assert scheduled["expiresAt"] == "2026-11-09T03:00:00Z"
    # Encrypted with the customer's key: masterKeyUUID, the same for every snapshot with that key.
    assert scheduled["masterKeyUUID"] == latest["masterKeyUUID"] == str(uuid.uuid5(uuid.NAMESPACE_URL, KEY_ID))
    assert "masterKeyUUID" not in plain
    states = emulator.project_state(group)["clusters"]["c0"]["snapshots"]
    assert [s["id"] for s in states] == [on_demand, new, old]


def test_snapshots_are_paginated_and_point_in_time(api, group, emulator):
    emulator.add_cluster(group, "c0", backup_enabled=True, pit_enabled=True)
    ids = [emulator.add_snapshot(group, "c0", created_at=T0 + i * DAY) for i in range(5)]
    emulator.add_snapshot(group, "c0", created_at=T0 + 2.5 * DAY, status="failed")
    page = api.get(f"{snapshots(group, 'c0')}?itemsPerPage=2&pageNum=1").json()
    assert [s["id"] for s in page["results"]] == ids[::-1][:2]
    assert page["totalCount"] == 6
    closest = api.get(f"{snapshots(group, 'c0')}?pointInTimeUtcSeconds={int(T0 + 2.7 * DAY)}").json()
    assert [s["id"] for s in closest["results"]] == [ids[2]]
    by_oplog = api.get(f"{snapshots(group, 'c0')}?oplogTs={int(T0 + DAY)}&oplogInc=1").json()
    assert [s["id"] for s in by_oplog["results"]] == [ids[1]]
    assert api.get(f"{snapshots(group, 'c0')}?pointInTimeUtcSeconds={int(T0 - 1)}").json()["results"] == []
    for query in (f"pointInTimeUtcSeconds={int(T0)}&oplogTs=1&oplogInc=1", "oplogTs=1", "pointInTimeUtcSeconds=soon"):
        bad = api.get(f"{snapshots(group, 'c0')}?{query}")
        assert bad.status_code == 400, query
        assert bad.json()["errorCode"] == "VALIDATION_ERROR"


def test_sharded_cluster_snapshots(api, group, emulator):
    emulator.add_cluster(group, "big", cluster_type="SHARDED", backup_enabled=True)
    first = emulator.add_snapshot(group, "big", created_at=T0)
    second = emulator.add_snapshot(group, "big", created_at=T0 + DAY, status="inProgress")
    body = api.get(snapshots(group, "big", sharded=True)).json()
    assert [s["id"] for s in body["results"]] == [second, first]
    assert body["totalCount"] == 2
    snap = body["results"][1]
    assert snap["type"] == "shardedCluster"
    assert snap["status"] == "completed"
    assert [m["replicaSetName"].rsplit("-", 2)[-2:] for m in snap["members"]] == [["shard", "0"], ["shard", "1"], ["config", "0"]]
    assert snap["snapshotIds"] == [m["id"] for m in snap["members"]]
    assert body["results"][0]["status"] == "inProgress"
    # The replica set list shows a sharded cluster's snapshots too, as type shardedCluster.
    plain = api.get(snapshots(group, "big")).json()["results"]
    assert [(s["id"], s["type"]) for s in plain] == [(second, "shardedCluster"), (first, "shardedCluster")]
    assert all("replicaSetName" not in s for s in plain)
    cluster = api.get(f"/groups/{group}/clusters/big").json()
    assert cluster["clusterType"] == "SHARDED"
    assert cluster["backupEnabled"] is True
    assert "replicaSet=" not in cluster["connectionStrings"]["standard"]


def test_sharded_list_of_a_replica_set_is_empty(api, group, emulator):
    emulator.add_cluster(group, "c0", backup_enabled=True)
    emulator.add_snapshot(group, "c0", created_at=T0)
    body = api.get(snapshots(group, "c0", sharded=True)).json()
    assert body["results"] == []
    assert body["totalCount"] == 0


def test_snapshots_of_unknown_cluster_or_group(api, group):
    missing = api.get(snapshots(group, "nope"))
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "CLUSTER_NOT_FOUND"
    assert api.get(snapshots(group, "nope", sharded=True)).json()["errorCode"] == "CLUSTER_NOT_FOUND"
    assert api.get(snapshots(new_group_id(), "c0")).json()["errorCode"] == "GROUP_NOT_FOUND"
    assert api.get(snapshots(group, "nope"), version="2024-08-05").status_code == 406


def test_add_snapshot_checks_its_arguments(group, emulator):
    emulator.add_cluster(group, "c0")
    with pytest.raises(ValueError, match="status"):
        emulator.add_snapshot(group, "c0", status="done")
    with pytest.raises(ValueError, match="snapshot_type"):
        emulator.add_snapshot(group, "c0", snapshot_type="manual")
    with pytest.raises(KeyError):
        emulator.add_snapshot(group, "missing")
    with pytest.raises(ValueError, match="cluster_type"):
        emulator.add_cluster(group, "geo", cluster_type="GEOSHARDED")
    with pytest.raises(ValueError, match="pit_enabled"):
        emulator.add_cluster(group, "pit", pit_enabled=True)


# -- clusters deleted with retained backups ----------------------------------------------------------


@pytest.mark.parametrize("version", ["2023-01-01", "2023-02-01", "2024-08-05"])
def test_deleted_clusters_with_retained_backups(api, group, emulator, version):
    emulator.add_cluster(group, "keep", backup_enabled=True)
    emulator.add_cluster(group, "old", backup_enabled=True)
    emulator.add_cluster(group, "gone")
    kept = emulator.add_snapshot(group, "old", created_at=T0)
    emulator.delete_cluster(group, "old", retain_backups=True)
    emulator.delete_cluster(group, "gone")
    names = [c["name"] for c in api.get(f"/groups/{group}/clusters", version=version).json()["results"]]
    assert names == ["keep"]
    body = api.get(f"/groups/{group}/clusters?includeDeletedWithRetainedBackups=true", version=version).json()
    assert [c["name"] for c in body["results"]] == ["keep", "old"]
    deleted = body["results"][1]
    assert deleted["stateName"] == "DELETING"
    assert deleted["connectionStrings"] == {}
    assert ("retainBackups" in deleted) == (version == "2024-08-05")
    assert api.get(f"/groups/{group}/clusters?includeDeletedWithRetainedBackups=false", version=version).json()["totalCount"] == 1
    # Gone as a cluster, but its retained snapshots can still be listed.
    assert api.get(f"/groups/{group}/clusters/old", version=version).status_code == 404
    assert [s["id"] for s in api.get(snapshots(group, "old")).json()["results"]] == [kept]
    assert api.get(snapshots(group, "gone")).status_code == 404
    assert api.get(f"/groups/{group}").json()["clusterCount"] == 1
    state = emulator.project_state(group)
    assert sorted(state["clusters"]) == ["keep"]
    assert [(c["name"], c["deleted"]) for c in state["deletedClusters"]] == [("old", True)]
    bad = api.get(f"/groups/{group}/clusters?includeDeletedWithRetainedBackups=yes", version=version)
    assert bad.status_code == 400


def test_control_api(emulator, api, group):
    control = f"{emulator.base_url}/__emulator/projects/{group}"
    added = requests.post(f"{control}/clusters", json={"name": "big", "cluster_type": "SHARDED", "backup_enabled": True}, timeout=10)
    assert added.status_code == 200
    snap = requests.post(f"{control}/clusters/big/snapshots", json={"created_at": "2026-11-01T03:00:00Z"}, timeout=10).json()
    assert [s["id"] for s in api.get(snapshots(group, "big", sharded=True)).json()["results"]] == [snap["id"]]
    assert requests.post(f"{control}/clusters/nope/snapshots", json={}, timeout=10).status_code == 404
    assert requests.post(f"{control}/clusters/big/snapshots", json={"status": "done"}, timeout=10).status_code == 400
    policy = {"encryption_at_rest_enabled": True, "authorized_email": "owner@example.com"}
    assert requests.post(f"{control}/backup-compliance-policy", json=policy, timeout=10).status_code == 200
    assert api.get(f"/groups/{group}/backupCompliancePolicy").json()["authorizedEmail"] == "owner@example.com"
    assert requests.delete(f"{control}/backup-compliance-policy", timeout=10).status_code == 200
    assert api.get(f"/groups/{group}/backupCompliancePolicy").status_code == 404
    assert requests.delete(f"{control}/clusters/big", json={"retain_backups": True}, timeout=10).status_code == 200
    listed = api.get(f"/groups/{group}/clusters?includeDeletedWithRetainedBackups=true").json()["results"]
    assert [(c["name"], c["stateName"]) for c in listed] == [("big", "DELETING")]
    assert requests.get(control, timeout=10).json()["deletedClusters"][0]["snapshots"][0]["id"] == snap["id"]
