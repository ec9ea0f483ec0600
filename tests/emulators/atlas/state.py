"""In-memory Atlas state: projects, cloud provider access roles, encryption at rest, clusters."""

import datetime
import re
import secrets
import uuid
from dataclasses import dataclass, field

HEX24 = re.compile(r"^[a-f0-9]{24}$")
ATLAS_REGION = re.compile(r"^[A-Z]{2}(_[A-Z]+)+_\d+$")
CLUSTER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*$")


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
class Cluster:
    name: str
    cluster_id: str
    nodes: list
    paused: bool = False
    encryption_at_rest_provider: str = "NONE"
    created: float = 0.0
    updating_until: float = 0.0
    replica_set_suffix: str = field(default_factory=lambda: secrets.token_hex(3))

    def state_name(self, now):
        return "UPDATING" if now < self.updating_until else "IDLE"

    def domain(self):
        first = self.nodes[0].hostname if self.nodes else f"{self.name.lower()}.mongodb.net"
        return first.split(".", 1)[1] if "." in first else "mongodb.net"

    def replica_set_name(self):
        return f"atlas-{self.replica_set_suffix}-shard-0"

    def connection_strings(self):
        hosts = ",".join(f"{n.hostname}:{n.port}" for n in self.nodes)
        return {
            "standard": f"mongodb://{hosts}/?ssl=true&authSource=admin&replicaSet={self.replica_set_name()}",
            "standardSrv": f"mongodb+srv://{self.name.lower()}.{self.domain()}",
        }


@dataclass
class Project:
    group_id: str
    name: str
    created: float
    roles: dict = field(default_factory=dict)
    ear: EncryptionAtRest = field(default_factory=EncryptionAtRest)
    clusters: dict = field(default_factory=dict)

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
