# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate ARNs, KMS key references, IAM role ARNs and account ids.

Everything here is offline: a malformed value fails with a message that names the option
and shows what a valid value looks like, before any AWS call.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import re
from collections import namedtuple

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError

ARN_FORMAT = "arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE"
KEY_ARN_EXAMPLE = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE_ARN_EXAMPLE = "arn:aws:iam::123456789012:role/atlas-kms"

_PARTITION_RE = re.compile(r"^aws(-[a-z]+)*$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_KEY_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_KEY_MRK_RE = re.compile(r"^mrk-[0-9a-f]{32}$")
# KMS alias names: "alias/" then letters, digits, "/", "_", "-"; 256 characters in all.
_ALIAS_RE = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")
# Role and user names: ASCII letters, digits and +=,.@_- only.
_IAM_NAME_RE = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,64}$")
# IAM paths are "/" or "/segments/" of printable ASCII, at most 512 characters.
_IAM_PATH_RE = re.compile(r"^/([\x21-\x7e]*/)?$")

KEY_REF_HELP = (
    "a key id (UUID such as 1234abcd-12ab-34cd-56ef-1234567890ab, or mrk- followed by 32 hex digits), "
    "a key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID), an alias name (alias/NAME) "
    "or an alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME)"
)

Arn = namedtuple("Arn", ["partition", "service", "region", "account", "resource"])
"""The five parts of an ARN after ``arn:``."""

KmsKeyRef = namedtuple("KmsKeyRef", ["kind", "key_id", "alias", "account", "region", "partition", "arn"])
"""A parsed KMS key reference.

``kind`` is one of ``key_id``, ``key_arn``, ``alias_name``, ``alias_arn``. ``key_id`` is set for the
two key kinds, ``alias`` (``alias/NAME``) for the two alias kinds; ``account``, ``region``,
``partition`` and ``arn`` only for the ARN kinds (None otherwise).
"""

RoleArn = namedtuple("RoleArn", ["partition", "account", "path", "name", "arn"])
"""A parsed IAM role ARN; ``path`` is ``/`` or ``/segments/``."""

KEY_KINDS = ("key_id", "key_arn")
ALIAS_KINDS = ("alias_name", "alias_arn")


class ArnError(CmkAtlasError, ValueError):
    """A value is not the ARN, key reference or account id an option expects."""


def _quote(value):
    return f"'{value}'" if isinstance(value, str) else repr(value)


def parse_arn(value, option="arn"):
    """Split an ARN into its parts, raising ArnError when it is not one."""
    if isinstance(value, str):
        parts = value.split(":", 5)
        if len(parts) == 6 and parts[0] == "arn" and _PARTITION_RE.match(parts[1]) and parts[2] and parts[5]:
            return Arn(parts[1], parts[2], parts[3], parts[4], parts[5])
    raise ArnError(f"{option} {_quote(value)} is not an ARN; expected {ARN_FORMAT}")


def is_account_id(value):
    return isinstance(value, str) and bool(_ACCOUNT_RE.match(value))


def validate_account_id(value, option="account_id"):
    """Return ``value`` when it is a 12-digit AWS account id (a string: leading zeros count)."""
    if not is_account_id(value):
        raise ArnError(f"{option} {_quote(value)} is not an AWS account id; expected 12 digits such as 123456789012")
    return value


def is_region_name(value):
    """Whether ``value`` has the shape of an AWS region name such as ``us-east-1``."""
    return isinstance(value, str) and bool(_REGION_RE.match(value))


