"""Read-only view of the AWS side (moto server) as Atlas would see it.

Every call names its account: a botocore hook adds moto's ``x-moto-account-id`` header, so one set of
dummy credentials reaches every account. Nothing here writes to AWS.
"""

import json
import re
import threading
import urllib.parse

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT_HEADER = "x-moto-account-id"
DEFAULT_MOTO_ACCOUNT = "123456789012"
ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:(.*)/)?([\w+=,.@-]+)$")
KMS_ARN = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)$")
POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/")


def _document(value):
    """Policy documents come back decoded by botocore, or URL-encoded JSON from some calls."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    text = urllib.parse.unquote(value) if value.lstrip().startswith("%") else value
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(urllib.parse.unquote(value))


def _not_found(exc):
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("NoSuchEntity", "NotFoundException", "NoSuchEntityException") or "NotFound" in code


class AwsView:
    """boto3 clients to ``endpoint_url``, one per (service, account, region), created on first use."""

    def __init__(self, endpoint_url, known_accounts=()):
        self.endpoint_url = endpoint_url.rstrip("/")
        self._session = boto3.session.Session(aws_access_key_id="atlas-emulator", aws_secret_access_key="atlas-emulator", region_name="us-east-1")
        self._clients = {}
        self._lock = threading.Lock()
        self.known_accounts = {DEFAULT_MOTO_ACCOUNT, *known_accounts}

    def remember_account(self, account_id):
        if account_id and re.fullmatch(r"\d{12}", account_id):
            self.known_accounts.add(account_id)

    def client(self, service, account_id, region="us-east-1"):
        key = (service, account_id, region)
        with self._lock:
            if key not in self._clients:
                config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)
                client = self._session.client(service, endpoint_url=self.endpoint_url, region_name=region, config=config)

                def add_account(request, **_kwargs):
                    request.headers[ACCOUNT_HEADER] = account_id

                client.meta.events.register("before-sign.*.*", add_account)
                self._clients[key] = client
            return self._clients[key]

    # -- IAM -----------------------------------------------------------------------------------------

    def role(self, account_id, role_name):
        """``get_role`` result (CreateDate, AssumeRolePolicyDocument decoded, ...) or None."""
        try:
            role = self.client("iam", account_id).get_role(RoleName=role_name)["Role"]
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        role["AssumeRolePolicyDocument"] = _document(role.get("AssumeRolePolicyDocument"))
        return role

    def role_by_arn(self, arn):
        match = ROLE_ARN.match(arn or "")
        if not match:
            return None
        role = self.role(match.group(2), match.group(4))
        if role is None or role.get("Arn") != arn:
            return None  # the name exists under another path: not the role the ARN names
        return role

    def managed_policy_document(self, account_id, policy_arn):
        owner = POLICY_ARN.match(policy_arn)
        iam = self.client("iam", account_id if owner is None or owner.group(1) == "aws" else owner.group(1))
        policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
        version = iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
        return _document(version["Document"])

    def role_policies(self, account_id, role_name):
        """``[(label, document)]``: inline policies, then attached managed policies (default version)."""
        iam = self.client("iam", account_id)
        found = []
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for name in page["PolicyNames"]:
                document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
                found.append((f"inline policy {name}", _document(document)))
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
            for attached in page["AttachedPolicies"]:
                found.append((f"managed policy {attached['PolicyArn']}", self.managed_policy_document(account_id, attached["PolicyArn"])))
        return found

    def user_policies(self, account_id, user_name):
        """``[(label, document)]`` for a user: inline, attached, and those of its groups."""
        iam = self.client("iam", account_id)
        found = []
        for name in iam.list_user_policies(UserName=user_name)["PolicyNames"]:
            document = iam.get_user_policy(UserName=user_name, PolicyName=name)["PolicyDocument"]
            found.append((f"inline policy {name}", _document(document)))
        for attached in iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"]:
            found.append((f"managed policy {attached['PolicyArn']}", self.managed_policy_document(account_id, attached["PolicyArn"])))
        for group in iam.list_groups_for_user(UserName=user_name)["Groups"]:
            group_name = group["GroupName"]
            for name in iam.list_group_policies(GroupName=group_name)["PolicyNames"]:
                document = iam.get_group_policy(GroupName=group_name, PolicyName=name)["PolicyDocument"]
                found.append((f"group {group_name} inline policy {name}", _document(document)))
            for attached in iam.list_attached_group_policies(GroupName=group_name)["AttachedPolicies"]:
                label = f"group {group_name} managed policy {attached['PolicyArn']}"
                found.append((label, self.managed_policy_document(account_id, attached["PolicyArn"])))
        return found

    def user(self, account_id, user_name):
        try:
            return self.client("iam", account_id).get_user(UserName=user_name)["User"]
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise

    def boundary_document(self, account_id, entity):
        """``(label, document)`` of a role's or user's permissions boundary, or None."""
        boundary = (entity or {}).get("PermissionsBoundary")
        if not boundary:
            return None
        arn = boundary["PermissionsBoundaryArn"]
        return (arn, self.managed_policy_document(account_id, arn))

    def access_key_owner(self, access_key_id):
        """``(account_id, user_name, status)`` of an IAM user's access key in a known account, or None."""
        for account_id in sorted(self.known_accounts):
            iam = self.client("iam", account_id)
            for page in iam.get_paginator("list_users").paginate():
                for user in page["Users"]:
                    keys = iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
                    for key in keys:
                        if key["AccessKeyId"] == access_key_id:
                            return account_id, user["UserName"], key.get("Status", "Active")
        return None

    def access_key_secret_matches(self, access_key_id, secret_access_key):
        """Whether the secret belongs to the key. IAM never returns a secret after creation, and moto
        does not verify signatures, so this reads moto's model dump (``/moto-api/data.json``)."""
        data = requests.get(f"{self.endpoint_url}/moto-api/data.json", timeout=30).json()
        for key in data.get("iam", {}).get("AccessKey", []):
            if key.get("access_key_id") == access_key_id:
                return key.get("secret_access_key") == secret_access_key
        return False

    # -- KMS -----------------------------------------------------------------------------------------

    def key(self, account_id, region, key_id):
        """``describe_key`` metadata (KeyId, Arn, KeyState, KeyManager, KeySpec, ...) or None."""
        try:
            return self.client("kms", account_id, region).describe_key(KeyId=key_id)["KeyMetadata"]
        except ClientError as exc:
            if _not_found(exc) or exc.response.get("Error", {}).get("Code") in ("InvalidArnException", "ValidationException"):
                return None
            raise

    def key_policy(self, account_id, region, key_id):
        policy = self.client("kms", account_id, region).get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
        return _document(policy)
