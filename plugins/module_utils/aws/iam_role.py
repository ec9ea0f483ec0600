# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM role Atlas assumes: check its options, read it, plan the writes that bring it to the
wanted state, and apply them.

Reading and planning never write, so a later step can reuse them to verify a role. Values that
only exist after an earlier step has really run (Atlas's external id and role id in check mode)
may be the ``UNKNOWN`` placeholder: they plan as a change and are never sent to AWS.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re
import time

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError
from ansible_collections.cmk.atlas.plugins.module_utils._module import ATLAS_ID, UNKNOWN, ModuleInputError, is_unknown
from ansible_collections.cmk.atlas.plugins.module_utils._poll import poll
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import (
    KEY_ARN_EXAMPLE,
    ArnError,
    build_role_arn,
    parse_kms_key_arn,
    parse_kms_key_ref,
    parse_role_arn,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import (
    KMS_ACCESS_ACTIONS,
    build_atlas_trust_policy,
    build_kms_access_policy,
    load_policy,
    normalize_policy,
    normalize_source_ips,
    policies_equal,
    policy_json,
    trust_policy_allows,
)

PROJECT_TAG = "cmk-atlas:project-id"
ROLE_TAG = "cmk-atlas:role-id"
# On a role the collection took over rather than made: removing access leaves the role itself.
ADOPTED_TAG = "cmk-atlas:adopted"
COLLECTION_TAG_PREFIX = "cmk-atlas:"
PAIRING_TAGS = (PROJECT_TAG, ROLE_TAG)
# cmk-atlas: keys belong to the pairing tags, aws: keys to AWS itself.
RESERVED_TAG_PREFIXES = ("cmk-atlas:", "aws:")
MAX_TAGS = 50

DEFAULT_POLICY_NAME = "cmk-atlas-kms-access"
DEFAULT_MAX_SESSION_DURATION = 3600
MIN_MAX_SESSION_DURATION = 3600
MAX_MAX_SESSION_DURATION = 43200

# Stand-ins that pass the builders' checks; the placeholder replaces them afterwards.
_STANDIN_PRINCIPAL = "arn:aws:iam::000000000000:root"
_STANDIN_EXTERNAL_ID = "cmk-atlas-standin"

_POLICY_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$")
# IAM tag keys and values: letters, digits, spaces and _.:/=+-@ (\w is Unicode-aware like IAM's \p{L}\p{N}).
_TAG_KEY_RE = re.compile(r"^[\w\s.:/=+@-]{1,128}$")
_TAG_VALUE_RE = re.compile(r"^[\w\s.:/=+@-]{0,256}$")

# Writes right after CreateRole can meet IAM's eventual consistency (NoSuchEntity): bounded retry.
CREATE_SETTLE_ATTEMPTS = 6
CREATE_SETTLE_FIRST_DELAY = 1.0

Action = collections.namedtuple("Action", ["method", "kwargs", "summary"])
"""One IAM write: the boto3 method (snake_case), its arguments, and a short description."""


Ownership = collections.namedtuple("Ownership", ["kind", "paired_project_id", "external_id", "message"])
"""Whose an IAM role is (see ``role_ownership``)."""


class RoleConflictError(CmkAtlasError):
    """The role cannot be brought to the wanted state without harm (wrong path, in use, attachments)."""


class RoleAppearedError(RoleConflictError):
    """CreateRole found the role there: another run created it after this one read it. Re-read and re-plan."""

    def __init__(self, name):
        super().__init__(
            f"IAM role {name} appeared during the run (another run created it after this one found none); nothing more was written: "
            "a re-run reads it and checks whose it is"
        )
        self.name = name


# -- options ---------------------------------------------------------------------------------


def validate_role_name(name, option="name"):
    try:
        build_role_arn("000000000000", name)
    except ArnError:
        raise ModuleInputError(f"{option} {name!r} is not a valid IAM role name; expected 1-64 letters, digits or +=,.@_-") from None
    return name


def validate_role_path(path, option="path"):
    try:
        build_role_arn("000000000000", "x", path)
    except ArnError:
        raise ModuleInputError(
            f"{option} {path!r} is not a valid IAM path; expected / or a path that starts and ends with /, such as /service/ (at most 512 characters)"
        ) from None
    return path


def validate_policy_name(name, option="policy_name"):
    if not isinstance(name, str) or not _POLICY_NAME_RE.match(name):
        raise ModuleInputError(f"{option} {name!r} is not a valid IAM policy name; expected 1-128 letters, digits or +=,.@_-")
    return name


def validate_max_session_duration(value, option="max_session_duration"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_MAX_SESSION_DURATION <= value <= MAX_MAX_SESSION_DURATION:
        raise ModuleInputError(
            f"{option} {value!r} is out of range; expected seconds from {MIN_MAX_SESSION_DURATION} (1 hour) to {MAX_MAX_SESSION_DURATION} (12 hours)"
        )
    return value


def validate_description(value, option="description"):
    if value is None:
        return None
    if len(value) > 1000:
        raise ModuleInputError(f"{option} is {len(value)} characters long; IAM allows at most 1000")
    return value


def validate_atlas_id(value, option):
    """An Atlas project or role id (24 hexadecimal digits), the placeholder, or None."""
    if value is None or is_unknown(value):
        return value
    if not isinstance(value, str) or not ATLAS_ID.match(value):
        raise ModuleInputError(f"{option} {value!r} is not an Atlas id; expected 24 hexadecimal digits such as 5f4e3d2c1b0a998877665544")
    return value


def validate_tags(tags, option="tags"):
    """The user's tags as a dict of strings; numbers become strings, reserved keys are refused."""
    if not tags:
        return {}
    result = {}
    seen = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY_RE.match(key):
            raise ModuleInputError(f"{option} key {key!r} is not a valid IAM tag key; expected 1-128 letters, digits, spaces or _.:/=+-@")
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise ModuleInputError(
                f"{option} key {key!r} is reserved: aws: keys belong to AWS, and {PROJECT_TAG} and {ROLE_TAG} are set from atlas_project_id and atlas_role_id"
            )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ModuleInputError(f"{option} value of {key!r} must be a string, not {type(value).__name__}")
        text = str(value)
        if not _TAG_VALUE_RE.match(text):
            raise ModuleInputError(f"{option} value of {key!r} is not a valid IAM tag value; expected 0-256 letters, digits, spaces or _.:/=+-@")
        if key.lower() in seen:
            # IAM tag keys are case-insensitive.
            raise ModuleInputError(f"{option} keys {seen[key.lower()]!r} and {key!r} are the same IAM tag key (tag keys ignore case)")
        seen[key.lower()] = key
        result[key] = text
    if len(result) + len(PAIRING_TAGS) > MAX_TAGS:
        raise ModuleInputError(f"{option} has {len(result)} tags; IAM allows {MAX_TAGS} per role, {len(PAIRING_TAGS)} of them kept for the pairing tags")
    return result


def validate_kms_key_arns(values, option="kms_key_arns"):
    """Full KMS key ARNs, sorted and unique; placeholders pass. Bare ids and aliases are refused: IAM needs ARNs."""
    result = set()
    for value in values or []:
        if is_unknown(value):
            result.add(value)
            continue
        try:
            result.add(parse_kms_key_arn(value, f"{option} entry").arn)
            continue
        except ArnError:
            pass
        try:
            kind = parse_kms_key_ref(value, f"{option} entry").kind
        except ArnError:
            kind = None
        if kind == "key_id":
            reason = "is a bare key id"
        elif kind in ("alias_name", "alias_arn"):
            reason = "is an alias"
        else:
            raise ModuleInputError(f"{option} entry {value!r} is not a KMS key ARN; expected e.g. {KEY_ARN_EXAMPLE}")
        raise ModuleInputError(
            f"{option} entry {value!r} {reason}; an IAM policy names keys by their full key ARN, e.g. {KEY_ARN_EXAMPLE} "
            f"(aws kms describe-key --key-id {value} --query KeyMetadata.Arn prints it)"
        )
    return sorted(result)


# -- wanted documents ------------------------------------------------------------------------


def build_trust_policy(atlas_aws_account_arn, external_id):
    """The Atlas trust policy; either value may be the check-mode placeholder (then it stays in the document)."""
    principal_unknown = is_unknown(atlas_aws_account_arn)
    external_id_unknown = is_unknown(external_id)
    doc = build_atlas_trust_policy(
        _STANDIN_PRINCIPAL if principal_unknown else atlas_aws_account_arn,
        _STANDIN_EXTERNAL_ID if external_id_unknown else external_id,
    )
    statement = doc["Statement"][0]
    if principal_unknown:
        statement["Principal"] = {"AWS": UNKNOWN}
    if external_id_unknown:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": UNKNOWN}}
    return doc


def build_inline_policy(key_arns, source_ips=None):
    """The KMS access policy for the key ARNs (placeholders allowed), optionally limited to source IPs."""
    known = [arn for arn in key_arns if not is_unknown(arn)]
    unknown = [arn for arn in key_arns if is_unknown(arn)]
    # With only placeholders, build with a stand-in ARN and replace it below.
    doc = build_kms_access_policy(known or [KEY_ARN_EXAMPLE], source_ips=source_ips)
    if unknown:
        statement = doc["Statement"][0]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        resources = sorted(set((resources if known else []) + unknown))
        statement["Resource"] = resources[0] if len(resources) == 1 else resources
    return doc


def pairing_tags(atlas_project_id=None, atlas_role_id=None):
    tags = {}
    if atlas_project_id:
        tags[PROJECT_TAG] = atlas_project_id
    if atlas_role_id:
        tags[ROLE_TAG] = atlas_role_id
    return tags


def desired_role(params):
    """The wanted role from module params (present state), every option checked. ``None`` means "leave as is".

    Keys: name, path, description, max_session_duration, tags (user and pairing tags), purge_tags,
    trust_policy, policy_name, inline_policy (None when kms_key_arns is empty), purge_policies.
    """
    name = validate_role_name(params["name"])
    path = validate_role_path(params.get("path") or "/")
    policy_name = validate_policy_name(params.get("policy_name") or DEFAULT_POLICY_NAME)
    tags = validate_tags(params.get("tags"))
    project_id = validate_atlas_id(params.get("atlas_project_id"), "atlas_project_id")
    role_id = validate_atlas_id(params.get("atlas_role_id"), "atlas_role_id")
    tags.update(pairing_tags(project_id, role_id))
    key_arns = validate_kms_key_arns(params.get("kms_key_arns"))
    source_ips = params.get("source_ips")
    if source_ips is not None and not key_arns:
        raise ModuleInputError("source_ips limits the inline KMS policy, which is only managed with kms_key_arns; give kms_key_arns or leave source_ips unset")
    if source_ips is not None:
        source_ips = normalize_source_ips(source_ips)
    external_id = params.get("external_id")
    if external_id is not None and not is_unknown(external_id) and not external_id.strip():
        raise ModuleInputError(
            "external_id is empty: Atlas may assume the role only with its atlasAssumedRoleExternalId, so a trust policy without one is refused"
        )
    return {
        "name": name,
        "path": path,
        "description": validate_description(params.get("description")),
        "max_session_duration": validate_max_session_duration(params.get("max_session_duration")),
        "tags": tags,
        "purge_tags": bool(params.get("purge_tags")),
        "trust_policy": build_trust_policy(params.get("atlas_aws_account_arn"), external_id),
        "policy_name": policy_name,
        "inline_policy": build_inline_policy(key_arns, source_ips) if key_arns else None,
        "purge_policies": bool(params.get("purge_policies")),
    }


# -- reading ---------------------------------------------------------------------------------


def _tags_dict(tag_list):
    return {tag["Key"]: tag.get("Value", "") for tag in tag_list or []}


def read_role(aws, name):
    """The role as AWS holds it, or None when there is none.

    Keys: name, path, arn, role_id, description, max_session_duration, tags (dict), trust_policy,
    inline_policies (name -> document, every inline policy of the role), managed_policies (sorted ARNs).
    """
    try:
        role = aws.call("iam", "get_role", RoleName=name)["Role"]
    except AwsError as exc:
        if exc.code == "NoSuchEntity":
            return None
        raise
    names = aws.paginate("iam", "list_role_policies", RoleName=name).get("PolicyNames", [])
    inline = {}
    for policy_name in sorted(names):
        document = aws.call("iam", "get_role_policy", RoleName=name, PolicyName=policy_name)["PolicyDocument"]
        inline[policy_name] = load_policy(document, f"inline policy {policy_name}")
    attached = aws.paginate("iam", "list_attached_role_policies", RoleName=name).get("AttachedPolicies", [])
    return {
        "name": role["RoleName"],
        "path": role.get("Path", "/"),
        "arn": role["Arn"],
        "role_id": role["RoleId"],
        "description": role.get("Description") or None,
        "max_session_duration": role.get("MaxSessionDuration", DEFAULT_MAX_SESSION_DURATION),
        "tags": _tags_dict(role.get("Tags")),
        "trust_policy": load_policy(role.get("AssumeRolePolicyDocument"), "trust policy"),
        "inline_policies": inline,
        "managed_policies": sorted(policy["PolicyArn"] for policy in attached),
    }


def read_attachments(aws, name, managed_policies=None):
    """What keeps IAM from deleting the role besides inline policies: managed policy ARNs and instance profile names.

    ``managed_policies``: what read_role found, so that they are not listed twice.
    """
    if managed_policies is None:
        attached = aws.paginate("iam", "list_attached_role_policies", RoleName=name).get("AttachedPolicies", [])
        managed_policies = [policy["PolicyArn"] for policy in attached]
    profiles = aws.paginate("iam", "list_instance_profiles_for_role", RoleName=name).get("InstanceProfiles", [])
    return {
        "managed_policies": sorted(managed_policies),
        "instance_profiles": sorted(profile["InstanceProfileName"] for profile in profiles),
    }


def predicted_arn(aws, name, path):
    """The ARN a role would get: the caller's account and partition, the path and the name."""
    identity = aws.caller_identity()
    partition = identity["Arn"].split(":")[1] if identity.get("Arn", "").startswith("arn:") else "aws"
    return build_role_arn(identity["Account"], name, path, partition)


# -- planning --------------------------------------------------------------------------------


def check_role_path(current, path, option="path", other_way="delete the role (state: absent) and run again"):
    """Raise RoleConflictError for an existing role under another path: IAM cannot move a role."""
    if current is not None and current["path"] != path:
        raise RoleConflictError(
            f"IAM role {current['name']} exists with path {current['path']}, not {path}; IAM cannot move a role to another path: "
            f"set {option}: {current['path']}, or {other_way}"
        )


def _tag_list(tags):
    return [{"Key": key, "Value": tags[key]} for key in sorted(tags)]


def _plan_tags(current, wanted, purge):
    """(tags to set, keys to remove, resulting tags); keys compare case-insensitively, as IAM's do."""
    current_by_lower = {key.lower(): key for key in current}
    to_set = {}
    for key, value in wanted.items():
        existing = current_by_lower.get(key.lower())
        if existing is None or current[existing] != value:
            to_set[key] = value
    wanted_lower = {key.lower() for key in wanted}
    pairing_lower = {key.lower() for key in PAIRING_TAGS}
    to_remove = []
    if purge:
        # Pairing tags stay: without them a later run cannot find the Atlas role this IAM role serves.
        to_remove = sorted(key for key in current if key.lower() not in wanted_lower and key.lower() not in pairing_lower)
    replaced_lower = {key.lower() for key in to_set}
    result = {key: value for key, value in current.items() if key not in to_remove and key.lower() not in replaced_lower}
    result.update(to_set)
    return to_set, to_remove, result


def plan_present(current, desired):
    """The writes that bring ``current`` (None: no role) to ``desired``, and the state after them.

    Returns ``(actions, after)``; ``after`` has the keys of read_role (``arn`` and ``role_id`` are
    None for a role still to be created). Raises RoleConflictError for a role under another path.
    """
    name = desired["name"]
    policy_name = desired["policy_name"]
    actions = []
    if current is None:
        request = {"RoleName": name, "Path": desired["path"], "AssumeRolePolicyDocument": policy_json(desired["trust_policy"])}
        if desired["description"] is not None:
            request["Description"] = desired["description"]
        if desired["max_session_duration"] is not None:
            request["MaxSessionDuration"] = desired["max_session_duration"]
        if desired["tags"]:
            request["Tags"] = _tag_list(desired["tags"])
        actions.append(Action("create_role", request, f"create role {name}"))
        inline = {}
        if desired["inline_policy"] is not None:
            inline[policy_name] = desired["inline_policy"]
            actions.append(_put_policy(name, policy_name, desired["inline_policy"]))
        after = {
            "name": name,
            "path": desired["path"],
            "arn": None,
            "role_id": None,
            "description": desired["description"],
            "max_session_duration": desired["max_session_duration"] or DEFAULT_MAX_SESSION_DURATION,
            "tags": dict(desired["tags"]),
            "trust_policy": desired["trust_policy"],
            "inline_policies": inline,
            "managed_policies": [],
        }
        return actions, after

    check_role_path(current, desired["path"])
    after = dict(current, tags=dict(current["tags"]), inline_policies=dict(current["inline_policies"]))

    description = current["description"] if desired["description"] is None else desired["description"]
    max_session = current["max_session_duration"] if desired["max_session_duration"] is None else desired["max_session_duration"]
    if description != current["description"] or max_session != current["max_session_duration"]:
        # Both values are sent: an UpdateRole without one may reset it (moto does, for the session length).
        request = {"RoleName": name, "MaxSessionDuration": max_session}
        if description is not None:
            request["Description"] = description
        actions.append(Action("update_role", request, f"update description and maximum session duration of {name}"))
        after["description"] = description
        after["max_session_duration"] = max_session

    if not policies_equal(current["trust_policy"], desired["trust_policy"]):
        request = {"RoleName": name, "PolicyDocument": policy_json(desired["trust_policy"])}
        actions.append(Action("update_assume_role_policy", request, f"update trust policy of {name}"))
        after["trust_policy"] = desired["trust_policy"]

    if desired["inline_policy"] is not None and not policies_equal(current["inline_policies"].get(policy_name), desired["inline_policy"]):
        actions.append(_put_policy(name, policy_name, desired["inline_policy"]))
        after["inline_policies"][policy_name] = desired["inline_policy"]

    if desired["purge_policies"]:
        for other in sorted(current["inline_policies"]):
            if other != policy_name:
                actions.append(Action("delete_role_policy", {"RoleName": name, "PolicyName": other}, f"delete inline policy {other} of {name}"))
                del after["inline_policies"][other]

    to_set, to_remove, tags_after = _plan_tags(current["tags"], desired["tags"], desired["purge_tags"])
    # remove_tags (optional): keys to remove whatever purge_tags says, such as a retired key's record.
    removed = sorted(key for key in current["tags"] if key in desired.get("remove_tags", ()) and key not in to_remove and key not in to_set)
    to_remove = sorted(to_remove + removed)
    tags_after = {key: value for key, value in tags_after.items() if key not in removed}
    if to_set:
        actions.append(Action("tag_role", {"RoleName": name, "Tags": _tag_list(to_set)}, f"tag {name} with {', '.join(sorted(to_set))}"))
    if to_remove:
        actions.append(Action("untag_role", {"RoleName": name, "TagKeys": to_remove}, f"remove tags {', '.join(to_remove)} from {name}"))
    after["tags"] = tags_after
    return actions, after


def _put_policy(role_name, policy_name, document):
    request = {"RoleName": role_name, "PolicyName": policy_name, "PolicyDocument": policy_json(document)}
    return Action("put_role_policy", request, f"put inline policy {policy_name} on {role_name}")


def plan_absent(current, attachments, purge_policies):
    """The writes that delete the role with its inline policies (and, with purge_policies, detach managed ones)."""
    if current is None:
        return []
    name = current["name"]
    if attachments["instance_profiles"]:
        raise RoleConflictError(
            f"IAM role {name} is in instance profiles {', '.join(attachments['instance_profiles'])}; "
            "remove it from them first (aws iam remove-role-from-instance-profile), nothing was deleted"
        )
    actions = []
    if attachments["managed_policies"]:
        if not purge_policies:
            raise RoleConflictError(
                f"IAM role {name} has managed policies attached: {', '.join(attachments['managed_policies'])}; "
                "IAM deletes a role only without them: set purge_policies: true to detach them, or detach them yourself; nothing was deleted"
            )
        for policy_arn in attachments["managed_policies"]:
            actions.append(Action("detach_role_policy", {"RoleName": name, "PolicyArn": policy_arn}, f"detach {policy_arn} from {name}"))
    for policy_name in sorted(current["inline_policies"]):
        actions.append(Action("delete_role_policy", {"RoleName": name, "PolicyName": policy_name}, f"delete inline policy {policy_name} of {name}"))
    actions.append(Action("delete_role", {"RoleName": name}, f"delete role {name}"))
    return actions


# -- applying --------------------------------------------------------------------------------


def apply_actions(aws, actions, sleep=time.sleep):
    """Send the planned writes in order; return the CreateRole answer's Role (or None).

    Raises RoleAppearedError when CreateRole finds the role there: the rest of the plan was made for no role.
    """
    created = None
    for action in actions:
        if action.method == "create_role":
            try:
                answer = aws.call("iam", action.method, **action.kwargs)
            except AwsError as exc:
                if exc.code == "EntityAlreadyExists":
                    raise RoleAppearedError(action.kwargs["RoleName"]) from None
                raise
        elif created is not None:
            answer = _call_after_create(aws, action, sleep)
        else:
            answer = aws.call("iam", action.method, **action.kwargs)
        if action.method == "create_role":
            created = answer["Role"]
    return created


def _call_after_create(aws, action, sleep):
    """Repeat ``NoSuchEntity`` while a new role propagates in IAM, waiting 1, 2, 4... s, CREATE_SETTLE_ATTEMPTS tries in all."""
    waited = [0.0]
    state = {}

    def pause(seconds):
        sleep(seconds)
        waited[0] += seconds

    def attempt():
        try:
            state["answer"] = aws.call("iam", action.method, **action.kwargs)
        except AwsError as exc:
            if exc.code != "NoSuchEntity":
                raise
            state["error"] = exc
            return False
        return True

    # The bound is the waits' sum, counted as slept, so the number of tries holds however slow the calls are.
    bound = CREATE_SETTLE_FIRST_DELAY * (2 ** (CREATE_SETTLE_ATTEMPTS - 1) - 1)
    if poll(attempt, bound, CREATE_SETTLE_FIRST_DELAY, float("inf"), sleep=pause, clock=lambda: waited[0]).done:
        return state["answer"]
    raise state["error"]


# -- ownership and reach ---------------------------------------------------------------------

_KMS_ACCESS = frozenset(action.lower() for action in KMS_ACCESS_ACTIONS)  # actions compare case-insensitively


def tag_value(tags, key):
    """The value of tag ``key``, whatever its case (IAM tag keys ignore case), or None."""
    return next((value for name, value in tags.items() if name.lower() == key.lower()), None)


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _allow_statements(doc):
    statements = (load_policy(doc) or {}).get("Statement", [])
    return [item for item in _as_list(statements) if isinstance(item, dict) and item.get("Effect") == "Allow"]


def _trust_external_ids(trust):
    """Every sts:ExternalId value or pattern an Allow of the trust policy names."""
    found = set()
    for statement in _allow_statements(normalize_policy(trust)):
        for operator in ("StringEquals", "StringLike"):
            found.update(_as_list(statement.get("Condition", {}).get(operator, {}).get("sts:ExternalId", [])))
    return sorted(found)


def _trusted_principals(trust):
    names = set()
    for statement in _allow_statements(normalize_policy(trust)):
        if isinstance(statement.get("Principal"), dict):
            for values in statement["Principal"].values():
                names.update(_as_list(values))
    return sorted(names)


def trust_admits_only(trust, atlas_aws_account_arn, external_id):
    """Whether a trust policy lets Atlas assume the role with ``external_id`` and admits nobody else: every Allow
    names only Atlas's account and requires that external id. Such a trust is kept as it is, whatever its form."""
    if is_unknown(atlas_aws_account_arn) or is_unknown(external_id) or not atlas_aws_account_arn or not external_id:
        return False
    if not trust_policy_allows(trust, atlas_aws_account_arn, external_id):
        return False
    atlas_account = atlas_aws_account_arn.split(":")[4] if atlas_aws_account_arn.count(":") >= 5 else None
    admitted = {atlas_aws_account_arn, atlas_account, f"arn:aws:iam::{atlas_account}:root"}
    for statement in _allow_statements(normalize_policy(trust)):
        principal = statement.get("Principal")
        if not isinstance(principal, dict) or set(principal) != {"AWS"} or "NotPrincipal" in statement:
            return False
        if not set(_as_list(principal["AWS"])) <= admitted:
            return False
        if _trust_external_ids({"Statement": [statement]}) != [external_id]:
            return False
    return True


def role_ownership(current, project_id, atlas_aws_account_arn, external_ids):
    """Whose the role ``current`` (what read_role returned, or None) is, seen from Atlas project ``project_id``.

    ``external_ids`` are the atlasAssumedRoleExternalId of the project's cloud provider access roles.
    Returns an Ownership whose ``kind`` is ``absent`` (no role), ``ours`` (its cmk-atlas:project-id tag
    names the project), ``trusts_project`` (no such tag, but the trust already lets
    ``atlas_aws_account_arn`` assume it with one of ``external_ids``), ``other_project`` (the tag names
    another project, or the trust lets Atlas in with an external id the project does not have) or
    ``foreign`` (anything else). ``paired_project_id`` is the project the tag names, ``external_id`` the
    one found in the trust. Placeholders match nothing. Without ``project_id`` a tagged role is the
    project's only through its trust.
    """
    if current is None:
        return Ownership("absent", None, None, "the IAM role does not exist yet")
    role, trust = current["arn"], current["trust_policy"]
    tagged = tag_value(current["tags"], PROJECT_TAG)
    project = f"Atlas project {project_id}" if project_id else "the Atlas project of this run"
    if tagged is not None and tagged == project_id:
        return Ownership("ours", tagged, None, f"IAM role {role} is paired with Atlas project {tagged} (tag {PROJECT_TAG})")
    atlas = None if is_unknown(atlas_aws_account_arn) else atlas_aws_account_arn
    trusted = [value for value in _trust_external_ids(trust) if atlas and trust_policy_allows(trust, atlas, value)]
    ours = [value for value in external_ids or [] if value and not is_unknown(value)]
    match = next((value for value in ours if atlas and trust_policy_allows(trust, atlas, value)), None)
    # A tag naming another project wins over the trust: that project's Atlas role may use it.
    if tagged is not None and (project_id or match is None):
        return Ownership("other_project", tagged, match, f"IAM role {role} is paired with Atlas project {tagged} (tag {PROJECT_TAG}), not with {project}")
    if match is not None:
        message = f"IAM role {role} has no pairing tag, but its trust policy already lets Atlas ({atlas}) assume it with external ID {match} of {project}"
        return Ownership("trusts_project", tagged, match, message)
    other = next((value for value in trusted if value not in ours), None)
    if other is not None:
        message = (
            f"IAM role {role} lets Atlas ({atlas}) assume it with external ID {other}, which no cloud provider access role of {project} has: "
            "it serves another Atlas project"
        )
        return Ownership("other_project", None, other, message)
    trusts = ", ".join(_trusted_principals(trust)) or "nobody"
    return Ownership(
        "foreign", None, None, f"IAM role {role} is not paired with an Atlas project and its trust policy does not let Atlas assume it (it trusts {trusts})"
    )


def _text(values):
    return ", ".join(str(value) for value in _as_list(values))


def extra_permissions(current, policy_name, key_arns):
    """What the role may do beyond kms:Encrypt, kms:Decrypt and kms:DescribeKey on ``key_arns``, one sentence each.

    Every Allow of another inline policy counts and every attached managed policy (its document is not
    read); in ``policy_name`` an Allow of another action or on another resource counts, wildcards and
    NotAction/NotResource being wider. With ``key_arns`` None (keys not managed) resources are not judged.
    """
    if current is None:
        return []
    found = []
    for name, doc in sorted(current["inline_policies"].items()):
        where = f"inline policy {name} of IAM role {current['name']} allows"
        for statement in _allow_statements(doc):
            actions = _text(statement.get("Action")) if "Action" in statement else f"every action except {_text(statement.get('NotAction'))}"
            resources = _text(statement.get("Resource")) if "Resource" in statement else f"every resource except {_text(statement.get('NotResource'))}"
            if name != policy_name:
                # A policy made by hand that grants just Atlas's actions on the keys is no more than Atlas needs.
                only_kms = "Action" in statement and all(str(action).lower() in _KMS_ACCESS for action in _as_list(statement["Action"]))
                on_keys = key_arns is not None and "Resource" in statement and all(r in key_arns for r in _as_list(statement["Resource"]))
                if not (only_kms and on_keys):
                    found.append(f"{where} {actions} on {resources}")
                continue
            wider = [action for action in _as_list(statement.get("Action", [])) if str(action).lower() not in _KMS_ACCESS]
            if "NotAction" in statement:
                found.append(f"{where} {actions}")
            elif wider:
                found.append(f"{where} {_text(wider)}, beyond kms:Encrypt, kms:Decrypt and kms:DescribeKey")
            if key_arns is None:
                continue
            if "NotResource" in statement:
                found.append(f"{where} {actions} on {resources}")
            else:
                others = [resource for resource in _as_list(statement.get("Resource", [])) if resource not in key_arns]
                if others:
                    found.append(f"{where} {actions} on {_text(others)}, not only on {_text(key_arns) or 'no key'}")
    for arn in current.get("managed_policies", []):
        found.append(f"managed policy {arn} is attached to IAM role {current['name']} (its permissions are not read; they count as beyond KMS access)")
    return found


# -- views -----------------------------------------------------------------------------------


def diff_view(state, policy_name):
    """What --diff shows of a role: the fields the module manages, policies in normalised form."""
    if state is None:
        return None
    view = {
        "path": state["path"],
        "description": state["description"],
        "max_session_duration": state["max_session_duration"],
        "tags": dict(sorted(state["tags"].items())),
        "trust_policy": normalize_policy(state["trust_policy"]),
        "inline_policy": normalize_policy(state["inline_policies"].get(policy_name)),
    }
    others = {name: normalize_policy(doc) for name, doc in sorted(state["inline_policies"].items()) if name != policy_name}
    if others:
        view["other_inline_policies"] = others
    return view


def result_view(state, policy_name):
    """The module result fields for a role state (placeholders where a value is not known yet)."""
    return {
        "arn": state["arn"],
        "role_id": state["role_id"],
        "role_name": state["name"],
        "path": state["path"],
        "description": state["description"],
        "max_session_duration": state["max_session_duration"],
        "tags": dict(sorted(state["tags"].items())),
        "trust_policy": state["trust_policy"],
        "policy_name": policy_name,
        "inline_policy": state["inline_policies"].get(policy_name),
        "other_inline_policies": sorted(name for name in state["inline_policies"] if name != policy_name),
    }


# -- Atlas -----------------------------------------------------------------------------------


def same_role_arn(a, b):
    """Whether two IAM role ARNs name the same role (names are unique per account, whatever the path)."""
    try:
        left, right = parse_role_arn(a), parse_role_arn(b)
    except ArnError:
        return a == b
    return (left.partition, left.account, left.name) == (right.partition, right.account, right.name)


def atlas_usage(atlas, project_id, role_arn):
    """How an Atlas project uses the IAM role ``role_arn``.

    Returns ``{"encryption_role_id": <Atlas role id whose iamAssumedRoleArn is role_arn and that
    encryption at rest uses, or None>, "authorized_role_ids": [Atlas role ids authorized with role_arn]}``.
    """
    roles = (atlas.call("listGroupCloudProviderAccess", groupId=project_id) or {}).get("awsIamRoles") or []
    authorized = sorted(role["roleId"] for role in roles if role.get("iamAssumedRoleArn") and same_role_arn(role["iamAssumedRoleArn"], role_arn))
    aws_kms = (atlas.call("getGroupEncryptionAtRest", groupId=project_id) or {}).get("awsKms") or {}
    in_use = aws_kms.get("roleId") if aws_kms.get("enabled") and aws_kms.get("roleId") in authorized else None
    return {"encryption_role_id": in_use, "authorized_role_ids": authorized}
