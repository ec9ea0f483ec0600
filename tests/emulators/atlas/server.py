"""Atlas Admin API emulator: an HTTP server on loopback that answers the operations the collection uses
the way Atlas does, and checks against moto what Atlas checks and moto does not.

See atlas/DESIGN.md for the behaviour choices and their reasons.
"""

import contextlib
import copy
import dataclasses
import datetime
import json
import re
import threading
import time
import traceback
import uuid
from email.utils import format_datetime

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import errors
from .access import Context, Principal, kms_problems, trust_problems
from .auth import Authenticator
from .aws_view import KMS_ARN, ROLE_ARN, AwsView
from .errors import ApiError
from .state import (
    CLUSTER_NAME,
    CLUSTER_TYPES,
    DEFAULT_ORG_ID,
    FREQUENCY_TYPES,
    HEX24,
    SHARD_COUNT,
    SNAPSHOT_STATUSES,
    SNAPSHOT_TYPES,
    Cluster,
    EncryptionAtRest,
    Node,
    PrivateEndpoint,
    Project,
    Snapshot,
    aws_region,
    default_nodes,
    iso,
    new_id,
)

API = "/api/atlas/v2"
CONTROL = "/__emulator"

# Versions per operation as the spec lists them (response media types of the 2xx answer, then request
# body media types), with their sunset dates. A test compares this table with the spec.
VERSIONS = {
    "listGroups": ({"2023-01-01": None}, {}),
    "getGroup": ({"2023-01-01": None}, {}),
    "getOrgGroups": ({"2023-01-01": None}, {}),
    "listGroupCloudProviderAccess": ({"2023-01-01": None}, {}),
    "createGroupCloudProviderAccess": ({"2023-01-01": None}, {"2023-01-01": None}),
    "getGroupCloudProviderAccess": ({"2023-01-01": None}, {}),
    "authorizeGroupCloudProviderAccessRole": ({"2023-01-01": None}, {"2023-01-01": None}),
    "deauthorizeGroupCloudProviderAccessRole": ({"2023-01-01": None}, {}),
    "getGroupEncryptionAtRest": ({"2023-01-01": None}, {}),
    "updateGroupEncryptionAtRest": ({"2023-01-01": None}, {"2023-01-01": None}),
    "listGroupEncryptionAtRestPrivateEndpoints": ({"2023-01-01": None}, {}),
    "createGroupEncryptionAtRestPrivateEndpoint": ({"2023-01-01": None}, {"2023-01-01": None}),
    "getGroupEncryptionAtRestPrivateEndpoint": ({"2023-01-01": None}, {}),
    "requestGroupEncryptionAtRestPrivateEndpointDeletion": ({"2023-01-01": None}, {}),
    "getGroupBackupCompliancePolicy": ({"2023-01-01": "2027-07-01", "2023-10-01": None}, {}),
    "listGroupClusters": ({"2023-01-01": "2027-07-01", "2023-02-01": "2027-07-01", "2024-08-05": None}, {}),
    "getGroupCluster": ({"2023-01-01": "2027-07-01", "2023-02-01": "2027-07-01", "2024-08-05": None}, {}),
    "updateGroupCluster": (
        {"2023-01-01": "2027-07-01", "2023-02-01": "2027-07-01", "2024-08-05": "2027-03-01", "2024-10-23": None},
        {"2023-01-01": None, "2023-02-01": None, "2024-08-05": None, "2024-10-23": None},
    ),
    "listGroupClusterBackupSnapshots": ({"2023-01-01": None}, {}),
    "listGroupClusterBackupSnapshotShardedClusters": ({"2023-01-01": None}, {}),
    "listGroupProcesses": ({"2023-01-01": None}, {}),
    "listControlPlaneIpAddresses": ({"2023-11-15": None}, {}),
}

_SEG = "([^/]+)"
# (method, path pattern, operationId, handler, needs authentication)
_EAR_ENDPOINTS = rf"{API}/groups/{_SEG}/encryptionAtRest/{_SEG}/privateEndpoints"
ROUTES = [
    ("GET", rf"{API}/groups", "listGroups", "_list_groups", True),
    ("GET", rf"{API}/groups/{_SEG}", "getGroup", "_get_group", True),
    ("GET", rf"{API}/orgs/{_SEG}/groups", "getOrgGroups", "_list_org_groups", True),
    ("GET", rf"{API}/groups/{_SEG}/cloudProviderAccess", "listGroupCloudProviderAccess", "_list_roles", True),
    ("POST", rf"{API}/groups/{_SEG}/cloudProviderAccess", "createGroupCloudProviderAccess", "_create_role", True),
    ("GET", rf"{API}/groups/{_SEG}/cloudProviderAccess/{_SEG}", "getGroupCloudProviderAccess", "_get_role", True),
    ("PATCH", rf"{API}/groups/{_SEG}/cloudProviderAccess/{_SEG}", "authorizeGroupCloudProviderAccessRole", "_authorize_role", True),
    ("DELETE", rf"{API}/groups/{_SEG}/cloudProviderAccess/{_SEG}/{_SEG}", "deauthorizeGroupCloudProviderAccessRole", "_deauthorize_role", True),
    ("GET", rf"{API}/groups/{_SEG}/encryptionAtRest", "getGroupEncryptionAtRest", "_get_ear", True),
    ("PATCH", rf"{API}/groups/{_SEG}/encryptionAtRest", "updateGroupEncryptionAtRest", "_update_ear", True),
    ("GET", _EAR_ENDPOINTS, "listGroupEncryptionAtRestPrivateEndpoints", "_list_ear_endpoints", True),
    ("POST", _EAR_ENDPOINTS, "createGroupEncryptionAtRestPrivateEndpoint", "_create_ear_endpoint", True),
    ("GET", rf"{_EAR_ENDPOINTS}/{_SEG}", "getGroupEncryptionAtRestPrivateEndpoint", "_get_ear_endpoint", True),
    ("DELETE", rf"{_EAR_ENDPOINTS}/{_SEG}", "requestGroupEncryptionAtRestPrivateEndpointDeletion", "_delete_ear_endpoint", True),
    ("GET", rf"{API}/groups/{_SEG}/backupCompliancePolicy", "getGroupBackupCompliancePolicy", "_get_compliance_policy", True),
    ("GET", rf"{API}/groups/{_SEG}/clusters", "listGroupClusters", "_list_clusters", True),
    ("GET", rf"{API}/groups/{_SEG}/clusters/{_SEG}", "getGroupCluster", "_get_cluster", True),
    ("PATCH", rf"{API}/groups/{_SEG}/clusters/{_SEG}", "updateGroupCluster", "_update_cluster", True),
    ("GET", rf"{API}/groups/{_SEG}/clusters/{_SEG}/backup/snapshots", "listGroupClusterBackupSnapshots", "_list_snapshots", True),
    (
        "GET",
        rf"{API}/groups/{_SEG}/clusters/{_SEG}/backup/snapshots/shardedClusters",
        "listGroupClusterBackupSnapshotShardedClusters",
        "_list_sharded_snapshots",
        True,
    ),
    ("GET", rf"{API}/groups/{_SEG}/processes", "listGroupProcesses", "_list_processes", True),
    ("GET", rf"{API}/unauth/controlPlaneIPAddresses", "listControlPlaneIpAddresses", "_control_plane_ips", False),
]
ROUTES = [(m, re.compile(f"^{p}$"), op, h, a) for m, p, op, h, a in ROUTES]
TOKEN_PATH = "/api/oauth/token"
TOKEN_OPERATION = "oauthToken"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MEDIA = re.compile(r"^application/vnd\.atlas\.(\d{4}-\d{2}-\d{2})\+json$")

CONTROL_PLANE_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
INBOUND_IPS = ("192.0.2.10", "192.0.2.11")
AWS_KMS_FIELDS = ("enabled", "customerMasterKeyID", "region", "roleId", "accessKeyID", "secretAccessKey", "requirePrivateNetworking")
PROVIDERS = ("NONE", "AWS", "AZURE", "GCP")
DEFAULT_SCHEDULED_ITEM = {"frequencyInterval": 1, "frequencyType": "daily", "retentionUnit": "days", "retentionValue": 7}
EAR_ENDPOINT_PROVIDERS = ("AWS", "AZURE")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


