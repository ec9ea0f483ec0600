"""Helpers for tests that drive the Atlas emulator: an Atlas API client (digest or bearer, versioned
media types) and boto3 clients that act in a chosen moto account."""

import json
import secrets

import boto3
import requests
from requests.auth import HTTPDigestAuth

from .aws_view import ACCOUNT_HEADER

API = "/api/atlas/v2"

# The version the collection would send per operation (the newest the spec lists).
DEFAULT_VERSIONS = {
    "backup_compliance": "2023-10-01",
    "clusters": "2024-08-05",
    "cluster_patch": "2024-10-23",
    "control_plane": "2023-11-15",
    "default": "2023-01-01",
}


def new_group_id():
    return secrets.token_hex(12)


def media(version):
    return f"application/vnd.atlas.{version}+json"


class AtlasClient:
    """A thin client: ``get``/``post``/``patch``/``delete`` of an API path, JSON bodies, no retries."""

    def __init__(self, base_url, public_key=None, private_key=None, token=None):
        self.base_url = base_url
        self.session = requests.Session()
        if public_key is not None:
            self.session.auth = HTTPDigestAuth(public_key, private_key)
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method, path, body=None, version=None, content_version=None, headers=None, **kwargs):
        version = version or _default_version(method, path)
        all_headers = {"Accept": media(version)}
        data = None
        if body is not None:
            all_headers["Content-Type"] = media(content_version or version)
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        all_headers.update(headers or {})
        url = path if path.startswith("http") else f"{self.base_url}{path if path.startswith('/api') else API + path}"
        return self.session.request(method, url, data=data, headers=all_headers, timeout=30, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body, **kwargs):
        return self.request("POST", path, body=body, **kwargs)

    def patch(self, path, body, **kwargs):
        return self.request("PATCH", path, body=body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


def _default_version(method, path):
    if "controlPlaneIPAddresses" in path:
        return DEFAULT_VERSIONS["control_plane"]
    if "/backupCompliancePolicy" in path:
        return DEFAULT_VERSIONS["backup_compliance"]
    if "/backup/snapshots" in path:
        return DEFAULT_VERSIONS["default"]
    if "/clusters" in path:
        return DEFAULT_VERSIONS["cluster_patch"] if method == "PATCH" else DEFAULT_VERSIONS["clusters"]
    return DEFAULT_VERSIONS["default"]


def oauth_token(base_url, client_id, client_secret):
    response = requests.post(f"{base_url}/api/oauth/token", auth=(client_id, client_secret), data={"grant_type": "client_credentials"}, timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


_CLIENTS = {}


def aws(endpoint_url, service, account_id, region="us-east-1"):
    """A boto3 client acting in ``account_id`` of the moto server (cached)."""
    key = (endpoint_url, service, account_id, region)
    if key not in _CLIENTS:
        client = boto3.client(service, endpoint_url=endpoint_url, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")

        def add_account(request, **_kwargs):
            request.headers[ACCOUNT_HEADER] = account_id

        client.meta.events.register("before-sign.*.*", add_account)
        _CLIENTS[key] = client
    return _CLIENTS[key]


def trust_policy(atlas_principal, external_id, condition_operator="StringEquals", extra_conditions=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": atlas_principal}, "Action": "sts:AssumeRole"}
    conditions = dict(extra_conditions or {})
    if external_id is not None:
        conditions.setdefault(condition_operator, {})["sts:ExternalId"] = external_id
    if conditions:
        statement["Condition"] = conditions
    return {"Version": "2012-10-17", "Statement": [statement]}


def kms_statement(resource, actions=("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"), effect="Allow", principal=None, condition=None, sid=None):
    statement = {"Effect": effect, "Action": list(actions), "Resource": resource}
    if principal is not None:
        statement["Principal"] = principal
    if condition:
        statement["Condition"] = condition
    if sid:
        statement["Sid"] = sid
    return statement


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def root_key_policy(account_id, *extra):
    """The default key policy (delegates to IAM in the key's account) plus ``extra`` statements."""
    root = {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}}
    root.update({"Action": "kms:*", "Resource": "*"})
    return policy(root, *extra)


def start_moto():
    """A moto server on a free loopback port: ``(server, url)``; stop it with ``server.stop()``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


class Scenario:
    """One Atlas project plus the AWS pieces of the role-based setup, each step a call to make or break.

    Names are unique per scenario: moto keeps one set of backends per process, shared by every test.
    """

    def __init__(self, emulator, moto_url, api, role_account="111111111111", key_account=None, region="EU_WEST_2"):
        self.emulator = emulator
        self.moto_url = moto_url
        self.api = api
        self.role_account = role_account
        self.key_account = key_account or role_account
        self.region = region
        self.aws_region = region.lower().replace("_", "-")
        self.group_id = new_group_id()
        self.suffix = secrets.token_hex(4)
        emulator.add_project(self.group_id, f"project-{self.suffix}")
        self.role = None
        self.role_arn = None
        self.role_name = None
        self.key = None

    def iam(self, account=None):
        return aws(self.moto_url, "iam", account or self.role_account)

    def kms(self, account=None, region=None):
        return aws(self.moto_url, "kms", account or self.key_account, region or self.aws_region)

    def create_atlas_role(self):
        response = self.api.post(f"/groups/{self.group_id}/cloudProviderAccess", {"providerName": "AWS"})
        assert response.status_code == 200, response.text
        self.role = response.json()
        return self.role

    def create_iam_role(self, trust=None, name=None, path="/"):
        self.role_name = name or f"atlas-kms-{self.suffix}"
        trust = trust or trust_policy(self.role["atlasAWSAccountArn"], self.role["atlasAssumedRoleExternalId"])
        created = self.iam().create_role(RoleName=self.role_name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))
        self.role_arn = created["Role"]["Arn"]
        return self.role_arn

    def put_role_policy(self, document, name="atlas-kms"):
        self.iam().put_role_policy(RoleName=self.role_name, PolicyName=name, PolicyDocument=json.dumps(document))

    def create_key(self, key_policy=None, region=None):
        kwargs = {"Policy": json.dumps(key_policy)} if key_policy else {}
        self.key = self.kms(region=region).create_key(**kwargs)["KeyMetadata"]
        return self.key

    def authorize(self, arn=None):
        body = {"providerName": "AWS", "iamAssumedRoleArn": arn or self.role_arn}
        return self.api.patch(f"/groups/{self.group_id}/cloudProviderAccess/{self.role['roleId']}", body)

    def enable(self, key_id=None, region=None, role_id=None, **extra):
        aws_kms = {"enabled": True, "customerMasterKeyID": key_id or self.key["KeyId"], "region": region or self.region}
        aws_kms["roleId"] = role_id or self.role["roleId"]
        aws_kms.update(extra)
        return self.api.patch(f"/groups/{self.group_id}/encryptionAtRest", {"awsKms": aws_kms})

    def encryption_at_rest(self):
        response = self.api.get(f"/groups/{self.group_id}/encryptionAtRest")
        assert response.status_code == 200, response.text
        return response.json()["awsKms"]

    def ready_role(self, identity=True):
        """Atlas role, IAM role trusted by Atlas, a key and (optionally) an inline policy on it, authorized."""
        self.create_atlas_role()
        self.create_iam_role()
        if self.key is None:
            self.create_key()
        if identity:
            self.put_role_policy(policy(kms_statement(self.key["Arn"])))
        response = self.authorize()
        assert response.status_code == 200, response.text
        return self
