# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What Atlas may still restore in a project: every cluster's backup snapshots (deleted clusters with
retained backups included) and whether the cluster has continuous backup (point in time). Read only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.cmk.atlas.plugins.module_utils.aws.retained_keys import parse_time

LIST_PAGE_SIZE = 100
SHARDED_TYPES = ("SHARDED", "GEOSHARDED")


def list_restorable_clusters(client, project_id):
    """Every cluster, live or deleted with retained backups: ``{name, cluster_type, deleted, backup_enabled, pit_enabled}``."""
    clusters = []
    query = {"includeDeletedWithRetainedBackups": "true"}
    for raw in client.paginate("listGroupClusters", items_per_page=LIST_PAGE_SIZE, query=query, groupId=project_id):
        clusters.append(
            {
                "name": raw.get("name"),
                "cluster_type": raw.get("clusterType") or "REPLICASET",
                "deleted": bool(raw.get("retainBackups")) or raw.get("stateName") == "DELETED",
                "backup_enabled": bool(raw.get("backupEnabled")),
                "pit_enabled": bool(raw.get("pitEnabled")),
            }
        )
    return clusters


def list_snapshots(client, project_id, cluster):
    """The cluster's snapshots: ``{cluster, id, created_at (aware datetime, seconds), status, type}``.

    Sharded clusters have their own list operation; a name's snapshots include those of deleted clusters
    of that name with retained backups."""
    name = cluster["name"]
    if cluster["cluster_type"] in SHARDED_TYPES:
        raws = (client.call("listGroupClusterBackupSnapshotShardedClusters", groupId=project_id, clusterName=name) or {}).get("results") or []
    else:
        raws = list(client.paginate("listGroupClusterBackupSnapshots", items_per_page=LIST_PAGE_SIZE, groupId=project_id, clusterName=name))
    return [
        {"cluster": name, "id": raw.get("id"), "created_at": parse_time(raw.get("createdAt")), "status": raw.get("status"), "type": raw.get("type")}
        for raw in raws
    ]


def read_restorable(client, project_id):
    """(clusters, snapshots) of the project, each snapshot once."""
    clusters = list_restorable_clusters(client, project_id)
    snapshots, seen, listed = [], set(), set()
    for cluster in clusters:
        kind = cluster["cluster_type"] in SHARDED_TYPES
        if (cluster["name"], kind) in listed:
            continue
        listed.add((cluster["name"], kind))
        for snapshot in list_snapshots(client, project_id, cluster):
            if snapshot["id"] in seen:
                continue
            seen.add(snapshot["id"])
            snapshots.append(snapshot)
    return clusters, snapshots