class _Call:
    """One API call on its way through the pipeline."""

    def __init__(self, request, operation_id, params):
        self.request = request
        self.operation_id = operation_id
        self.params = params
        self.version = None
        self.body = None


def _base_media_type(value):
    return (value or "").split(";", 1)[0].strip().lower()


def _hex24(value, name):
    if not isinstance(value, str) or not HEX24.match(value):
        raise ValueError(f"{name} must be a 24-hexadecimal string, got {value!r}")
    return value


class AtlasEmulator:
    """Atlas Admin API emulator. ``start()`` returns the base URL; ``stop()`` stops the server."""

    def __init__(
        self,
        aws_endpoint_url,
        atlas_aws_account_id="536727724300",
        egress_ips=("198.51.100.10", "198.51.100.11"),
        cluster_transition_seconds=0.5,
        contract=None,
        aws_account_ids=(),
        private_endpoint_transition_seconds=0.5,
    ):
        self.atlas_aws_account_id = str(atlas_aws_account_id)
        self.atlas_aws_account_arn = f"arn:aws:iam::{self.atlas_aws_account_id}:root"
        self.egress_ips = tuple(egress_ips)
        self.cluster_transition_seconds = float(cluster_transition_seconds)
        # INITIATING -> ACTIVE/FAILED and DELETING -> gone of encryption-at-rest private endpoints.
        self.private_endpoint_transition_seconds = float(private_endpoint_transition_seconds)
        self.contract = contract
        self.aws = AwsView(aws_endpoint_url, known_accounts=aws_account_ids)
        self.clock = time.time
        # Today's date for version sunsets; replaceable in tests.
        self.today = datetime.date.today
        self.base_url = None
        self.auth = Authenticator(clock=self._now)
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self._projects = {}
        self._orgs = {DEFAULT_ORG_ID}
        self._faults = []
        self._log = []
        self._violations = []
        self._internal_errors = []
        self._propagation_delay = 0.0

    def _now(self):
        # Through the attribute, so a test that replaces ``clock`` moves token expiry too.
        return self.clock()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self):
        if self._server is None:
            self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
            host, port = self._server.server_address[:2]
            self.base_url = f"http://{host}:{port}"
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="atlas-emulator", daemon=True)
            self._thread.start()
        return self.base_url

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- seeding and observation (Python control API) ------------------------------------------------

    def add_api_key(self, public_key, private_key):
        self.auth.add_api_key(public_key, private_key)

    def add_service_account(self, client_id, client_secret, token_lifetime=3600):
        self.auth.add_service_account(client_id, client_secret, token_lifetime)

    def add_organization(self, org_id):
        """Make an organization known (without projects it lists none); the default one always is."""
        _hex24(org_id, "org_id")
        with self._lock:
            self._orgs.add(org_id)
        return org_id

    def add_project(self, group_id, name, org_id=DEFAULT_ORG_ID):
        _hex24(group_id, "group_id")
        _hex24(org_id, "org_id")
        with self._lock:
            self._orgs.add(org_id)
            self._projects[group_id] = Project(group_id=group_id, name=name, created=self.clock(), org_id=org_id)
        return group_id

    def add_cluster(
        self,
        group_id,
        name,
        *,
        paused=False,
        encryption_at_rest_provider="NONE",
        nodes=None,
        cluster_type="REPLICASET",
        backup_enabled=False,
        pit_enabled=False,
    ):
        if not CLUSTER_NAME.match(name or ""):
            raise ValueError(f"invalid cluster name {name!r}")
        if encryption_at_rest_provider not in PROVIDERS:
            raise ValueError(f"encryption_at_rest_provider must be one of {PROVIDERS}")
        if cluster_type not in CLUSTER_TYPES:
            raise ValueError(f"cluster_type must be one of {CLUSTER_TYPES}")
        if pit_enabled and not backup_enabled:
            raise ValueError("pit_enabled needs backup_enabled (continuous backup is a kind of cloud backup)")
        node_list = [Node(hostname=n["hostname"], port=int(n.get("port", 27017)), public_ip=n.get("public_ip")) for n in (nodes or default_nodes(name))]
        with self._lock:
            project = self._projects[group_id]
            cluster = Cluster(name=name, cluster_id=new_id(), nodes=node_list, paused=bool(paused), created=self.clock())
            cluster.encryption_at_rest_provider = encryption_at_rest_provider
            cluster.cluster_type = cluster_type
            cluster.backup_enabled = bool(backup_enabled)
            cluster.pit_enabled = bool(pit_enabled)
            project.clusters[name] = cluster
        return cluster.cluster_id

    def delete_cluster(self, group_id, name, retain_backups=False):
        """Delete a cluster; with ``retain_backups`` its snapshots stay and it is listed by
        ``listGroupClusters?includeDeletedWithRetainedBackups=true``."""
        with self._lock:
            project = self._projects[group_id]
            cluster = project.clusters.pop(name)
            if retain_backups:
                cluster.deleted_at = self.clock()
                project.deleted_clusters.append(cluster)

    def add_snapshot(
        self,
        group_id,
        cluster_name,
        created_at=None,
        *,
        status="completed",
        snapshot_type="scheduled",
        frequency_type="daily",
        retention_days=7,
        description=None,
        encrypted=None,
        master_key_uuid=None,
        storage_size_bytes=1073741824,
    ):
        """Store a backup snapshot of a cluster (live, or deleted with retained backups: the newest of
        that name); returns its id. ``created_at``: epoch seconds, a datetime or an ISO 8601 string
        (default now). ``encrypted`` (default: the cluster uses ``AWS`` and the project's AWS KMS is
        enabled) sets ``masterKeyUUID``, derived from the key id unless ``master_key_uuid`` is given."""
        if status not in SNAPSHOT_STATUSES:
            raise ValueError(f"status must be one of {SNAPSHOT_STATUSES}")
        if snapshot_type not in SNAPSHOT_TYPES:
            raise ValueError(f"snapshot_type must be one of {SNAPSHOT_TYPES}")
        if frequency_type not in FREQUENCY_TYPES:
            raise ValueError(f"frequency_type must be one of {FREQUENCY_TYPES}")
        created = self._timestamp(created_at)
        with self._lock:
            project = self._projects[group_id]
            found = project.clusters_named(cluster_name)
            if not found:
                raise KeyError(f"no cluster {cluster_name} in project {group_id}")
            cluster = found[0] if cluster_name in project.clusters else found[-1]
            if encrypted is None:
                encrypted = cluster.encryption_at_rest_provider == "AWS" and project.ear.enabled
            if encrypted and master_key_uuid is None:
                key = project.ear.customer_master_key_id
                master_key_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, key) if key else uuid.uuid4())
            snapshot = Snapshot(
                snapshot_id=new_id(),
                created=created,
                expires=created + float(retention_days) * 86400,
                status=status,
                snapshot_type=snapshot_type,
                frequency_type=frequency_type,
                description=description if description is not None else ("On-demand snapshot" if snapshot_type == "onDemand" else None),
                master_key_uuid=str(uuid.UUID(master_key_uuid)) if encrypted else None,
                storage_size_bytes=int(storage_size_bytes),
                member_ids=[new_id() for _member in range(SHARD_COUNT + 1)] if cluster.sharded() else [],
            )
            cluster.snapshots.append(snapshot)
        return snapshot.snapshot_id

    def set_backup_compliance_policy(
        self,
        group_id,
        encryption_at_rest_enabled=True,
        *,
        authorized_email="compliance.officer@example.com",
        authorized_user_first_name="Compliance",
        authorized_user_last_name="Officer",
        copy_protection_enabled=False,
        pit_enabled=False,
        restore_window_days=None,
        scheduled_policy_items=None,
        on_demand_policy_item=None,
        state="ACTIVE",
        deletable=False,
        updated_user=None,
    ):
        """Seed the project's Backup Compliance Policy (Atlas's ``DataProtectionSettings20231001``).
        Policy items use API field names; items without ``id`` get one."""
        if state not in ("ACTIVE", "ENABLING", "UPDATING", "DISABLING"):
            raise ValueError("state must be ACTIVE, ENABLING, UPDATING or DISABLING")
        items = [dict(item) for item in (scheduled_policy_items if scheduled_policy_items is not None else [DEFAULT_SCHEDULED_ITEM])]
        for item in items:
            item.setdefault("id", new_id())
        on_demand = dict(on_demand_policy_item) if on_demand_policy_item else None
        if on_demand:
            on_demand.setdefault("id", new_id())
        with self._lock:
            project = self._projects[group_id]
            policy = {
                "authorizedEmail": authorized_email,
                "authorizedUserFirstName": authorized_user_first_name,
                "authorizedUserLastName": authorized_user_last_name,
                "copyProtectionEnabled": bool(copy_protection_enabled),
                "deletable": bool(deletable),
                "encryptionAtRestEnabled": bool(encryption_at_rest_enabled),
                "pitEnabled": bool(pit_enabled),
                "projectId": group_id,
                "scheduledPolicyItems": items,
                "state": state,
                "updatedDate": iso(self.clock()),
                "updatedUser": updated_user or authorized_email,
            }
            if on_demand:
                policy["onDemandPolicyItem"] = on_demand
            if restore_window_days is not None:
                policy["restoreWindowDays"] = int(restore_window_days)
            project.compliance_policy = policy

    def remove_backup_compliance_policy(self, group_id):
        with self._lock:
            self._projects[group_id].compliance_policy = None

    def fail_next_private_endpoint(self, group_id, error_message="Failed to create the AWS PrivateLink endpoint for KMS."):
        """The next encryption-at-rest private endpoint created in the project goes FAILED (with
        ``errorMessage``) instead of ACTIVE when it leaves INITIATING."""
        with self._lock:
            self._projects[group_id].next_endpoint_failure = str(error_message)

    def _timestamp(self, value):
        if value is None:
            return self.clock()
        if isinstance(value, bool):
            raise TypeError("created_at must be epoch seconds, a datetime or an ISO 8601 string")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)).timestamp()
        raise TypeError("created_at must be epoch seconds, a datetime or an ISO 8601 string")

    def set_encryption_at_rest(self, group_id, aws_kms):
        """Seed the project's AWS KMS settings as given (API field names), without any check."""
        with self._lock:
            project = self._projects[group_id]
            ear = EncryptionAtRest(
                enabled=bool(aws_kms.get("enabled", True)),
                customer_master_key_id=aws_kms.get("customerMasterKeyID"),
                region=aws_kms.get("region"),
                role_id=aws_kms.get("roleId"),
                access_key_id=aws_kms.get("accessKeyID"),
                secret_access_key=aws_kms.get("secretAccessKey"),
                require_private_networking=bool(aws_kms.get("requirePrivateNetworking", False)),
                role_based_only=project.ear.role_based_only or bool(aws_kms.get("roleId")),
            )
            project.ear = ear

    def set_node_public_ip(self, group_id, cluster_name, hostname, ip):
        with self._lock:
            cluster = self._projects[group_id].clusters[cluster_name]
            for node in cluster.nodes:
                if node.hostname == hostname:
                    node.public_ip = ip
                    return
        raise KeyError(f"no node {hostname} in cluster {cluster_name}")

    def inject_fault(self, operation_id, status=503, count=1, retry_after=None, delay=0.0, error_code=None):
        """The next ``count`` calls of ``operation_id`` (``"*"``: any operation) answer ``status`` with
        Atlas's error body after ``delay`` seconds; ``status=None`` only slows the normal answer down."""
        with self._lock:
            fault = {"operation_id": operation_id, "status": status, "count": int(count), "retry_after": retry_after, "delay": float(delay)}
            fault["error_code"] = error_code
            self._faults.append(fault)

    def set_propagation_delay(self, seconds):
        with self._lock:
            self._propagation_delay = float(seconds)

    def request_log(self):
        with self._lock:
            return [dict(entry) for entry in self._log]

    def clear_request_log(self):
        with self._lock:
            self._log.clear()

    def contract_violations(self):
        with self._lock:
            return list(self._violations)

    def internal_errors(self):
        """Tracebacks of requests that failed inside the emulator (answered 500)."""
        with self._lock:
            return list(self._internal_errors)

    def reset(self):
        self.auth.reset()
        with self._lock:
            self._projects.clear()
            self._orgs = {DEFAULT_ORG_ID}
            self._faults.clear()
            self._log.clear()
            self._violations.clear()
            self._internal_errors.clear()
            self._propagation_delay = 0.0

    def project_state(self, group_id):
        """Raw state for assertions; keys are documented in atlas/DESIGN.md."""
        with self._lock:
            project = self._projects[group_id]
            now = self.clock()
            ear = project.ear
            return {
                "groupId": project.group_id,
                "name": project.name,
                "orgId": project.org_id,
                "roles": [
                    {
                        "roleId": r.role_id,
                        "atlasAssumedRoleExternalId": r.external_id,
                        "iamAssumedRoleArn": r.iam_role_arn,
                        "authorized": r.authorized is not None,
                        "inUse": project.role_in_use(r.role_id),
                    }
                    for r in project.roles.values()
                ],
                "encryptionAtRest": {
                    "enabled": ear.enabled,
                    "customerMasterKeyID": ear.customer_master_key_id,
                    "region": ear.region,
                    "roleId": ear.role_id,
                    "accessKeyID": ear.access_key_id,
                    "credentialsStored": bool(ear.access_key_id or ear.secret_access_key),
                    "roleBasedOnly": ear.role_based_only,
                    "requirePrivateNetworking": ear.require_private_networking,
                },
                "privateEndpoints": [
                    {
                        "id": e.endpoint_id,
                        "cloudProvider": "AWS",
                        "regionName": e.region_name,
                        "status": e.status(now),
                        "errorMessage": e.error_message,
                        "privateEndpointConnectionName": e.connection_name,
                    }
                    for e in project.live_private_endpoints(now)
                ],
                "nextPrivateEndpointFailure": project.next_endpoint_failure,
                "backupCompliancePolicy": copy.deepcopy(project.compliance_policy),
                "clusters": {c.name: self._cluster_state(c, now) for c in project.clusters.values()},
                "deletedClusters": [self._cluster_state(c, now) for c in project.deleted_clusters],
            }

    @staticmethod
    def _cluster_state(cluster, now):
        return {
            "id": cluster.cluster_id,
            "name": cluster.name,
            "paused": cluster.paused,
            "encryptionAtRestProvider": cluster.encryption_at_rest_provider,
            "stateName": cluster.state_name(now),
            "clusterType": cluster.cluster_type,
            "backupEnabled": cluster.backup_enabled,
            "pitEnabled": cluster.pit_enabled,
            "deleted": cluster.deleted_at is not None,
            "nodes": [{"hostname": n.hostname, "port": n.port, "public_ip": n.public_ip} for n in cluster.nodes],
            "snapshots": [
                {
                    "id": snap.snapshot_id,
                    "createdAt": iso(snap.created),
                    "status": snap.status,
                    "snapshotType": snap.snapshot_type,
                    "masterKeyUUID": snap.master_key_uuid,
                }
                for snap in sorted(cluster.snapshots, key=lambda x: x.created, reverse=True)
            ],
        }

    # -- WSGI ----------------------------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        control = request.path == CONTROL or request.path.startswith(CONTROL + "/")
        response = self._control(request) if control else self._api(request)
        return response(environ, start_response)

    def _api(self, request):
        method = request.method.upper()
        call = None
        entry = {
            "method": method,
            "path": request.path,
            "operation_id": None,
            "status": None,
            "write": method in WRITE_METHODS,
            "error_code": None,
            "time": time.time(),  # wall clock, comparable with the AWS fault proxy's log (write order across systems)
        }
        try:
            if request.path == TOKEN_PATH:
                entry["operation_id"], entry["write"] = TOKEN_OPERATION, False
                response = self._token(request)
            else:
                call = self._route(request)
                entry["operation_id"] = call.operation_id
                response = self._handle(call)
        except ApiError as exc:
            response = self._error_response(exc, request)
        except Exception:  # keep serving; the traceback is kept for the test that caused it
            with self._lock:
                self._internal_errors.append(traceback.format_exc())
            response = self._error_response(ApiError(500, "UNEXPECTED_ERROR", "Unexpected error."), request)
        entry["status"] = response.status_code
        if response.status_code >= 400 and response.mimetype == "application/json":
            with contextlib.suppress(ValueError):
                entry["error_code"] = json.loads(response.get_data()).get("errorCode")
        if self.contract is not None and call is not None:
            self._check_contract(request, call, response)
        with self._lock:
            self._log.append(entry)
        return response

    def _route(self, request):
        method = request.method.upper()
        allowed = False
        for route_method, pattern, operation_id, handler, needs_auth in ROUTES:
            match = pattern.match(request.path)
            if not match:
                continue
            if route_method != method:
                allowed = True
                continue
            call = _Call(request, operation_id, match.groups())
            call.handler, call.needs_auth = handler, needs_auth
            return call
        if allowed:
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"Method {method} is not allowed for {request.path}.")
        raise ApiError(404, "RESOURCE_NOT_FOUND", f"Cannot find resource {request.path}.", [request.path])

    def _handle(self, call):
        request = call.request
        if call.needs_auth:
            self._authenticate(request)
        self._apply_fault(call.operation_id)
        call.version = self._negotiate(call)
        if VERSIONS[call.operation_id][1]:
            call.body = self._read_body(call)
        with self._lock:
            status, body = getattr(self, call.handler)(call, *call.params)
        return self._success_response(call, status, body)

    # -- pipeline steps ------------------------------------------------------------------------------

    def _authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            if self.auth.check_bearer(header):
                return
            raise self._unauthorized()
        uri = request.environ.get("REQUEST_URI") or request.full_path.rstrip("?")
        principal, stale = self.auth.check_digest(request.method.upper(), uri, header)
        if principal is None:
            raise self._unauthorized(stale)

    def _unauthorized(self, stale=False):
        exc = errors.unauthorized()
        exc.headers["WWW-Authenticate"] = self.auth.challenge(stale=stale)
        return exc

    def _apply_fault(self, operation_id):
        with self._lock:
            fault = next((f for f in self._faults if f["operation_id"] in (operation_id, "*")), None)
            if fault is not None:
                fault["count"] -= 1
                if fault["count"] <= 0:
                    self._faults.remove(fault)
        if fault is None:
            return
        if fault["delay"]:
            time.sleep(fault["delay"])
        if fault["status"] is not None and int(fault["status"]) >= 400:
            raise errors.fault(int(fault["status"]), fault["error_code"], fault["retry_after"])

    def _negotiate(self, call):
        """The version the request asked for, exactly as the spec lists it for this operation."""
        responses = VERSIONS[call.operation_id][0]
        for item in (call.request.headers.get("Accept") or "").split(","):
            match = MEDIA.match(_base_media_type(item))
            if match and match.group(1) in responses:
                version = match.group(1)
                sunset = responses[version]
                if sunset and datetime.date.fromisoformat(sunset) <= self.today():
                    raise ApiError(410, "VERSION_GONE", f"Version {version} of this resource was sunset on {sunset}.", [version])
                return version
        raise errors.invalid_version()

    def _read_body(self, call):
        data = call.request.get_data()
        if not data:
            raise errors.validation_error([("body", "A request body is required.")])
        listed = VERSIONS[call.operation_id][1]
        match = MEDIA.match(_base_media_type(call.request.headers.get("Content-Type")))
        if not match or match.group(1) not in listed:
            raise errors.invalid_version()
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise ApiError(400, "INVALID_JSON", "Received JSON is malformed.") from exc
        if not isinstance(body, dict):
            raise errors.validation_error([("body", "must be a JSON object")])
        return body

    def _check_contract(self, request, call, response):
        headers = dict(request.headers)
        full_path = request.full_path.rstrip("?")
        found = []
        if response.status_code < 400:
            found += self.contract.validate_request(request.method, full_path, headers, request.get_data() or None)
        found += self.contract.validate_response(request.method, full_path, headers, response.status_code, dict(response.headers), response.get_data() or None)
        if found:
            with self._lock:
                self._violations.extend(found)

    def _success_response(self, call, status, body):
        media = f"application/vnd.atlas.{call.version}+json"
        headers = {}
        sunset = VERSIONS[call.operation_id][0].get(call.version)
        if sunset:
            moment = datetime.datetime.combine(datetime.date.fromisoformat(sunset), datetime.time(), datetime.timezone.utc)
            headers["Sunset"] = format_datetime(moment, usegmt=True)
        if status == 204:
            return Response(b"", status=204, headers=headers, content_type=media)
        return Response(self._dump(body, call.request), status=status, headers=headers, content_type=media)

    def _error_response(self, exc, request):
        return Response(self._dump(exc.body(), request), status=exc.status, headers=exc.headers, content_type="application/json")

    @staticmethod
    def _dump(body, request):
        pretty = (request.args.get("pretty") or "").lower() == "true"
        return json.dumps(body, indent=2 if pretty else None).encode("utf-8")

    def _token(self, request):
        if request.method.upper() != "POST":
            raise ApiError(405, "METHOD_NOT_ALLOWED", "Use POST.")
        status, body, headers = self.auth.issue_token(request.headers.get("Authorization"), request.form)
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    # -- helpers -------------------------------------------------------------------------------------

    def _project(self, group_id):
        project = self._projects.get(group_id)
        if project is None:
            raise errors.group_not_found(group_id)
        return project

    def _role(self, project, role_id):
        role = project.roles.get(role_id)
        if role is None:
            raise errors.role_not_found(project.group_id, role_id)
        return role

    def _role_json(self, project, role):
        body = {
            "providerName": "AWS",
            "roleId": role.role_id,
            "atlasAWSAccountArn": self.atlas_aws_account_arn,
            "atlasAssumedRoleExternalId": role.external_id,
            "createdDate": iso(role.created),
            "featureUsages": [{"featureType": "ENCRYPTION_AT_REST", "featureId": None}] if project.role_in_use(role.role_id) else [],
        }
        # Real Atlas sends both as null until the role is authorized (it does not leave them out).
        body["authorizedDate"] = iso(role.authorized) if role.authorized is not None else None
        body["iamAssumedRoleArn"] = role.iam_role_arn if role.authorized is not None else None
        return body

    def _sources(self, project, clusters=None):
        """Addresses Atlas reaches KMS from: the control plane, plus the nodes of running AWS-encrypted clusters."""
        if clusters is None:
            clusters = [c for c in project.clusters.values() if c.encryption_at_rest_provider == "AWS" and not c.paused]
        found = list(self.egress_ips)
        for cluster in clusters:
            found += [n.public_ip for n in cluster.nodes if n.public_ip]
        return list(dict.fromkeys(found))

    def _check_role_assumable(self, role):
        """Raise CANNOT_ASSUME_ROLE unless Atlas can assume the IAM role now (trust policy, external ID)."""
        arn = role.iam_role_arn
        iam_role = self.aws.role_by_arn(arn)
        if iam_role is None:
            raise errors.cannot_assume_role(arn, [f"IAM role {arn} does not exist"])
        problems = trust_problems(iam_role["AssumeRolePolicyDocument"], self.atlas_aws_account_id, role.external_id, self.egress_ips, str(uuid.uuid4()))
        if problems:
            raise errors.cannot_assume_role(arn, problems)
        return iam_role

    def _check_kms(self, project, ear, sources):
        """Raise the error Atlas answers when it cannot use the key with these settings; None when it can."""
        if ear.role_id:
            role = self._role(project, ear.role_id)
            if role.authorized is None:
                raise errors.role_not_authorized(role.role_id)
            iam_role = self._check_role_assumable(role)
            match = ROLE_ARN.match(role.iam_role_arn)
            account = match.group(2)
            principal = Principal(role.iam_role_arn, account)
            identity = self.aws.role_policies(account, iam_role["RoleName"])
            boundary = self.aws.boundary_document(account, iam_role)
            principal_type = "AssumedRole"
        else:
            owner = self.aws.access_key_owner(ear.access_key_id)
            if owner is None:
                raise errors.invalid_aws_credentials([f"access key {ear.access_key_id} does not exist in any known account"])
            account, user_name, status = owner
            if status != "Active":
                raise errors.invalid_aws_credentials([f"access key {ear.access_key_id} is {status}"])
            if not self.aws.access_key_secret_matches(ear.access_key_id, ear.secret_access_key):
                raise errors.invalid_aws_credentials(["the secret access key does not match the access key"])
            user = self.aws.user(account, user_name)
            principal = Principal(user["Arn"], account)
            identity = self.aws.user_policies(account, user_name)
            boundary = self.aws.boundary_document(account, user)
            principal_type = "User"
        region = aws_region(ear.region)
        key_ref = ear.customer_master_key_id
        arn = KMS_ARN.match(key_ref or "")
        key_account = principal.account
        if arn:
            if arn.group(2) != region:
                raise errors.invalid_aws_credentials([f"the key ARN is in {arn.group(2)} but region is {ear.region}"])
            key_account = arn.group(3)
        self.aws.remember_account(key_account)
        key = self.aws.key(key_account, region, key_ref)
        if key is None:
            hint = "" if arn else " (a key in another account must be given as its full ARN)"
            raise errors.invalid_aws_credentials([f"key {key_ref} not found in account {key_account} region {region}{hint}"])
        if key.get("KeyState") != "Enabled":
            raise errors.invalid_aws_credentials([f"key {key['Arn']} is {key.get('KeyState')}"])
        if key.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            raise errors.invalid_aws_credentials([f"key {key['Arn']} is {key.get('KeySpec')}, not a symmetric encryption key"])
        key_policy = self.aws.key_policy(key_account, region, key["KeyId"])
        contexts = [
            (
                ip,
                Context.of(
                    aws__SourceIp=ip,
                    aws__PrincipalArn=principal.arn,
                    aws__PrincipalAccount=principal.account,
                    aws__PrincipalType=principal_type,
                    aws__SecureTransport=True,
                    aws__RequestedRegion=region,
                    aws__ViaAWSService=False,
                    aws__PrincipalIsAWSService=False,
                    kms__CallerAccount=principal.account,
                ),
            )
            for ip in sources
        ]
        problems = kms_problems(principal, key["Arn"], key_policy, identity, boundary, contexts)
        if problems:
            raise errors.invalid_aws_credentials(problems)

    def _ear_valid(self, project, sources=None):
        if not project.ear.enabled:
            return False
        try:
            self._check_kms(project, project.ear, self._sources(project) if sources is None else sources)
        except ApiError:
            return False
        return True

    def _ear_json(self, project):
        ear = project.ear
        aws = {"enabled": ear.enabled, "requirePrivateNetworking": ear.require_private_networking}
        if ear.enabled:
            aws["customerMasterKeyID"] = ear.customer_master_key_id
            aws["region"] = ear.region
            if ear.role_id:
                aws["roleId"] = ear.role_id
            if ear.access_key_id:
                aws["accessKeyID"] = ear.access_key_id
        aws["valid"] = self._ear_valid(project)
        return {
            "awsKms": aws,
            "azureKeyVault": {"enabled": False},
            "googleCloudKms": {"enabled": False},
            "enabledForSearchNodes": ear.enabled_for_search_nodes,
        }

    def _cluster_json(self, project, cluster, version, now=None):
        # ``now``: the moment a change was accepted, so its answer shows the state it started,
        # however long the machine took to send it.
        deleted = cluster.deleted_at is not None
        strings = {} if deleted else cluster.connection_strings()
        body = {
            "id": cluster.cluster_id,
            "name": cluster.name,
            "groupId": project.group_id,
            "clusterType": cluster.cluster_type,
            "stateName": cluster.state_name(self.clock() if now is None else now),
            "paused": cluster.paused,
            "encryptionAtRestProvider": cluster.encryption_at_rest_provider,
            "connectionStrings": strings,
            "createDate": iso(cluster.created),
            "mongoDBMajorVersion": "8.0",
            "mongoDBVersion": "8.0.4",
            "backupEnabled": cluster.backup_enabled,
            "pitEnabled": cluster.pit_enabled,
            "terminationProtectionEnabled": False,
            "links": [{"rel": "self", "href": f"{self.base_url}{API}/groups/{project.group_id}/clusters/{cluster.name}"}],
        }
        if cluster.sharded():
            body["configServerType"] = "DEDICATED"
        if deleted and version == "2024-08-05":
            body["retainBackups"] = True
        if version == "2023-01-01" and not deleted:
            body["srvAddress"] = strings["standardSrv"]
            body["mongoURI"] = "mongodb://" + ",".join(f"{n.hostname}:{n.port}" for n in cluster.nodes)
        return body

    def _cluster(self, project, name):
        cluster = project.clusters.get(name)
        if cluster is None:
            raise errors.cluster_not_found(project.group_id, name)
        return cluster

    def _page(self, call, items):
        args = call.request.args
        fields = []

        def integer(name, default, low, high):
            raw = args.get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                value = None
            if value is None or value < low or (high is not None and value > high):
                fields.append((name, f"must be an integer from {low}" + (f" to {high}" if high else "")))
                return default
            return value

        per_page = integer("itemsPerPage", 100, 1, 500)
        page = integer("pageNum", 1, 1, None)
        include = (args.get("includeCount") or "true").lower()
        if include not in ("true", "false"):
            fields.append(("includeCount", "must be true or false"))
        if fields:
            raise errors.validation_error(fields)
        start = (page - 1) * per_page
        base = f"{self.base_url}{call.request.path}"
        links = [{"rel": "self", "href": f"{base}?pageNum={page}&itemsPerPage={per_page}"}]
        if start + per_page < len(items):
            links.append({"rel": "next", "href": f"{base}?pageNum={page + 1}&itemsPerPage={per_page}"})
        if page > 1:
            links.append({"rel": "previous", "href": f"{base}?pageNum={page - 1}&itemsPerPage={per_page}"})
        body = {"links": links, "results": items[start : start + per_page]}
        if include == "true":
            body["totalCount"] = len(items)
        return body

    @staticmethod
    def _flag(call, name, default=False):
        raw = call.request.args.get(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            raise errors.validation_error([(name, "must be true or false")])
        return raw.lower() == "true"

    def _group_json(self, project):
        return {
            "id": project.group_id,
            "name": project.name,
            "orgId": project.org_id,
            "clusterCount": len(project.clusters),
            "created": iso(project.created),
            "links": [{"rel": "self", "href": f"{self.base_url}{API}/groups/{project.group_id}"}],
        }

    # -- handlers: projects --------------------------------------------------------------------------

    def _list_groups(self, call):
        return 200, self._page(call, [self._group_json(p) for p in self._projects.values()])

    def _get_group(self, call, group_id):
        return 200, self._group_json(self._project(group_id))

    def _list_org_groups(self, call, org_id):
        if org_id not in self._orgs:
            raise errors.org_not_found(org_id)
        prefix = (call.request.args.get("name") or "").lower()
        found = [p for p in self._projects.values() if p.org_id == org_id and p.name.lower().startswith(prefix)]
        return 200, self._page(call, [self._group_json(p) for p in found])

    # -- handlers: cloud provider access -------------------------------------------------------------

    def _list_roles(self, call, group_id):
        project = self._project(group_id)
        roles = [self._role_json(project, r) for r in project.roles.values()]
        return 200, {"awsIamRoles": roles, "azureServicePrincipals": [], "gcpServiceAccounts": []}

    def _create_role(self, call, group_id):
        project = self._project(group_id)
        provider = call.body.get("providerName")
        if provider != "AWS":
            reason = "is required" if provider is None else "must be AWS (the emulator implements AWS roles only)"
            raise errors.validation_error([("providerName", reason)])
        role = project.new_role(self.clock())
        return 200, self._role_json(project, role)

    def _get_role(self, call, group_id, role_id):
        project = self._project(group_id)
        return 200, self._role_json(project, self._role(project, role_id))

    def _authorize_role(self, call, group_id, role_id):
        project = self._project(group_id)
        role = self._role(project, role_id)
        body = call.body
        fields = []
        if body.get("providerName") != "AWS":
            fields.append(("providerName", "must be AWS for this role"))
        arn = body.get("iamAssumedRoleArn")
        if not isinstance(arn, str) or not ROLE_ARN.match(arn):
            fields.append(("iamAssumedRoleArn", "must be the ARN of an IAM role (arn:aws:iam::<account>:role/<name>)"))
        if fields:
            raise errors.validation_error(fields)
        self.aws.remember_account(ROLE_ARN.match(arn).group(2))
        iam_role = self.aws.role_by_arn(arn)
        if iam_role is None:
            raise errors.cannot_assume_role(arn, [f"IAM role {arn} does not exist"])
        age = self.clock() - iam_role["CreateDate"].timestamp()
        if age < self._propagation_delay:
            raise errors.cannot_assume_role(arn, [f"IAM role created {age:.1f}s ago, not yet visible to STS (propagation delay {self._propagation_delay}s)"])
        self._check_role_assumable(dataclasses.replace(role, iam_role_arn=arn))
        role.iam_role_arn = arn
        role.authorized = self.clock()
        return 200, self._role_json(project, role)

    def _deauthorize_role(self, call, group_id, provider, role_id):
        project = self._project(group_id)
        if provider not in ("AWS", "AZURE", "GCP"):
            raise errors.validation_error([("cloudProvider", "must be one of AWS, AZURE, GCP")])
        role = project.roles.get(role_id)
        if role is None or provider != "AWS":
            raise errors.role_not_found(group_id, role_id)
        if project.role_in_use(role_id):
            raise ApiError(
                400,
                "CLOUD_PROVIDER_ACCESS_ROLE_IN_USE",
                f"The cloud provider access role {role_id} is in use by ENCRYPTION_AT_REST and cannot be deauthorized.",
                [role_id],
            )
        del project.roles[role_id]
        return 204, None

    # -- handlers: encryption at rest ----------------------------------------------------------------

    def _get_ear(self, call, group_id):
        return 200, self._ear_json(self._project(group_id))

    def _update_ear(self, call, group_id):
        project = self._project(group_id)
        body = call.body
        fields = []
        for other in ("azureKeyVault", "googleCloudKms"):
            value = body.get(other)
            if value is not None and (not isinstance(value, dict) or value.get("enabled") is True):
                fields.append((other, "the emulator implements awsKms only; it can only be left disabled"))
        if "enabledForSearchNodes" in body and not isinstance(body["enabledForSearchNodes"], bool):
            fields.append(("enabledForSearchNodes", "must be a boolean"))
        aws = body.get("awsKms")
        if aws is not None and not isinstance(aws, dict):
            fields.append(("awsKms", "must be an object"))
            aws = None
        given = {k: v for k, v in (aws or {}).items() if k in AWS_KMS_FIELDS}
        fields += self._aws_kms_field_errors(given)
        if fields:
            raise errors.validation_error(fields)
        if "enabledForSearchNodes" in body:
            project.ear.enabled_for_search_nodes = body["enabledForSearchNodes"]
        if aws is None:
            return 200, self._ear_json(project)
        current = project.ear
        if given.get("enabled") is False:
            in_use = sorted(c.name for c in project.clusters.values() if c.encryption_at_rest_provider == "AWS")
            if in_use:
                raise ApiError(
                    409,
                    "ENCRYPTION_AT_REST_PROVIDER_IN_USE",
                    f"AWS KMS encryption at rest is in use by clusters {', '.join(in_use)}; set their encryptionAtRestProvider to NONE first.",
                    in_use,
                )
            if project.live_private_endpoints(self.clock()):
                code = "CANNOT_DISABLE_ENCRYPTION_AT_REST_DUE_TO_PRIVATE_ENDPOINTS"
                raise ApiError(400, code, "Encryption at Rest cannot be disabled when private endpoints are present.")
            project.ear = EncryptionAtRest(enabled_for_search_nodes=current.enabled_for_search_nodes, role_based_only=current.role_based_only)
            return 200, self._ear_json(project)
        candidate = self._merge_aws_kms(current, given)
        self._check_kms(project, candidate, list(self.egress_ips))
        project.ear = candidate
        return 200, self._ear_json(project)

    @staticmethod
    def _aws_kms_field_errors(given):
        fields = []
        for name in ("enabled", "requirePrivateNetworking"):
            if name in given and not isinstance(given[name], bool):
                fields.append((f"awsKms.{name}", "must be a boolean"))
        for name, low, high in (("customerMasterKeyID", 1, 2048), ("accessKeyID", 16, 128), ("secretAccessKey", 1, None), ("region", 1, None)):
            value = given.get(name)
            if name in given and (not isinstance(value, str) or len(value) < low or (high and len(value) > high)):
                fields.append((f"awsKms.{name}", f"must be a string of {low}" + (f" to {high}" if high else " or more") + " characters"))
        if isinstance(given.get("region"), str) and aws_region(given["region"]) is None:
            fields.append(("awsKms.region", f"{given['region']} is not an AWS region in Atlas form (e.g. US_EAST_1)"))
        if "roleId" in given and (not isinstance(given["roleId"], str) or not HEX24.match(given["roleId"])):
            fields.append(("awsKms.roleId", "must be a 24-hexadecimal string"))
        if "roleId" in given and ("accessKeyID" in given or "secretAccessKey" in given):
            fields.append(("awsKms", "give either roleId or accessKeyID/secretAccessKey, not both"))
        return fields

    def _merge_aws_kms(self, current, given):
        """The settings a PATCH asks for: all fields on first enable, only the changed ones later."""
        if not current.enabled:
            missing = [f for f in ("enabled", "customerMasterKeyID", "region") if f not in given]
            if given.get("enabled") is not True and "enabled" not in missing:
                missing.append("enabled")
            if "roleId" not in given and not ("accessKeyID" in given and "secretAccessKey" in given):
                missing.append("roleId (or accessKeyID and secretAccessKey)")
            if missing:
                raise errors.validation_error([(f"awsKms.{m}", "is required to enable AWS KMS encryption at rest") for m in missing])
        candidate = EncryptionAtRest(
            enabled=True,
            customer_master_key_id=given.get("customerMasterKeyID", current.customer_master_key_id),
            region=given.get("region", current.region),
            role_id=current.role_id,
            access_key_id=current.access_key_id,
            secret_access_key=current.secret_access_key,
            require_private_networking=given.get("requirePrivateNetworking", current.require_private_networking),
            enabled_for_search_nodes=current.enabled_for_search_nodes,
            role_based_only=current.role_based_only,
        )
        if "roleId" in given:
            candidate.role_id = given["roleId"]
            candidate.access_key_id = candidate.secret_access_key = None
            candidate.role_based_only = True
        elif "accessKeyID" in given or "secretAccessKey" in given:
            if current.role_based_only or current.role_id:
                raise ApiError(400, "AWS_KMS_CREDENTIALS_AUTH_DEPRECATED", "Credentials based authentication is no longer supported for AWS KMS.")
            if "accessKeyID" in given and given["accessKeyID"] != current.access_key_id and "secretAccessKey" not in given:
                raise errors.validation_error([("awsKms.secretAccessKey", "is required with a new accessKeyID")])
            candidate.access_key_id = given.get("accessKeyID", current.access_key_id)
            candidate.secret_access_key = given.get("secretAccessKey", current.secret_access_key)
        return candidate

    # -- handlers: encryption-at-rest private endpoints ----------------------------------------------

    @staticmethod
    def _ear_endpoint_provider(provider):
        if provider not in EAR_ENDPOINT_PROVIDERS:
            raise errors.validation_error([("cloudProvider", f"must be one of {', '.join(EAR_ENDPOINT_PROVIDERS)}")])
        return provider

    def _ear_endpoint_json(self, project, endpoint, now):
        body = {"cloudProvider": "AWS", "id": endpoint.endpoint_id, "regionName": endpoint.region_name, "status": endpoint.status(now)}
        if body["status"] == "FAILED":
            body["errorMessage"] = endpoint.error_message
        if body["status"] in ("ACTIVE", "DELETING"):
            body["privateEndpointConnectionName"] = endpoint.connection_name
        return body

    def _ear_endpoint(self, project, provider, endpoint_id, now):
        live = {e.endpoint_id: e for e in project.live_private_endpoints(now)} if provider == "AWS" else {}
        endpoint = live.get(endpoint_id)
        if endpoint is None:
            raise errors.resource_not_found(f"encryption at rest private endpoint {endpoint_id} ({provider})", [endpoint_id])
        return endpoint

    def _list_ear_endpoints(self, call, group_id, provider):
        project = self._project(group_id)
        self._ear_endpoint_provider(provider)
        now = self.clock()
        # Azure Key Vault cannot be enabled here, so it never has endpoints.
        found = sorted(project.live_private_endpoints(now), key=lambda e: e.created) if provider == "AWS" else []
        return 200, self._page(call, [self._ear_endpoint_json(project, e, now) for e in found])

    def _create_ear_endpoint(self, call, group_id, provider):
        project = self._project(group_id)
        self._ear_endpoint_provider(provider)
        body = call.body
        fields = []
        if provider != "AWS":
            fields.append(("cloudProvider", "the emulator implements AWS KMS only (Azure Key Vault cannot be enabled)"))
        if body.get("cloudProvider") != provider:
            fields.append(("cloudProvider", f"is required and must be the path's cloud provider ({provider})"))
        region = body.get("regionName")
        if not isinstance(region, str) or aws_region(region) is None:
            fields.append(("regionName", "must be an AWS region in Atlas form (e.g. US_EAST_1)"))
        if fields:
            raise errors.validation_error(fields)
        if not (project.ear.enabled and project.ear.require_private_networking):
            raise ApiError(
                400,
                "ENCRYPTION_AT_REST_PRIVATE_NETWORKING_NOT_ENABLED",
                f"Encryption at rest using AWS KMS with requirePrivateNetworking must be enabled for group {group_id} before creating private endpoints.",
                [group_id],
            )
        now = self.clock()
        taken = [e for e in project.live_private_endpoints(now) if e.region_name == region and e.status(now) != "DELETING"]
        if taken:
            raise ApiError(
                400,
                "ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_ALREADY_EXISTS",
                f"An encryption at rest private endpoint already exists in region {region} (id {taken[0].endpoint_id}).",
                [region],
            )
        endpoint = PrivateEndpoint(
            endpoint_id=new_id(),
            region_name=region,
            created=now,
            transition=self.private_endpoint_transition_seconds,
            error_message=project.next_endpoint_failure,
        )
        project.next_endpoint_failure = None
        project.private_endpoints[endpoint.endpoint_id] = endpoint
        return 202, self._ear_endpoint_json(project, endpoint, now)

    def _get_ear_endpoint(self, call, group_id, provider, endpoint_id):
        project = self._project(group_id)
        self._ear_endpoint_provider(provider)
        now = self.clock()
        return 200, self._ear_endpoint_json(project, self._ear_endpoint(project, provider, endpoint_id, now), now)

    def _delete_ear_endpoint(self, call, group_id, provider, endpoint_id):
        project = self._project(group_id)
        self._ear_endpoint_provider(provider)
        now = self.clock()
        endpoint = self._ear_endpoint(project, provider, endpoint_id, now)
        status = endpoint.status(now)
        if status == "INITIATING":
            raise ApiError(
                400,
                "ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_DELETE_BLOCKED_DURING_PROVISIONING",
                f"Failed to delete Encryption at Rest Private endpoint with id [{endpoint_id}] during IN_PROGRESS state. Please try again later.",
                [endpoint_id],
            )
        if status != "DELETING":
            endpoint.deleting_since = now
            endpoint.delete_transition = self.private_endpoint_transition_seconds
        return 204, None

    # -- handlers: backup compliance policy and snapshots ----------------------------------------------

    def _get_compliance_policy(self, call, group_id):
        project = self._project(group_id)
        if project.compliance_policy is None:
            raise errors.resource_not_found(f"Backup Compliance Policy of group {group_id}", [group_id])
        return 200, copy.deepcopy(project.compliance_policy)

    def _snapshot_clusters(self, project, name):
        found = project.clusters_named(name)
        if not found:
            raise errors.cluster_not_found(project.group_id, name)
        return found

    def _snapshot_links(self, project, cluster, snapshot, sharded_path=False):
        base = f"{self.base_url}{API}/groups/{project.group_id}/clusters/{cluster.name}/backup/snapshots"
        return [{"rel": "self", "href": f"{base}/{'shardedCluster/' if sharded_path else ''}{snapshot.snapshot_id}"}]

    def _snapshot_common(self, snapshot):
        body = {
            "createdAt": iso(snapshot.created),
            "expiresAt": iso(snapshot.expires),
            "frequencyType": snapshot.frequency_type,
            "id": snapshot.snapshot_id,
            "mongodVersion": "8.0.4",
            "policyItems": [],
            "snapshotType": snapshot.snapshot_type,
            "status": snapshot.status,
            "storageSizeBytes": snapshot.storage_size_bytes,
        }
        if snapshot.description and snapshot.snapshot_type == "onDemand":
            body["description"] = snapshot.description
        if snapshot.master_key_uuid:
            body["masterKeyUUID"] = snapshot.master_key_uuid
        return body

    def _list_snapshots(self, call, group_id, name):
        project = self._project(group_id)
        clusters = self._snapshot_clusters(project, name)
        args = call.request.args
        point = {}
        fields = []
        for param in ("pointInTimeUtcSeconds", "oplogTs", "oplogInc"):
            if param in args:
                try:
                    point[param] = int(args[param])
                except ValueError:
                    fields.append((param, "must be an integer"))
        if "pointInTimeUtcSeconds" in point and ("oplogTs" in point or "oplogInc" in point):
            fields.append(("pointInTimeUtcSeconds", "is mutually exclusive with oplogTs and oplogInc"))
        if ("oplogTs" in point) != ("oplogInc" in point):
            fields.append(("oplogTs", "oplogTs and oplogInc must be given together"))
        if fields:
            raise errors.validation_error(fields)
        pairs = [(c, s) for c in clusters for s in c.snapshots]
        pairs.sort(key=lambda pair: pair[1].created, reverse=True)
        moment = point.get("pointInTimeUtcSeconds", point.get("oplogTs"))
        if moment is not None:
            # "the closest snapshot created before that point in time"
            pairs = [p for p in pairs if p[1].created <= moment and p[1].status == "completed"][:1]
        items = []
        for cluster, snapshot in pairs:
            body = self._snapshot_common(snapshot)
            body["cloudProvider"] = "AWS"
            body["copyRegions"] = []
            body["links"] = self._snapshot_links(project, cluster, snapshot)
            if cluster.sharded():
                body["type"] = "shardedCluster"
            else:
                body["type"] = "replicaSet"
                body["replicaSetName"] = cluster.replica_set_name()
            items.append(body)
        return 200, self._page(call, items)

    def _list_sharded_snapshots(self, call, group_id, name):
        project = self._project(group_id)
        clusters = [c for c in self._snapshot_clusters(project, name) if c.sharded()]
        pairs = sorted(((c, s) for c in clusters for s in c.snapshots), key=lambda pair: pair[1].created, reverse=True)
        items = []
        for cluster, snapshot in pairs:
            body = self._snapshot_common(snapshot)
            body["type"] = "shardedCluster"
            body["configServerType"] = "DEDICATED"
            body["links"] = self._snapshot_links(project, cluster, snapshot, sharded_path=True)
            body["members"] = [
                {"cloudProvider": "AWS", "id": member_id, "replicaSetName": member}
                for member_id, member in zip(snapshot.member_ids, cluster.member_names(), strict=True)
            ]
            body["snapshotIds"] = list(snapshot.member_ids)
            items.append(body)
        # The operation lists no pagination parameters: one page with everything.
        links = [{"rel": "self", "href": f"{self.base_url}{call.request.path}"}]
        return 200, {"links": links, "results": items, "totalCount": len(items)}

    # -- handlers: clusters and processes ------------------------------------------------------------

    def _list_clusters(self, call, group_id):
        project = self._project(group_id)
        include_deleted = self._flag(call, "includeDeletedWithRetainedBackups")
        found = sorted(project.clusters.values(), key=lambda c: c.name)
        if include_deleted:
            found += sorted(project.deleted_clusters, key=lambda c: (c.name, c.deleted_at))
        return 200, self._page(call, [self._cluster_json(project, c, call.version) for c in found])

    def _get_cluster(self, call, group_id, name):
        project = self._project(group_id)
        return 200, self._cluster_json(project, self._cluster(project, name), call.version)

    def _update_cluster(self, call, group_id, name):
        project = self._project(group_id)
        cluster = self._cluster(project, name)
        body = call.body
        fields = []
        provider = body.get("encryptionAtRestProvider")
        if "encryptionAtRestProvider" in body and provider not in PROVIDERS:
            fields.append(("encryptionAtRestProvider", f"must be one of {', '.join(PROVIDERS)}"))
        paused = body.get("paused")
        if "paused" in body and not isinstance(paused, bool):
            fields.append(("paused", "must be a boolean"))
        if fields:
            raise errors.validation_error(fields)
        change_provider = provider is not None and provider != cluster.encryption_at_rest_provider
        now = self.clock()
        if cluster.paused:
            # Only resuming (alone) is allowed on a paused cluster.
            if paused is False and not change_provider:
                cluster.paused = False
                cluster.updating_until = now + self.cluster_transition_seconds
                return 200, self._cluster_json(project, cluster, call.version, now)
            if paused is True and not change_provider:
                return 200, self._cluster_json(project, cluster, call.version)
            raise ApiError(409, "CANNOT_UPDATE_PAUSED_CLUSTER", f"Cannot update cluster {name} while it is paused or being paused.", [name])
        if change_provider and provider != "NONE":
            if provider != "AWS" or not project.ear.enabled:
                raise ApiError(
                    400,
                    "ENCRYPTION_AT_REST_PROVIDER_NOT_CONFIGURED",
                    f"Encryption at rest using customer key management with {provider} is not configured for group {group_id}.",
                    [provider],
                )
            others = [c for c in project.clusters.values() if c.encryption_at_rest_provider == "AWS" and not c.paused and c is not cluster]
            self._check_kms(project, project.ear, self._sources(project, [*others, cluster]))
        if change_provider:
            cluster.encryption_at_rest_provider = provider
        if paused is True:
            cluster.paused = True
        if change_provider or paused is True:
            cluster.updating_until = now + self.cluster_transition_seconds
        return 200, self._cluster_json(project, cluster, call.version, now)

    def _list_processes(self, call, group_id):
        project = self._project(group_id)
        processes = []
        for cluster in sorted(project.clusters.values(), key=lambda c: c.name):
            for index, node in enumerate(cluster.nodes):
                processes.append(
                    {
                        "id": f"{node.hostname}:{node.port}",
                        "hostname": node.hostname,
                        "port": node.port,
                        "groupId": project.group_id,
                        "typeName": "REPLICA_PRIMARY" if index == 0 else "REPLICA_SECONDARY",
                        "userAlias": node.hostname,
                        "replicaSetName": cluster.replica_set_name(),
                        "version": "8.0.4",
                        "created": iso(cluster.created),
                    }
                )
        return 200, self._page(call, processes)

    def _control_plane_ips(self, call):
        outbound = {region: [f"{ip}/32" for ip in self.egress_ips] for region in CONTROL_PLANE_REGIONS}
        inbound = {region: [f"{ip}/32" for ip in INBOUND_IPS] for region in CONTROL_PLANE_REGIONS}
        return 200, {"inbound": {"aws": inbound, "azure": {}, "gcp": {}}, "outbound": {"aws": outbound, "azure": {}, "gcp": {}}}

    # -- HTTP control API (not in the request log) ---------------------------------------------------

    def _control(self, request):
        path = request.path[len(CONTROL) :].strip("/")
        method = request.method.upper()
        try:
            data = request.get_json(silent=True) or {}
            result = self._control_dispatch(method, path.split("/") if path else [], data)
            return Response(json.dumps(result), status=200, content_type="application/json")
        except KeyError as exc:
            return Response(json.dumps({"error": f"not found: {exc}"}), status=404, content_type="application/json")
        except (TypeError, ValueError) as exc:
            return Response(json.dumps({"error": str(exc)}), status=400, content_type="application/json")

    def _control_dispatch(self, method, parts, data):
        route = (method, *parts)
        if route == ("POST", "api-keys"):
            self.add_api_key(data["public_key"], data["private_key"])
            return {"ok": True}
        if route == ("POST", "service-accounts"):
            self.add_service_account(data["client_id"], data["client_secret"], data.get("token_lifetime", 3600))
            return {"ok": True}
        if route == ("POST", "projects"):
            return {"group_id": self.add_project(data.get("group_id") or new_id(), data.get("name", "project"), data.get("org_id", DEFAULT_ORG_ID))}
        if route == ("POST", "organizations"):
            return {"org_id": self.add_organization(data["org_id"])}
        if route == ("POST", "private-endpoint-transition"):
            self.private_endpoint_transition_seconds = float(data["seconds"])
            return {"ok": True}
        if route == ("POST", "faults"):
            keys = ("status", "count", "retry_after", "delay", "error_code")
            self.inject_fault(data["operation_id"], **{k: data[k] for k in keys if k in data})
            return {"ok": True}
        if route == ("POST", "propagation-delay"):
            self.set_propagation_delay(data["seconds"])
            return {"ok": True}
        if route == ("GET", "requests"):
            return self.request_log()
        if route == ("DELETE", "requests"):
            self.clear_request_log()
            return {"ok": True}
        if route == ("POST", "reset"):
            self.reset()
            return {"ok": True}
        if route == ("GET", "contract-violations"):
            return self.contract_violations()
        if len(parts) >= 2 and parts[0] == "projects":
            group_id = parts[1]
            if route == ("GET", "projects", group_id):
                return self.project_state(group_id)
            if route == ("POST", "projects", group_id, "clusters"):
                keys = ("paused", "encryption_at_rest_provider", "nodes", "cluster_type", "backup_enabled", "pit_enabled")
                options = {k: data[k] for k in keys if k in data}
                return {"id": self.add_cluster(group_id, data["name"], **options)}
            if route == ("POST", "projects", group_id, "encryption-at-rest"):
                self.set_encryption_at_rest(group_id, data["aws_kms"])
                return {"ok": True}
            if route == ("POST", "projects", group_id, "backup-compliance-policy"):
                self.set_backup_compliance_policy(group_id, **data)
                return {"ok": True}
            if route == ("DELETE", "projects", group_id, "backup-compliance-policy"):
                self.remove_backup_compliance_policy(group_id)
                return {"ok": True}
            if route == ("POST", "projects", group_id, "private-endpoint-failure"):
                self.fail_next_private_endpoint(group_id, **data)
                return {"ok": True}
            if len(parts) == 4 and route[:3] == ("DELETE", "projects", group_id) and parts[2] == "clusters":
                self.delete_cluster(group_id, parts[3], retain_backups=bool(data.get("retain_backups", False)))
                return {"ok": True}
            if len(parts) == 5 and route[:3] == ("POST", "projects", group_id) and parts[2] == "clusters" and parts[4] == "snapshots":
                return {"id": self.add_snapshot(group_id, parts[3], **data)}
            if len(parts) == 5 and route[:3] == ("POST", "projects", group_id) and parts[2] == "clusters" and parts[4] == "node-ip":
                self.set_node_public_ip(group_id, parts[3], data["hostname"], data["ip"])
                return {"ok": True}
        raise KeyError("/".join(parts) or "/")
