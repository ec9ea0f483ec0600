# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IAM and KMS policy documents: build, normalise, compare, and edit one statement by Sid.

Documents are accepted as dicts or JSON strings (IAM sometimes returns them URL-encoded).
Comparison is semantic: two documents are equal when IAM would treat them the same, so a
module writes only when something really differs and its diff shows only real differences.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import copy
import ipaddress
import json
import re
from urllib.parse import unquote

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError, parse_kms_key_arn, validate_iam_principal

# What IAM assumes when a document has no Version.
IMPLICIT_VERSION = "2008-10-17"
# What we write: the version that supports policy variables.
POLICY_VERSION = "2012-10-17"

ATLAS_TRUST_SID = "MongoDBAtlasAssumeRole"
KMS_ACCESS_SID = "MongoDBAtlasKmsAccess"
# Exactly what Atlas needs on the key, nothing more.
KMS_ACCESS_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt")
MANAGE_KEY_ACTION = "kms:PutKeyPolicy"

# sts:ExternalId as STS accepts it.
_EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$")
_ROOT_ARN_RE = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::(\d{12}):root$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")

_STATEMENT_KEY_ORDER = ("Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition")

_CONDITION_OPERATORS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
)
_OPERATOR_BY_LOWER = {name.lower(): name for name in _CONDITION_OPERATORS}
_OPERATOR_PREFIXES = ("ForAllValues:", "ForAnyValue:")

# Spelling used in canonical output; other condition keys are compared (and shown) in lower case.
_CONDITION_KEYS = (
    "aws:CalledVia",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:MultiFactorAuthPresent",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalIsAWSService",
    "aws:PrincipalOrgID",
    "aws:PrincipalType",
    "aws:RequestedRegion",
    "aws:SecureTransport",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:SourceIp",
    "aws:SourceOrgID",
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:ViaAWSService",
    "aws:VpcSourceIp",
    "aws:userid",
    "aws:username",
    "iam:PassedToService",
    "kms:BypassPolicyLockoutSafetyCheck",
    "kms:CallerAccount",
    "kms:EncryptionContextKeys",
    "kms:GrantIsForAWSResource",
    "kms:KeySpec",
    "kms:KeyUsage",
    "kms:MultiRegion",
    "kms:ViaService",
    "sts:ExternalId",
    "sts:RoleSessionName",
    "sts:SourceIdentity",
)
_CONDITION_KEY_BY_LOWER = {name.lower(): name for name in _CONDITION_KEYS}


class PolicyError(CmkAtlasError, ValueError):
    """A policy document, statement or builder argument is not valid."""


# -- loading ---------------------------------------------------------------------------------


def load_policy(doc, what="policy"):
    """Return a deep copy of ``doc`` as a dict, or None for no document.

    ``doc`` may be a dict, a JSON string, or URL-encoded JSON as IAM returns it.
    """
    if doc is None:
        return None
    if isinstance(doc, (bytes, bytearray)):
        doc = doc.decode("utf-8")
    if isinstance(doc, str):
        text = doc.strip()
        if not text:
            return None
        parsed = _parse_json(text)
        if parsed is None:
            parsed = _parse_json(unquote(text))
        if parsed is None:
            raise PolicyError(f'{what} is not valid JSON; expected a policy document such as {{"Version": "{POLICY_VERSION}", "Statement": [...]}}')
        doc = parsed
    if not isinstance(doc, dict):
        raise PolicyError(f"{what} must be a JSON object with a Statement list, not {type(doc).__name__}")
    doc = copy.deepcopy(doc)
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(stmt, dict) for stmt in statements):
        raise PolicyError(f"{what}: Statement must be an object or a list of objects")
    return doc


def _parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _statements(doc):
    """The statements of a loaded document as a list (a lone statement object counts as one)."""
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        return [statements]
    return list(statements)


def policy_json(doc):
    """The JSON text to send to AWS for a document (key order as given)."""
    return json.dumps(load_policy(doc), separators=(",", ":"))


# -- normalisation ---------------------------------------------------------------------------


def _as_list(value):
    if isinstance(value, list):
        return value
    return [value]