def partition_for_region(region):
    """The ARN partition of an AWS region name."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def is_key_id(value):
    """Whether ``value`` is a bare KMS key id: a UUID or a multi-Region ``mrk-`` id."""
    return isinstance(value, str) and bool(_KEY_UUID_RE.match(value) or _KEY_MRK_RE.match(value))


def parse_kms_key_ref(value, option="key"):
    """Parse a KMS key id, key ARN, alias name or alias ARN into a KmsKeyRef."""
    if isinstance(value, str):
        if is_key_id(value):
            return KmsKeyRef("key_id", value, None, None, None, None, None)
        if _ALIAS_RE.match(value):
            return KmsKeyRef("alias_name", None, value, None, None, None, None)
        if value.startswith("arn:"):
            ref = _parse_kms_arn(value)
            if ref is not None:
                return ref
    raise ArnError(f"{option} {_quote(value)} is not a KMS key reference; expected {KEY_REF_HELP}")


def _parse_kms_arn(value):
    try:
        arn = parse_arn(value)
    except ArnError:
        return None
    if arn.service != "kms" or not is_region_name(arn.region) or not is_account_id(arn.account):
        return None
    if arn.resource.startswith("key/") and is_key_id(arn.resource[4:]):
        return KmsKeyRef("key_arn", arn.resource[4:], None, arn.account, arn.region, arn.partition, value)
    if _ALIAS_RE.match(arn.resource):
        return KmsKeyRef("alias_arn", None, arn.resource, arn.account, arn.region, arn.partition, value)
    return None


def parse_kms_key_arn(value, option="key_arn"):
    """Parse a KMS key ARN (not an alias or a bare id), as IAM policy resources need."""
    ref = None
    with contextlib.suppress(ArnError):
        ref = parse_kms_key_ref(value, option)
    if ref is None or ref.kind != "key_arn":
        raise ArnError(f"{option} {_quote(value)} is not a KMS key ARN; expected {KEY_ARN_EXAMPLE}")
    return ref


def is_aws_managed_alias(value):
    """Whether ``value`` names an AWS managed key alias (``alias/aws/...``), which Atlas cannot use."""
    if not isinstance(value, str):
        return False
    if value.startswith("arn:"):
        ref = _parse_kms_arn(value)
        name = ref.alias if ref is not None else None
    else:
        name = value
    return bool(name) and name.startswith("alias/aws/")


def build_key_arn(key_id, account, region, partition=None):
    """The ARN of KMS key ``key_id`` in ``account`` and ``region``; the partition follows the region by default."""
    if not is_key_id(key_id):
        raise ArnError(f"key id {_quote(key_id)} is not a KMS key id; expected a UUID or mrk- followed by 32 hex digits")
    validate_account_id(account, "account")
    if not is_region_name(region):
        raise ArnError(f"region {_quote(region)} is not an AWS region name; expected e.g. us-east-1")
    partition = partition or partition_for_region(region)
    if not _PARTITION_RE.match(partition):
        raise ArnError(f"partition {_quote(partition)} is not an AWS partition; expected e.g. aws, aws-cn or aws-us-gov")
    return f"arn:{partition}:kms:{region}:{account}:key/{key_id}"


def _split_path_name(rest):
    """Split ``service/sub/name`` into (``/service/sub/``, ``name``)."""
    head, _sep, name = rest.rpartition("/")
    path = f"/{head}/" if head else "/"
    return path, name


def parse_role_arn(value, option="role_arn"):
    """Parse an IAM role ARN (with or without a path) into a RoleArn."""
    if isinstance(value, str):
        try:
            arn = parse_arn(value)
        except ArnError:
            arn = None
        if arn is not None and arn.service == "iam" and arn.region == "" and is_account_id(arn.account) and arn.resource.startswith("role/"):
            path, name = _split_path_name(arn.resource[5:])
            if _IAM_NAME_RE.match(name) and len(path) <= 512 and _IAM_PATH_RE.match(path):
                return RoleArn(arn.partition, arn.account, path, name, value)
    raise ArnError(
        f"{option} {_quote(value)} is not an IAM role ARN; expected arn:aws:iam::ACCOUNT:role/NAME "
        f"or arn:aws:iam::ACCOUNT:role/PATH/NAME, e.g. {ROLE_ARN_EXAMPLE}"
    )


def build_role_arn(account, name, path="/", partition="aws"):
    """The ARN of IAM role ``name`` (under ``path``) in ``account``."""
    validate_account_id(account, "account")
    if not isinstance(name, str) or not _IAM_NAME_RE.match(name):
        raise ArnError(f"role name {_quote(name)} is not valid; expected 1-64 letters, digits or +=,.@_-")
    if not isinstance(path, str) or not _IAM_PATH_RE.match(path) or len(path) > 512:
        raise ArnError(f"role path {_quote(path)} is not valid; expected / or /PATH/ such as /service/")
    return f"arn:{partition}:iam::{account}:role{path}{name}"


def validate_iam_principal(value, option="principal"):
    """Return ``value`` when it names an IAM principal: an account id or an account-root, role or user ARN."""
    if is_account_id(value):
        return value
    if isinstance(value, str):
        try:
            arn = parse_arn(value)
        except ArnError:
            arn = None
        if arn is not None and arn.service == "iam" and arn.region == "" and is_account_id(arn.account):
            if arn.resource == "root":
                return value
            kind, _sep, rest = arn.resource.partition("/")
            if kind in ("role", "user"):
                path, name = _split_path_name(rest)
                if _IAM_NAME_RE.match(name) and _IAM_PATH_RE.match(path):
                    return value
    raise ArnError(
        f"{option} {_quote(value)} is not an IAM principal; expected a 12-digit account id or an ARN such as "
        "arn:aws:iam::123456789012:root, arn:aws:iam::123456789012:role/NAME or arn:aws:iam::123456789012:user/NAME"
    )
