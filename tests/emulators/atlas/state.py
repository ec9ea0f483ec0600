"""In-memory Atlas state: organizations and projects, cloud provider access roles, encryption at rest and
its private endpoints, the backup compliance policy, clusters and their backup snapshots."""

import datetime
import re
import secrets
import uuid
from dataclasses import dataclass, field

HEX24 = re.compile(r"^[a-f0-9]{24}$")
ATLAS_REGION = re.compile(r"^[A-Z]{2}(_[A-Z]+)+_\d+$")
CLUSTER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*$")
# The organization of projects added without one (a fixed id, so tests can name it).
DEFAULT_ORG_ID = "64b0a1c2d3e4f5a6b7c8d9e0"
CLUSTER_TYPES = ("REPLICASET", "SHARDED")
SHARD_COUNT = 2
SNAPSHOT_STATUSES = ("queued", "inProgress", "completed", "failed")
SNAPSHOT_TYPES = ("onDemand", "scheduled", "fallback")
FREQUENCY_TYPES = ("hourly", "daily", "weekly", "monthly", "yearly")


def new_id():
    return secrets.token_hex(12)


def iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def aws_region(atlas_region):
    """``US_EAST_1`` -> ``us-east-1``; None for values that are not an AWS region (``GLOBAL``)."""
    if not atlas_region or not ATLAS_REGION.match(atlas_region):
        return None
    return atlas_region.lower().replace("_", "-")


def atlas_region(region):
    return region.upper().replace("-", "_")


@dataclass
class Role:
    role_id: str
    external_id: str
    created: float
    iam_role_arn: str = None
    authorized: float = None


@dataclass
class EncryptionAtRest:
    """Project-level AWS KMS settings; ``secret_access_key`` is kept but never returned."""

    enabled: bool = False
    customer_master_key_id: str = None
    region: str = None
    role_id: str = None
    access_key_id: str = None
    secret_access_key: str = None
    require_private_networking: bool = False
    enabled_for_search_nodes: bool = False
    # Once a role was used, credentials are refused for good (the switch is one-way).
    role_based_only: bool = False

    def uses_role(self):
        return self.enabled and bool(self.role_id)


@dataclass
class Node:
    hostname: str
    port: int
    public_ip: str


@dataclass
class Snapshot:
    """One backup snapshot; ``master_key_uuid`` is set when it is encrypted with the customer's key."""

    snapshot_id: str
    created: float
    expires: float
    status: str = "completed"
    snapshot_type: str = "scheduled"
    frequency_type: str = "daily"
    description: str = None
    master_key_uuid: str = None
    storage_size_bytes: int = 0
    member_ids: list = field(default_factory=list)  # sharded clusters: one snapshot per shard, then the config server


@dataclass
class Cluster:
    name: str
    cluster_id: str
    nodes: list
    paused: bool = False
    encryption_at_rest_provider: str = "NONE"
    created: float = 0.0
    updating_until: float = 0.0
    replica_set_suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    cluster_type: str = "REPLICASET"
    backup_enabled: bool = False
    pit_enabled: bool = False
    snapshots: list = field(default_factory=list)
    # Set when the cluster was deleted with its backups retained (it is then in Project.deleted_clusters).
    deleted_at: float = None

    def state_name(self, now):
        if self.deleted_at is not None:
            return "DELETING"
        return "UPDATING" if now < self.updating_until else "IDLE"

    def sharded(self):
        return self.cluster_type == "SHARDED"

    def member_names(self):
        """Replica set names of a sharded cluster's shards, then of its config server."""
        return [f"atlas-{self.replica_set_suffix}-shard-{i}" for i in range(SHARD_COUNT)] + [f"atlas-{self.replica_set_suffix}-config-0"]

    def domain(self):
        first = self.nodes[0].hostname if self.nodes else f"{self.name.lower()}.mongodb.net"
        return first.split(".", 1)[1] if "." in first else "mongodb.net"

    def replica_set_name(self):
        return f"atlas-{self.replica_set_suffix}-shard-0"

    def connection_strings(self):
        hosts = ",".join(f"{n.hostname}:{n.port}" for n in self.nodes)
        # A sharded cluster's nodes are mongos routers: no replica set in the string.
        replica_set = "" if self.sharded() else f"&replicaSet={self.replica_set_name()}"
        return {
            "standard": f"mongodb://{hosts}/?ssl=true&authSource=admin{replica_set}",
            "standardSrv": f"mongodb+srv://{self.name.lower()}.{self.domain()}",
        }


@dataclass
class PrivateEndpoint:
    """An encryption-at-rest private endpoint (AWS PrivateLink to KMS) and its lifecycle:
    INITIATING for ``transition`` seconds, then ACTIVE (or FAILED with ``error_message``);
    after a deletion request DELETING for ``delete_transition`` seconds, then gone."""

    endpoint_id: str
    region_name: str
    created: float
    transition: float
    error_message: str = None
    connection_name: str = field(default_factory=lambda: "vpce-" + secrets.token_hex(9)[:17])
    deleting_since: float = None
    delete_transition: float = 0.0

    def status(self, now):
        """The status at ``now``; None once a deletion has finished."""
        if self.deleting_since is not None:
            return "DELETING" if now < self.deleting_since + self.delete_transition else None
        if now < self.created + self.transition:
            return "INITIATING"
        return "FAILED" if self.error_message else "ACTIVE"


@dataclass
class Project:
    group_id: str
    name: str
    created: float
    org_id: str = DEFAULT_ORG_ID
    roles: dict = field(default_factory=dict)
    ear: EncryptionAtRest = field(default_factory=EncryptionAtRest)
    clusters: dict = field(default_factory=dict)
    deleted_clusters: list = field(default_factory=list)
    private_endpoints: dict = field(default_factory=dict)
    # Error message for the next private endpoint created (it goes FAILED instead of ACTIVE).
    next_endpoint_failure: str = None
    compliance_policy: dict = None

    def live_private_endpoints(self, now):
        """The private endpoints that still exist at ``now`` (finished deletions are dropped)."""
        for endpoint_id in [e.endpoint_id for e in self.private_endpoints.values() if e.status(now) is None]:
            del self.private_endpoints[endpoint_id]
        return list(self.private_endpoints.values())

    def clusters_named(self, name):
        """The live cluster called ``name`` and the deleted ones whose backups were retained."""
        found = [self.clusters[name]] if name in self.clusters else []
        return found + [c for c in self.deleted_clusters if c.name == name]

    def new_role(self, now):
        role = Role(role_id=new_id(), external_id=str(uuid.uuid4()), created=now)
        self.roles[role.role_id] = role
        return role

    def role_in_use(self, role_id):
        return self.ear.uses_role() and self.ear.role_id == role_id


def default_nodes(cluster_name, count=3):
    suffix = secrets.token_hex(3)[:5]
    base = cluster_name.lower()
    first = secrets.randbelow(200) + 20
    return tuple({"hostname": f"{base}-shard-00-{i:02d}.{suffix}.mongodb.net", "port": 27017, "public_ip": f"203.0.113.{first + i}"} for i in range(count))