def _scalar_text(value):
    """Condition values: true/1 in JSON compare equal to "true"/"1"."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _collapse(values):
    """Sorted, de-duplicated; a single value stands alone, as IAM accepts either."""
    unique = sorted(set(values))
    if len(unique) == 1:
        return unique[0]
    return unique


def _canonical_aws_principal(value):
    if not isinstance(value, str):
        return _scalar_text(value)
    match = _ROOT_ARN_RE.match(value)
    if match:
        return match.group(1)
    return value


def _canonical_principal(principal):
    if principal == "*":
        principal = {"AWS": "*"}
    if not isinstance(principal, dict):
        return principal
    result = {}
    for kind in sorted(principal):
        convert = _canonical_aws_principal if kind == "AWS" else _scalar_text
        result[kind] = _collapse(convert(value) for value in _as_list(principal[kind]))
    return result


# Conventional spelling of the actions key policies and Atlas roles usually carry, so diffs read
# the way users wrote them; other actions are compared (and shown) in lower case.
_KNOWN_ACTIONS = (
    "kms:*",
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKey*",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncrypt*",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
    "sts:AssumeRole",
    "sts:TagSession",
)
_ACTION_BY_LOWER = {name.lower(): name for name in _KNOWN_ACTIONS}


def _canonical_action(value):
    # IAM action names are case-insensitive.
    if not isinstance(value, str):
        return _scalar_text(value)
    return _ACTION_BY_LOWER.get(value.lower(), value.lower())


def canonical_condition_operator(name):
    """The conventional spelling of a condition operator; operators are case-insensitive."""
    lowered = name.lower()
    prefix = ""
    for candidate in _OPERATOR_PREFIXES:
        if lowered.startswith(candidate.lower()):
            prefix = candidate
            lowered = lowered[len(candidate) :]
            break
    suffix = ""
    if lowered.endswith("ifexists") and lowered[: -len("ifexists")] in _OPERATOR_BY_LOWER:
        suffix = "IfExists"
        lowered = lowered[: -len("ifexists")]
    base = _OPERATOR_BY_LOWER.get(lowered)
    if base is None:
        return name.lower()
    return prefix + base + suffix


def canonical_condition_key(name):
    """The conventional spelling of a condition key; keys are case-insensitive."""
    lowered = name.lower()
    return _CONDITION_KEY_BY_LOWER.get(lowered, lowered)


def _canonical_condition(condition):
    if not isinstance(condition, dict):
        return condition
    merged = {}
    for operator, clauses in condition.items():
        target = merged.setdefault(canonical_condition_operator(operator), {})
        if not isinstance(clauses, dict):
            raise PolicyError(f"condition operator {operator} must map condition keys to values")
        for key, values in clauses.items():
            target.setdefault(canonical_condition_key(key), set()).update(_scalar_text(value) for value in _as_list(values))
    return {operator: {key: _collapse(merged[operator][key]) for key in sorted(merged[operator])} for operator in sorted(merged)}


def _canonical_generic(value):
    if isinstance(value, dict):
        return {key: _canonical_generic(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        items = [_canonical_generic(item) for item in value]
        unique = {json.dumps(item, sort_keys=True): item for item in items}
        ordered = [unique[key] for key in sorted(unique)]
        return ordered[0] if len(ordered) == 1 else ordered
    return value


def normalize_statement(statement):
    """A canonical form of one statement: equal for statements IAM treats the same."""
    if not isinstance(statement, dict):
        raise PolicyError("a policy statement must be a JSON object")
    result = {}
    for key in _STATEMENT_KEY_ORDER:
        if key not in statement:
            continue
        value = statement[key]
        if key in ("Principal", "NotPrincipal"):
            value = _canonical_principal(value)
        elif key in ("Action", "NotAction"):
            value = _collapse(_canonical_action(item) for item in _as_list(value))
        elif key in ("Resource", "NotResource"):
            value = _collapse(_scalar_text(item) for item in _as_list(value))
        elif key == "Condition":
            value = _canonical_condition(value)
        else:
            value = copy.deepcopy(value)
        result[key] = value
    for key in sorted(set(statement) - set(_STATEMENT_KEY_ORDER)):
        result[key] = _canonical_generic(statement[key])
    return result


def _statement_sort_key(statement):
    return (str(statement.get("Sid", "")), json.dumps(statement, sort_keys=True))


def normalize_policy(doc):
    """A canonical, JSON-serialisable form of a document, or None for no document.

    Statements and lists are sorted and de-duplicated, a single value stands alone, an account's
    root ARN becomes its account id, ``"*"`` principal becomes ``{"AWS": "*"}``, a missing
    Version becomes 2008-10-17, and actions, condition operators and condition keys get one
    spelling (the usual one where known, else lower case). Two documents are equal for IAM exactly when their canonical forms are equal.
    """
    loaded = load_policy(doc)
    if loaded is None:
        return None
    statements = {}
    for statement in _statements(loaded):
        canonical = normalize_statement(statement)
        statements[json.dumps(canonical, sort_keys=True)] = canonical
    result = {"Version": str(loaded.get("Version", IMPLICIT_VERSION))}
    if "Id" in loaded:
        result["Id"] = loaded["Id"]
    result["Statement"] = sorted(statements.values(), key=_statement_sort_key)
    for key in sorted(set(loaded) - {"Version", "Id", "Statement"}):
        result[key] = _canonical_generic(loaded[key])
    return result


def policies_equal(a, b):
    """Whether two documents (dicts, JSON strings or None) are semantically the same."""
    return normalize_policy(a) == normalize_policy(b)


def statements_equal(a, b):
    """Whether two statements are semantically the same."""
    return normalize_statement(a) == normalize_statement(b)


# -- editing by Sid --------------------------------------------------------------------------


def _require_sid(sid, what="statement Sid"):
    if not isinstance(sid, str) or not sid:
        raise PolicyError(f"{what} must be a non-empty string, so that the statement can be found again")
    return sid


def get_statement(doc, sid):
    """The first statement with Sid ``sid`` (a copy), or None."""
    loaded = load_policy(doc)
    if loaded is None:
        return None
    for statement in _statements(loaded):
        if statement.get("Sid") == sid:
            return statement
    return None


def upsert_statement(doc, statement):
    """Insert or replace the statement with ``statement``'s Sid; return ``(new_doc, changed)``.

    Other statements keep their position and exact content. An equal statement (semantically)
    leaves the document as it was. A missing document starts an empty one at POLICY_VERSION.
    """
    if not isinstance(statement, dict):
        raise PolicyError("statement must be a JSON object")
    sid = _require_sid(statement.get("Sid"))
    loaded = load_policy(doc)
    if loaded is None:
        loaded = {"Version": POLICY_VERSION, "Statement": []}
    statements = _statements(loaded)
    positions = [index for index, current in enumerate(statements) if current.get("Sid") == sid]
    if len(positions) == 1 and statements_equal(statements[positions[0]], statement):
        return loaded, False
    replacement = copy.deepcopy(statement)
    if positions:
        # Sids must be unique: the first one is replaced, any duplicates go.
        updated = []
        for index, current in enumerate(statements):
            if index == positions[0]:
                updated.append(replacement)
            elif index not in positions:
                updated.append(current)
    else:
        updated = [*statements, replacement]
    loaded["Statement"] = updated
    return loaded, True


def remove_statement(doc, sid):
    """Remove every statement with Sid ``sid``; return ``(new_doc, changed)``."""
    _require_sid(sid, "sid")
    loaded = load_policy(doc)
    if loaded is None:
        return None, False
    statements = _statements(loaded)
    kept = [statement for statement in statements if statement.get("Sid") != sid]
    if len(kept) == len(statements):
        return loaded, False
    loaded["Statement"] = kept
    return loaded, True


# -- builders --------------------------------------------------------------------------------


def _ip_sort_key(network):
    return (network.version, network.network_address, network.prefixlen)


def _admits_every_address(text):
    try:
        return ipaddress.ip_network(text, strict=False).prefixlen == 0
    except ValueError:
        return False


def normalize_source_ips(values, option="source_ips"):
    """Validate addresses and CIDR blocks; return them as sorted, unique CIDR strings (``1.2.3.4`` -> ``1.2.3.4/32``)."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise PolicyError(
            f"{option} must be a non-empty list of IP addresses or CIDR blocks such as 203.0.113.5 or 203.0.113.0/24; leave it unset for no restriction"
        )
    networks = set()
    for value in values:
        text = value.strip() if isinstance(value, str) else ""
        if _admits_every_address(text):
            # A condition that admits everyone looks like a restriction but is none: refuse it rather than hide it.
            raise PolicyError(
                f"{option} entry {value!r} admits every IPv{ipaddress.ip_network(text, strict=False).version} address, so it restricts nothing; "
                f"no aws:SourceIp condition is the same as allowing every address: leave {option} unset instead"
            )
        try:
            networks.add(ipaddress.ip_network(text, strict=True))
        except ValueError:
            hint = ""
            with contextlib.suppress(ValueError):
                hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
            raise PolicyError(f"{option} entry {value!r} is not an IP address or CIDR block such as 203.0.113.5 or 203.0.113.0/24{hint}") from None
    return [str(network) for network in sorted(networks, key=_ip_sort_key)]


