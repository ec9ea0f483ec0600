# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS KMS keys for Atlas: find a key by id, ARN or alias in the right account and region, say
whether Atlas can use it, read and write its key policy, and plan the one key-policy statement
that grants Atlas's IAM role (or an account) the key without touching anything else.

Lookups go through an ``AwsConnection``; everything that can be checked offline is checked
before the first call. Problems a user must fix raise ``KmsKeyError`` (a ``ModuleInputError``,
so ``CmkAtlasModule.run`` reports it as a clean failure); AWS failures stay ``AwsError``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import json
import re
from collections import namedtuple

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError, is_unknown
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import (
    ArnError,
    KmsKeyRef,
    is_account_id,
    is_aws_managed_alias,
    parse_arn,
    parse_kms_key_ref,
    parse_role_arn,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import (
    KMS_ACCESS_ACTIONS,
    build_key_policy_statement,
    load_policy,
    normalize_statement,
    policies_equal,
    policy_json,
    principals_able_to_manage_key,
    remove_statement,
    upsert_statement,
)
from ansible_collections.cmk.atlas.plugins.module_utils.policy.evaluator import Request, all_of, evaluate_policy, negate

# KMS keys have exactly one key policy, always called "default".
KEY_POLICY_NAME = "default"
KEY_ACCESS_SID_PREFIX = "MongoDBAtlasKeyAccess"
# In a role's Sid, letters and digits stand for themselves, every other byte is this letter and two hex digits.
KEY_ACCESS_SID_ESCAPE = "X"

# What Atlas needs: a symmetric encryption key.
ATLAS_KEY_SPEC = "SYMMETRIC_DEFAULT"
ATLAS_KEY_USAGE = "ENCRYPT_DECRYPT"
PENDING_DELETION_STATES = ("PendingDeletion", "PendingReplicaDeletion")

ERROR = "error"
WARNING = "warning"

KeyProblem = namedtuple("KeyProblem", ["severity", "code", "message"])
"""Something about a key that stops Atlas using it (``severity`` ``error``) or may (``warning``)."""

KeyPrincipal = namedtuple("KeyPrincipal", ["kind", "account", "name", "partition", "value"])
"""A principal a key-access statement names.

``kind`` is ``role``, ``account`` or ``unknown`` (a check-mode placeholder); ``account`` and
``name`` (the role name) where known; ``partition`` when the value was an ARN; ``value`` as given.
"""

KeyPolicyPlan = namedtuple("KeyPolicyPlan", ["before", "after", "changed", "statement"])
"""The key policy now and after the change (loaded documents), whether they differ, and the statement ensured (None when removing)."""

_PRINCIPAL_HELP = (
    "expected an IAM role ARN such as arn:aws:iam::123456789012:role/NAME, a 12-digit account id or an account root ARN such as arn:aws:iam::123456789012:root"
)
_ACCESS_ACTIONS = frozenset(action.lower() for action in KMS_ACCESS_ACTIONS)  # compared in lower case: actions are case-insensitive
_ALPHANUMERIC = re.compile(r"^[A-Za-z0-9]$")
# IAM shows a deleted role in a policy by its unique id.
_DELETED_ROLE = re.compile(r"^AROA[A-Z0-9]+$")


class KmsKeyError(ModuleInputError):
    """A key cannot be used as asked (missing, AWS managed, pending deletion, in another account, ...); raised before any write.

    ``code`` says which: ``not_found``, ``aws_managed``, ``pending_deletion``, ``not_symmetric``,
    ``wrong_account``, ``region_conflict``, ``bad_principal``, ``sid_required``, ``sid_conflict``, ``lockout``.
    """

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


# -- key references --------------------------------------------------------------------------


def ref_text(ref):
    """The key reference as the user gave it (ARN, alias name or key id)."""
    return ref.arn or ref.alias or ref.key_id


def key_ref(value, option="key_id"):
    """Parse a key id, key ARN, alias name or alias ARN; refuse AWS managed aliases offline.

    ``value`` may already be a KmsKeyRef. Raises ArnError for a malformed value.
    """
    ref = value if isinstance(value, KmsKeyRef) else parse_kms_key_ref(value, option)
    if ref.alias and is_aws_managed_alias(ref.alias):
        raise KmsKeyError(
            f"{option} '{ref_text(ref)}' names an AWS managed key ({ref.alias}): AWS fixes its key policy and Atlas cannot use it; "
            "create a customer managed key and give its id, ARN or alias",
            "aws_managed",
        )
    return ref


def key_region(ref, region=None, option="key_id", region_option="region"):
    """The region to find the key in: a key or alias ARN's own region, else ``region`` (None: the connection's).

    ``region`` is a region the user set explicitly; one that contradicts the ARN is an error.
    """
    if ref.region is None:
        return region
    if region is not None and region != ref.region:
        raise KmsKeyError(
            f"{option} '{ref.arn}' is in region {ref.region}, but {region_option} is {region}; "
            f"leave {region_option} unset or set it to {ref.region} (a key ARN names its own region)",
            "region_conflict",
        )
    return ref.region


def require_key_owner(connection, ref, option="key_id", purpose="change its key policy"):
    """Raise unless ``connection`` acts in the account that a key or alias ARN names.

    A key id or alias name is looked up in the connection's own account, so it always passes.
    Costs one sts:GetCallerIdentity (cached by the connection).
    """
    if ref.account is None:
        return
    identity = connection.caller_identity()
    if identity["Account"] == ref.account:
        return
    raise KmsKeyError(
        f"{option} '{ref.arn}' is a key in AWS account {ref.account}, but the AWS credentials act in account {identity['Account']} "
        f"({identity['Arn']}); only the key's own account can {purpose}: give credentials of account {ref.account}, for example "
        f"assume_role_arn: arn:{ref.partition}:iam::{ref.account}:role/ROLE_NAME for a role there that may call kms:PutKeyPolicy",
        "wrong_account",
    )


# -- lookup ----------------------------------------------------------------------------------


def _iso(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def key_metadata(raw, reference=None):
    """DescribeKey's KeyMetadata in snake_case, with the account, region and partition from the key ARN."""
    arn = parse_arn(raw["Arn"], "KeyMetadata.Arn")
    return {
        "key_id": raw["KeyId"],
        "key_arn": raw["Arn"],
        "account": raw.get("AWSAccountId") or arn.account,
        "region": arn.region,
        "partition": arn.partition,
        "key_state": raw.get("KeyState"),
        "enabled": bool(raw.get("Enabled")),
        "key_manager": raw.get("KeyManager"),
        "key_spec": raw.get("KeySpec") or raw.get("CustomerMasterKeySpec"),
        "key_usage": raw.get("KeyUsage"),
        "origin": raw.get("Origin"),
        "multi_region": bool(raw.get("MultiRegion", False)),
        "description": raw.get("Description", ""),
        "creation_date": _iso(raw.get("CreationDate")),
        "deletion_date": _iso(raw.get("DeletionDate")),
        "reference": reference,
    }


def describe_key(connection, ref, region=None, option="key_id"):
    """kms:DescribeKey for a key reference; return ``key_metadata``.

    ``ref`` is a KmsKeyRef or a string. A key or alias ARN is looked up in its own region (and
    account, as far as the credentials may); a key id or alias name in ``region`` (None: the
    connection's) and the credentials' account. A missing key raises KmsKeyError naming the key,
    the account and the region; other AWS failures raise AwsError.
    """
    ref = key_ref(ref, option)
    region = ref.region or region
    try:
        result = connection.call("kms", "describe_key", region=region, KeyId=ref_text(ref))
    except AwsError as exc:
        if exc.code == "NotFoundException":
            raise KmsKeyError(_not_found_message(connection, ref, region, option, exc), "not_found") from None
        raise
    return key_metadata(result["KeyMetadata"], ref_text(ref))


def _not_found_message(connection, ref, region, option, exc):
    account = ref.account
    if account is None:
        try:
            account = connection.account_id
        except AwsError:
            account = "of the AWS credentials"
    with contextlib.suppress(AwsError):
        region = connection.client("kms", region).meta.region_name
    what = "alias" if ref.alias else "key"
    return (
        f"{option} '{ref_text(ref)}': no such KMS {what} in account {account}, region {region} ({exc}); "
        "check the value and the region (the region option, or give the key ARN), and that the AWS credentials act in the key's account"
    )


def key_label(metadata):
    """How messages name a key: its ARN, with the alias it was found by."""
    alias = (metadata.get("reference") or "").split(":")[-1]
    if alias.startswith("alias/"):
        return f"{metadata['key_arn']} ({alias})"
    return metadata["key_arn"]


def key_problems(metadata):
    """What stops Atlas from using a key (``error``) or may (``warning``), as a list of KeyProblem."""
    label = key_label(metadata)
    key_id = metadata["key_id"]
    state = metadata.get("key_state")
    problems = []
    if metadata.get("key_manager") == "AWS":
        problems.append(
            KeyProblem(
                ERROR, "aws_managed", f"KMS key {label} is an AWS managed key: AWS fixes its key policy and Atlas cannot use it; use a customer managed key"
            )
        )
    if state in PENDING_DELETION_STATES:
        when = f" (deletion on {metadata['deletion_date']})" if metadata.get("deletion_date") else ""
        problems.append(
            KeyProblem(
                ERROR,
                "pending_deletion",
                f"KMS key {label} is {state}{when}: Atlas cannot use it; cancel the deletion first (aws kms cancel-key-deletion --key-id {key_id}, "
                "then enable the key) or choose another key",
            )
        )
    spec, usage = metadata.get("key_spec"), metadata.get("key_usage")
    if (spec and spec != ATLAS_KEY_SPEC) or (usage and usage != ATLAS_KEY_USAGE):
        problems.append(
            KeyProblem(
                ERROR,
                "not_symmetric",
                f"KMS key {label} has key spec {spec} and key usage {usage}; Atlas needs a symmetric encryption key ({ATLAS_KEY_SPEC}, {ATLAS_KEY_USAGE})",
            )
        )
    if state == "Disabled":
        problems.append(
            KeyProblem(
                WARNING,
                "disabled",
                f"KMS key {label} is disabled: Atlas cannot encrypt or decrypt with it until it is enabled (aws kms enable-key --key-id {key_id})",
            )
        )
    elif state == "PendingImport":
        problems.append(
            KeyProblem(
                WARNING, "pending_import", f"KMS key {label} has no key material yet (PendingImport): Atlas cannot use it until the material is imported"
            )
        )
    elif state == "Unavailable":
        problems.append(
            KeyProblem(
                WARNING,
                "unavailable",
                f"KMS key {label} is Unavailable (its custom key store is disconnected): Atlas cannot use it until the store is connected again",
            )
        )
    return problems


def check_key(metadata, option="key_id"):
    """Raise KmsKeyError for the key's errors (all of them, in one message); return its warnings as messages."""
    problems = key_problems(metadata)
    errors = [problem for problem in problems if problem.severity == ERROR]
    if errors:
        raise KmsKeyError(f"{option}: " + "; ".join(problem.message for problem in errors), errors[0].code)
    return [problem.message for problem in problems if problem.severity == WARNING]


# -- key policy ------------------------------------------------------------------------------


def get_key_policy(connection, metadata):
    """The key's policy as a dict (kms:GetKeyPolicy)."""
    result = connection.call("kms", "get_key_policy", region=metadata["region"], KeyId=metadata["key_arn"], PolicyName=KEY_POLICY_NAME)
    return load_policy(result.get("Policy"), f"key policy of {metadata['key_arn']}")


def put_key_policy(connection, metadata, doc):
    """Write the key's policy (kms:PutKeyPolicy) with KMS's lock-out safety check left on."""
    try:
        connection.call(
            "kms",
            "put_key_policy",
            region=metadata["region"],
            KeyId=metadata["key_arn"],
            PolicyName=KEY_POLICY_NAME,
            Policy=policy_json(doc),
            BypassPolicyLockoutSafetyCheck=False,
        )
    except AwsError as exc:
        if exc.code != "MalformedPolicyDocumentException":
            raise
        # KMS says this too when a principal does not exist (yet), which is the usual cause here.
        hint = (
            f"{exc}; check that every principal exists (an IAM role must exist before a key policy can name it) "
            "and that the credentials keep kms:PutKeyPolicy under the new policy"
        )
        raise AwsError(hint, exc.code, exc.service, exc.operation, exc.status_code) from None


# -- the key-access statement ----------------------------------------------------------------


def _principal_error(value, option, reason=None):
    reason = reason or _PRINCIPAL_HELP
    return KmsKeyError(f"{option} entry {value!r} is not a principal a key can be granted to; {reason}", "bad_principal")


def key_principal(value, option="principals", allow_unknown=False):
    """Parse one principal for a key-access statement into a KeyPrincipal.

    Accepts a role ARN, an account id or an account root ARN. With ``allow_unknown`` (check
    mode) a value containing the placeholder is accepted when it would be valid with a real value in its place.
    """
    if not isinstance(value, str) or not value.strip():
        raise _principal_error(value, option)
    if is_unknown(value):
        if not allow_unknown:
            raise _principal_error(value, option, f"it is '{UNKNOWN}', a value an earlier task only knows after a real run; run without --check")
        if value != UNKNOWN and not any(_is_valid_principal(value.replace(UNKNOWN, stand_in)) for stand_in in ("000000000000", "placeholder")):
            raise _principal_error(value, option)
        parts = value.split(":")
        account = parts[4] if len(parts) > 4 and is_account_id(parts[4]) else None
        return KeyPrincipal("unknown", account, None, None, value)
    if is_account_id(value):
        return KeyPrincipal("account", value, None, None, value)
    try:
        arn = parse_arn(value, option)
    except ArnError:
        raise _principal_error(value, option) from None
    if arn.service == "iam" and arn.region == "" and is_account_id(arn.account):
        if arn.resource == "root":
            return KeyPrincipal("account", arn.account, None, arn.partition, value)
        if arn.resource.startswith("role/"):
            try:
                role = parse_role_arn(value, option)
            except ArnError:
                raise _principal_error(value, option) from None
            return KeyPrincipal("role", role.account, role.name, role.partition, value)
        if arn.resource.startswith("user/"):
            raise _principal_error(value, option, "it is an IAM user, but Atlas reaches the key through an IAM role: give the role's ARN (or an account id)")
    if arn.service == "sts" and arn.resource.startswith("assumed-role/"):
        role_name = arn.resource.split("/")[1] if "/" in arn.resource else "NAME"
        raise _principal_error(
            value,
            option,
            f"it is an assumed-role session, not a role: give the role ARN, arn:{arn.partition}:iam::{arn.account}:role/{role_name} (with its path, if any)",
        )
    raise _principal_error(value, option)


def _is_valid_principal(value):
    try:
        key_principal(value)
    except KmsKeyError:
        return False
    return True


def validate_key_principals(values, option="principals", allow_unknown=False):
    """Parse a list of principals (see ``key_principal``); duplicates (an account id and its root ARN too) count once."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise KmsKeyError(f"{option} must name at least one principal; {_PRINCIPAL_HELP}", "bad_principal")
    result, seen = [], set()
    for value in values:
        principal = key_principal(value, option, allow_unknown)
        identity = ("account", principal.account) if principal.kind == "account" else (principal.kind, principal.value)
        if identity not in seen:
            seen.add(identity)
            result.append(principal)
    return result


def check_principal_partitions(principals, partition, option="principals"):
    """Raise when a principal ARN is in another partition than the key (aws, aws-cn, aws-us-gov): IAM cannot cross partitions."""
    for principal in principals:
        if principal.partition and principal.partition != partition:
            raise KmsKeyError(
                f"{option} entry '{principal.value}' is in partition {principal.partition}, but the key is in partition {partition}; "
                "a key can only be granted to principals of its own partition",
                "bad_principal",
            )


def key_access_sid(role_arn):
    """The Sid of the statement for one IAM role: different for every role ARN, letters and digits only.

    ``MongoDBAtlasKeyAccess`` + partition + account + path + name, each byte that is not a letter or
    digit (and the escape letter X itself) written as X and two hex digits: arn:aws:iam::111111111111:role/atlas-kms
    gives MongoDBAtlasKeyAccessaws111111111111X2FatlasX2Dkms. The parts need no separator: the account
    is 12 digits before the path's first /, the name follows its last. Raises ArnError for another ARN.
    """
    role = parse_role_arn(role_arn)
    text = f"{role.partition}{role.account}{role.path}{role.name}"
    escaped = (
        chr(byte) if _ALPHANUMERIC.match(chr(byte)) and chr(byte) != KEY_ACCESS_SID_ESCAPE else f"{KEY_ACCESS_SID_ESCAPE}{byte:02X}" for byte in text.encode()
    )
    return KEY_ACCESS_SID_PREFIX + "".join(escaped)


def default_key_access_sid(principals, option="principals", sid_option="sid"):
    """The Sid of the statement for one principal, so that projects sharing a key get one statement each.

    ``key_access_sid`` of a role's ARN; ``MongoDBAtlasKeyAccess`` + account id for an account (a
    role's Sid goes on with the partition's letters, so the two never meet). Several principals
    need an explicit Sid.
    """
    if len(principals) != 1:
        raise KmsKeyError(
            f"{sid_option} is required when {option} names {len(principals)} principals: the default Sid is derived from a single principal; "
            f"give a Sid that no other statement of the key policy uses, such as {KEY_ACCESS_SID_PREFIX}MyProject",
            "sid_required",
        )
    principal = principals[0]
    if principal.kind == "unknown":
        return KEY_ACCESS_SID_PREFIX + UNKNOWN
    if principal.kind == "account":
        return KEY_ACCESS_SID_PREFIX + principal.account
    return key_access_sid(principal.value)


def principal_arns(principals, partition="aws"):
    """The values a statement's ``Principal.AWS`` lists: role ARNs as given, accounts as their root ARN in ``partition``."""
    arns = set()
    for principal in principals:
        if principal.kind == "account":
            arns.add(f"arn:{partition}:iam::{principal.account}:root")
        else:
            arns.add(principal.value)
    return sorted(arns)


def key_access_statement(sid, principals, source_ips=None, partition="aws"):
    """The key-policy statement granting ``principals`` (KeyPrincipal list) kms:Encrypt, kms:Decrypt and kms:DescribeKey.

    Placeholders from check mode are kept as they are, so the prediction shows where they go.
    """
    arns = principal_arns(principals, partition)
    known = [arn for arn in arns if not is_unknown(arn)]
    # The builder validates principals, which a placeholder is not: build with the known ones (or a stand-in), then name them all.
    statement = build_key_policy_statement(sid, known or ["000000000000"], source_ips, partition)
    statement["Principal"] = {"AWS": arns[0] if len(arns) == 1 else arns}
    return statement


def is_key_access_statement(statement):
    """Whether a statement is one this module may replace or remove: an Allow of some of Encrypt, Decrypt and DescribeKey, nothing else."""
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
        return False
    if any(key in statement for key in ("NotAction", "NotPrincipal", "NotResource")) or "Action" not in statement:
        return False
    actions = normalize_statement({"Action": statement["Action"]})["Action"]
    actions = {action.lower() for action in (actions if isinstance(actions, list) else [actions])}
    return bool(actions) and actions <= _ACCESS_ACTIONS


def _statements(doc):
    statements = (doc or {}).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _describe_statement(statement):
    parts = [f"Effect {statement.get('Effect')}"]
    for key in ("Action", "NotAction", "NotPrincipal", "NotResource"):
        if key in statement:
            parts.append(f"{key} {json.dumps(statement[key])}")
    return ", ".join(parts)


def _principal_names(principal):
    """The principals a statement's Principal names, canonical (an account root as its account id)."""
    canonical = normalize_statement({"Principal": principal})["Principal"] if principal is not None else None
    if not isinstance(canonical, dict):
        return {json.dumps(canonical)}
    return {value for values in canonical.values() for value in (values if isinstance(values, list) else [values])}


def plan_key_policy_statement(current, sid, statement=None, key="the key", principals=None):
    """Plan ensuring ``statement`` (or, with None, removing the statement with ``sid``) in a key policy.

    Other statements stay exactly as they are. Raises KmsKeyError, before anything is written, when
    a statement with the same Sid is someone else's: it grants more than key access, or it names a
    principal that ``statement`` (or, when removing, ``principals``: ARNs or account ids) does not;
    and when the result would leave no principal allowed kms:PutKeyPolicy. ``key`` names the key in messages.
    """
    before = load_policy(current)
    if statement is not None and statement.get("Sid") != sid:
        raise KmsKeyError(f"statement Sid {statement.get('Sid')!r} differs from sid {sid!r}")
    for existing in _statements(before):
        if existing.get("Sid") == sid and not is_key_access_statement(existing):
            raise KmsKeyError(
                f"the key policy of {key} already has a statement with Sid '{sid}' that grants more than key access ({_describe_statement(existing)}); "
                f"it is left alone: choose another sid. Only Allow statements granting some of {', '.join(KMS_ACCESS_ACTIONS)} are replaced or removed",
                "sid_conflict",
            )
    wanted = statement["Principal"] if statement is not None else {"AWS": list(principals)} if principals else None
    for existing in _statements(before) if wanted is not None else []:
        # A deleted role (its unique id) loses nothing; anyone else named would lose the key.
        others = {name for name in _principal_names(existing.get("Principal")) - _principal_names(wanted) if not _DELETED_ROLE.match(name)}
        if existing.get("Sid") == sid and others:
            raise KmsKeyError(
                f"the key policy of {key} has a statement with Sid '{sid}' for {', '.join(sorted(others))}, which this statement does not name: "
                "it is someone else's and is left alone, nothing was written; choose another sid",
                "sid_conflict",
            )
    if statement is None:
        after, _changed = remove_statement(before, sid)
    else:
        after, _changed = upsert_statement(before, statement)
    changed = not policies_equal(before, after)
    if changed and not principals_able_to_manage_key(after):
        already = "" if principals_able_to_manage_key(before) else " (the current key policy already allows it to nobody: repair it by hand first)"
        raise KmsKeyError(
            f"refusing to change the key policy of {key}: afterwards no principal would be allowed kms:PutKeyPolicy, "
            f"so nobody could manage the key any more{already}",
            "lockout",
        )
    return KeyPolicyPlan(before, after if changed else before, changed, statement)


def key_policy_grants(doc, principals, metadata, without_sid=None):
    """Whether the key policy already lets every principal use the key as Atlas does, read-only.

    For each principal (KeyPrincipal) and each of kms:Encrypt, kms:Decrypt and kms:DescribeKey, some
    Allow must name the role, its account (which delegates to the account's IAM policies, as AWS's
    default key policy does) or everyone, and no Deny may apply. The statement with Sid
    ``without_sid`` is left out, so that the answer does not count the statement this module manages.
    Returns True, False, or None when it depends on something a policy alone does not decide (a
    condition such as aws:SourceIp, a check-mode placeholder).
    """
    doc = load_policy(doc)
    if without_sid is not None:
        doc, _removed = remove_statement(doc, without_sid)
    answers = []
    for principal in principals:
        if principal.kind == "unknown":
            return None
        partition = principal.partition or metadata["partition"]
        role_arn = principal.value if principal.kind == "role" else f"arn:{partition}:iam::{principal.account}:root"
        request = Request(role_arn, principal.account, metadata["key_arn"], metadata["account"], metadata["region"], None, False)
        for action in KMS_ACCESS_ACTIONS:
            outcome = evaluate_policy(doc, action, request, resource_policy=True)
            answers.append(all_of(outcome.allow, negate(outcome.deny)))
    return all_of(*answers)


def has_statement(doc, sid):
    """Whether the key policy has a statement with this Sid."""
    return any(statement.get("Sid") == sid for statement in _statements(load_policy(doc)))


def plan_key_access(current, sid, principals, metadata, source_ips=None, only_if_needed=False):
    """(needed, statement, KeyPolicyPlan) for the key-access statement ``sid`` naming ``principals``.

    With ``only_if_needed`` the statement is wanted only where the key policy does not already let the
    principals use the key (a statement with ``sid`` that is there stays managed); otherwise always.
    """
    check_principal_partitions(principals, metadata["partition"])
    needed = not only_if_needed or has_statement(current, sid) or key_policy_grants(current, principals, metadata) is not True
    if not needed:
        # Where the key policy already grants the use of the key there is nothing to ensure and nothing to remove.
        return False, None, KeyPolicyPlan(current, current, False, None)
    statement = key_access_statement(sid, principals, source_ips, metadata["partition"])
    return True, statement, plan_key_policy_statement(current, sid, statement, metadata["key_arn"])


def foreign_alias_error(ref, option, owner_option):
    """An alias ARN of another account: only that account can resolve it."""
    return KmsKeyError(
        f"{option} '{ref.arn}' is an alias of another AWS account, which cannot be resolved with these credentials; give the key's ARN, "
        f"or {owner_option} of a role in the key's account",
        "foreign_alias",
    )


def unread_key_policy_warning(key_arn, key_account, caller_account, principals, owner_option):
    """What a key policy of another account must allow, when these credentials can neither read nor change it."""
    names = ", ".join(principal.value for principal in principals)
    return (
        f"The key policy of {key_arn} (account {key_account}) was not checked: the AWS credentials act in account {caller_account}, "
        f"which can neither read nor change it. It must allow {names} (or its account) kms:Encrypt, kms:Decrypt and kms:DescribeKey; "
        f"give {owner_option} of a role in account {key_account} that may call kms:GetKeyPolicy and kms:PutKeyPolicy to have it checked and changed."
    )
