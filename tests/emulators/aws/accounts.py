"""boto3 clients that act in a chosen AWS account of the moto server, and seeding helpers.

moto picks the account of a request from the ``x-moto-account-id`` header before it looks at
the access key, so one set of dummy credentials reaches every account.
"""

import json
import threading

import boto3
from botocore.config import Config

ACCOUNT_HEADER = "x-moto-account-id"
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"  # moto does not check secrets
KEY_STATES = ("Enabled", "Disabled", "PendingDeletion")


_LOCK = threading.Lock()
_SESSION = []
_CLIENTS = {}


def client(endpoint_url, service, account_id=None, region="us-east-1", credentials=None):
    """A boto3 client for ``service`` at ``endpoint_url``.

    With ``account_id`` every request carries moto's account header; without it, moto maps the
    access key of ``credentials`` (a dict with ``access_key_id``, ``secret_access_key`` and
    optionally ``session_token``) to its account, as it does for the collection.
    Clients are cached: loading a service model costs far more than the calls seeding makes.
    """
    credentials = credentials or {}
    access = (
        credentials.get("access_key_id", DUMMY_ACCESS_KEY_ID),
        credentials.get("secret_access_key", DUMMY_SECRET_ACCESS_KEY),
        credentials.get("session_token"),
    )
    account_id = None if account_id is None else str(account_id)
    cache_key = (endpoint_url, service, account_id, region, access)
    with _LOCK:
        if cache_key in _CLIENTS:
            return _CLIENTS[cache_key]
        if not _SESSION:
            _SESSION.append(boto3.session.Session())
        # No retries: seeding and assertions must see the first answer.
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        result = _SESSION[0].client(
            service,
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access[0],
            aws_secret_access_key=access[1],
            aws_session_token=access[2],
            config=config,
        )
        if account_id is not None:

            def add_account_header(request, **_kwargs):
                request.headers[ACCOUNT_HEADER] = account_id

            result.meta.events.register("before-sign", add_account_header)
        _CLIENTS[cache_key] = result
        return result


def default_key_policy(account_id):
    """The key policy AWS gives a key created without one: the account root may do ``kms:*``."""
    return {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def _document(policy):
    return policy if isinstance(policy, str) else json.dumps(policy)


class Accounts:
    """Seeding and inspection of resources in the accounts of one moto server."""

    def __init__(self, endpoint_url, default_region="us-east-1"):
        self.endpoint_url = endpoint_url
        self.default_region = default_region

    def client(self, service, account_id, region=None):
        return client(self.endpoint_url, service, account_id, region or self.default_region)

    def create_key(self, account_id, region=None, alias=None, state="Enabled", policy=None, description="", tags=None):
        """Create a symmetric KMS key; returns its facts (``key_id``, ``arn``, ``alias``, ``alias_arn``, ...).

        ``policy`` is a dict or JSON text; None gives AWS's default key policy.
        ``state`` is Enabled, Disabled or PendingDeletion (deletion scheduled in 7 days).
        """
        if state not in KEY_STATES:
            raise ValueError(f"key state must be one of {KEY_STATES}, not {state!r}")
        region = region or self.default_region
        kms = self.client("kms", account_id, region)
        arguments = {
            "Description": description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "Policy": _document(policy if policy is not None else default_key_policy(account_id)),
        }
        if tags:
            arguments["Tags"] = [{"TagKey": key, "TagValue": str(value)} for key, value in tags.items()]
        metadata = kms.create_key(**arguments)["KeyMetadata"]
        key_id = metadata["KeyId"]
        if alias:
            alias = alias if alias.startswith("alias/") else f"alias/{alias}"
            kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        if state == "Disabled":
            kms.disable_key(KeyId=key_id)
        elif state == "PendingDeletion":
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        return {
            "account": str(account_id),
            "region": region,
            "key_id": key_id,
            "arn": metadata["Arn"],
            "alias": alias,
            "alias_arn": f"arn:aws:kms:{region}:{account_id}:{alias}" if alias else None,
            "state": state,
        }

    def create_role(self, account_id, name, trust_policy=None, trusted_principals=(), inline_policies=None, tags=None, path="/"):
        """Create an IAM role; returns ``{"name", "arn", "role_id", "account"}``.

        The trust policy is ``trust_policy`` if given, else one that lets ``trusted_principals``
        (ARNs or 12-digit account ids) call ``sts:AssumeRole``.
        """
        iam = self.client("iam", account_id)
        if trust_policy is None:
            principals = [p if p.startswith("arn:") else f"arn:aws:iam::{p}:root" for p in map(str, trusted_principals)]
            trust_policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"}],
            }
        arguments = {"RoleName": name, "Path": path, "AssumeRolePolicyDocument": _document(trust_policy)}
        if tags:
            arguments["Tags"] = [{"Key": key, "Value": str(value)} for key, value in tags.items()]
        role = iam.create_role(**arguments)["Role"]
        for policy_name, document in (inline_policies or {}).items():
            iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=_document(document))
        return {"account": str(account_id), "name": name, "arn": role["Arn"], "role_id": role["RoleId"]}

    def create_user_with_access_key(self, account_id, name, policy_document=None, policy_name="inline", inline_policies=None):
        """Create an IAM user with one access key and inline policies.

        Returns ``{"name", "arn", "account", "access_key_id", "secret_access_key"}``; moto maps
        the access key to ``account_id``, so requests signed with it act there.
        """
        iam = self.client("iam", account_id)
        user = iam.create_user(UserName=name)["User"]
        policies = dict(inline_policies or {})
        if policy_document is not None:
            policies[policy_name] = policy_document
        for policy, document in policies.items():
            iam.put_user_policy(UserName=name, PolicyName=policy, PolicyDocument=_document(document))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "account": str(account_id),
            "name": name,
            "arn": user["Arn"],
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }

    def key_policy(self, account_id, key_id, region=None):
        kms = self.client("kms", account_id, region)
        return json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])

    def key_ids(self, account_id, region=None):
        kms = self.client("kms", account_id, region)
        return [key["KeyId"] for key in kms.list_keys()["Keys"]]