def _single_or_list(values):
    return values[0] if len(values) == 1 else list(values)


def _source_ip_condition(source_ips):
    return {"IpAddress": {"aws:SourceIp": _single_or_list(normalize_source_ips(source_ips))}}


def build_atlas_trust_policy(atlas_aws_account_arn, external_id):
    """The trust policy that lets Atlas assume the role, only with Atlas's external id."""
    if not isinstance(atlas_aws_account_arn, str) or not atlas_aws_account_arn.startswith("arn:"):
        raise PolicyError(
            f"atlas_aws_account_arn {atlas_aws_account_arn!r} is not an IAM principal ARN; expected the atlasAWSAccountArn Atlas returns, "
            "such as arn:aws:iam::123456789012:root"
        )
    try:
        validate_iam_principal(atlas_aws_account_arn, "atlas_aws_account_arn")
    except ArnError as exc:
        raise PolicyError(str(exc)) from exc
    if not isinstance(external_id, str) or not external_id:
        raise PolicyError(
            "external_id is required: Atlas may assume the role only with its atlasAssumedRoleExternalId, so a trust policy without one is refused"
        )
    if not _EXTERNAL_ID_RE.match(external_id):
        raise PolicyError(f"external_id {external_id!r} is not a valid sts:ExternalId; expected 2-1224 characters of letters, digits and +=,.@:/-")
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": ATLAS_TRUST_SID,
                "Effect": "Allow",
                "Principal": {"AWS": atlas_aws_account_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def build_kms_access_policy(key_arns, source_ips=None, sid=KMS_ACCESS_SID):
    """The role's inline policy: encrypt, decrypt and describe on the given keys, optionally from source IPs only."""
    if isinstance(key_arns, str):
        key_arns = [key_arns]
    if not isinstance(key_arns, (list, tuple)) or not key_arns:
        raise PolicyError("key_arns must name at least one KMS key ARN such as arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    resources = set()
    for key_arn in key_arns:
        try:
            resources.add(parse_kms_key_arn(key_arn, "key_arns entry").arn)
        except ArnError as exc:
            raise PolicyError(str(exc)) from exc
    statement = {
        "Sid": _require_sid(sid, "sid"),
        "Effect": "Allow",
        "Action": list(KMS_ACCESS_ACTIONS),
        "Resource": _single_or_list(sorted(resources)),
    }
    if source_ips is not None:
        statement["Condition"] = _source_ip_condition(source_ips)
    return {"Version": POLICY_VERSION, "Statement": [statement]}


def build_key_policy_statement(sid, principal_arns_or_accounts, source_ips=None, partition="aws"):
    """A key-policy statement letting the principals encrypt, decrypt and describe this key.

    Account ids become their root ARN (``arn:PARTITION:iam::ACCOUNT:root``).
    """
    _require_sid(sid, "sid")
    principals = principal_arns_or_accounts
    if isinstance(principals, str):
        principals = [principals]
    if not isinstance(principals, (list, tuple)) or not principals:
        raise PolicyError("principals must name at least one IAM role ARN or account id")
    resolved = set()
    for principal in principals:
        try:
            validate_iam_principal(principal, "principal")
        except ArnError as exc:
            raise PolicyError(str(exc)) from exc
        resolved.add(f"arn:{partition}:iam::{principal}:root" if _ACCOUNT_RE.match(principal) else principal)
    statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": _single_or_list(sorted(resolved))},
        "Action": list(KMS_ACCESS_ACTIONS),
        "Resource": "*",
    }
    if source_ips is not None:
        statement["Condition"] = _source_ip_condition(source_ips)
    return statement


# -- analysis --------------------------------------------------------------------------------


def _wildcard_match(pattern, value, ignore_case=True):
    """IAM wildcards: ``*`` any run, ``?`` one character. Actions match case-insensitively, StringLike values do not."""
    regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.match(regex, value, flags) is not None


def _statement_covers_action(statement, action):
    if "Action" in statement:
        return any(isinstance(p, str) and _wildcard_match(p, action) for p in _as_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(isinstance(p, str) and _wildcard_match(p, action) for p in _as_list(statement["NotAction"]))
    return False


def _aws_principals(principal):
    canonical = _canonical_principal(principal)
    if not isinstance(canonical, dict) or "AWS" not in canonical:
        return set()
    return set(_as_list(canonical["AWS"]))


def _principal_account(principal):
    if _ACCOUNT_RE.match(principal):
        return principal
    parts = principal.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and _ACCOUNT_RE.match(parts[4]):
        return parts[4]
    return None


def _named_by(principal, names):
    """Whether a principal is named by a set of canonical AWS principals, directly, by "*" or by its account."""
    return "*" in names or principal in names or _principal_account(principal) in names


def principals_able_to_manage_key(doc, action=MANAGE_KEY_ACTION):
    """The AWS principals an Allow statement grants ``kms:PutKeyPolicy`` and no unconditional Deny takes away.

    Principals are in canonical form: an account id stands for the account (its root ARN), ``"*"`` for
    everyone. Conditional grants count. An empty list means the key policy locks everyone out.
    """
    loaded = load_policy(doc)
    if loaded is None:
        return []
    allowed = set()
    denials = []
    for statement in _statements(loaded):
        if not _statement_covers_action(statement, action):
            continue
        if statement.get("Effect") == "Allow" and "Principal" in statement:
            allowed.update(_aws_principals(statement["Principal"]))
        elif statement.get("Effect") == "Deny" and "Condition" not in statement:
            denials.append(statement)
    result = []
    for principal in allowed:
        denied = False
        for statement in denials:
            if "Principal" in statement:
                denied = _named_by(principal, _aws_principals(statement["Principal"]))
            elif "NotPrincipal" in statement:
                denied = not _named_by(principal, _aws_principals(statement["NotPrincipal"]))
            if denied:
                break
        if not denied:
            result.append(principal)
    return sorted(result)


def _condition_values(condition, operator, key):
    """Values a statement's condition gives ``key`` under ``operator`` (canonical spellings)."""
    canonical = _canonical_condition(condition or {})
    return _as_list(canonical.get(operator, {}).get(key, []))


def trust_policy_allows(doc, principal, external_id, action="sts:AssumeRole"):
    """Whether a trust policy lets ``principal`` assume the role with ``external_id``.

    An Allow statement must name the principal (same ARN, its account's root or account id, or
    ``"*"``), cover the action, and require the external id with StringEquals (or a matching
    StringLike); an unconditional Deny of the action for that principal wins. A role ARN that IAM
    replaced with a unique id (``AROA...``, the role was deleted) does not match.
    """
    loaded = load_policy(doc)
    if loaded is None or not isinstance(principal, str) or not external_id:
        return False
    wanted = _canonical_aws_principal(principal)
    allowed = False
    for statement in _statements(loaded):
        if not _statement_covers_action(statement, action):
            continue
        effect = statement.get("Effect")
        if "Principal" not in statement:
            continue
        names = _aws_principals(statement["Principal"])
        if effect == "Deny" and "Condition" not in statement and _named_by(wanted, names):
            return False
        if effect == "Allow" and ("*" in names or wanted in names) and _requires_external_id(statement.get("Condition"), external_id):
            allowed = True
    return allowed


def _requires_external_id(condition, external_id):
    if external_id in _condition_values(condition, "StringEquals", "sts:ExternalId"):
        return True
    return any(_wildcard_match(pattern, external_id, ignore_case=False) for pattern in _condition_values(condition, "StringLike", "sts:ExternalId"))


def condition_source_ips(doc):
    """The addresses of every ``IpAddress aws:SourceIp`` condition in ``doc``, as sorted, unique CIDR strings (a /0 left out)."""
    found = []
    for statement in _statements(doc or {}):
        condition = statement.get("Condition") or {}
        for operator, keys in condition.items():
            if canonical_condition_operator(operator) != "IpAddress" or not isinstance(keys, dict):
                continue
            for key, values in keys.items():
                if canonical_condition_key(key).lower() == "aws:sourceip":
                    # A /0 written elsewhere restricts nothing, as if the condition were not there.
                    found.extend(value for value in _as_list(values) if not (isinstance(value, str) and _admits_every_address(value.strip())))
    return normalize_source_ips(found) if found else []
