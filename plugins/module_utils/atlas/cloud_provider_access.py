# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atlas cloud provider access roles for AWS, the Atlas side of the IAM-role link.

List a project's roles, choose the one to reuse (never a second role on a re-run or after a
crash), create one, authorize it while IAM propagates, deauthorize it unless a feature uses it,
and give every role in the snake_case form the modules return. Planning is pure (roles in, plan
out) so check mode and the real run take the same decisions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from ansible_collections.cmk.atlas.plugins.module_utils._module import ATLAS_ID, UNKNOWN, ModuleInputError, is_unknown
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError, AtlasConnectionError, AtlasError, ProjectApi, retry_on_error_codes
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import parse_role_arn

PROVIDER = "AWS"
ENCRYPTION_AT_REST = "ENCRYPTION_AT_REST"
DEFAULT_AUTHORIZE_TIMEOUT = 300
# What Atlas answers while a new or changed IAM role has not reached STS yet.
AUTHORIZE_RETRY_CODES = ("CANNOT_ASSUME_ROLE",)
# A short capped interval: the authorization lands within 2 s of IAM propagating the trust.
AUTHORIZE_FIRST_INTERVAL = 1.0
AUTHORIZE_MAX_INTERVAL = 2.0

# Why a role was chosen, in the order the rules are tried (``reused_by`` in results).
REUSED_BY_ROLE_ID = "role_id"
REUSED_BY_IAM_ROLE_ARN = "iam_role_arn"
REUSED_BY_EXTERNAL_ID = "external_id"
REUSED_BY_UNUSED_ROLE = "unused_role"
REUSED_BY_CREATED = "created"
REUSE_RULES = (REUSED_BY_ROLE_ID, REUSED_BY_IAM_ROLE_ARN, REUSED_BY_EXTERNAL_ID, REUSED_BY_UNUSED_ROLE, REUSED_BY_CREATED)

# Atlas field -> result field, in the order results show them.
ROLE_FIELDS = (
    ("roleId", "role_id"),
    ("atlasAWSAccountArn", "atlas_aws_account_arn"),
    ("atlasAssumedRoleExternalId", "external_id"),
    ("iamAssumedRoleArn", "iam_assumed_role_arn"),
    ("authorizedDate", "authorized_date"),
    ("createdDate", "created_date"),
)

# sts:ExternalId as STS accepts it; Atlas hands out UUIDs.
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class RoleNotFoundError(ModuleInputError):
    """``role_id`` names no AWS cloud provider access role of the project."""


class RoleInUseError(ModuleInputError):
    """The change would take a role away from an Atlas feature that uses it."""


# -- input validation (offline) ----------------------------------------------------------------


def _quote(value):
    return f"'{value}'" if isinstance(value, str) else repr(value)


def validate_role_id(value, option="role_id"):
    """``value`` when it is an Atlas cloud provider access role id (24 hexadecimal digits)."""
    if isinstance(value, str) and ATLAS_ID.match(value):
        return value
    raise ModuleInputError(
        f"{option} {_quote(value)} is not an Atlas cloud provider access role id; expected the 24 hexadecimal digits "
        "this module returns as role_id, such as 32b6e34b3d91647abb20e7b8 (not the IAM role ARN: that is iam_role_arn)"
    )


def validate_external_id(value, option="external_id"):
    """``value`` when it has the shape of an ``sts:ExternalId``."""
    if isinstance(value, str) and _EXTERNAL_ID.match(value):
        return value
    raise ModuleInputError(
        f"{option} {_quote(value)} is not an external id; expected the atlasAssumedRoleExternalId Atlas gave the role "
        "(a UUID such as 3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b), as the IAM role's trust policy carries it in sts:ExternalId"
    )


def validate_iam_role_arn(value, option="iam_role_arn"):
    """``value`` when it is an IAM role ARN."""
    return parse_role_arn(value, option).arn


# -- the result form ---------------------------------------------------------------------------


def snake_case(name):
    """``featureType`` -> ``feature_type``, ``atlasAWSAccountArn`` -> ``atlas_aws_account_arn``."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def _snake_keys(value):
    if isinstance(value, dict):
        return {snake_case(str(key)): _snake_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value


def normalize_feature_usage(usage):
    usage = usage or {}
    return {"feature_type": usage.get("featureType"), "feature_id": _snake_keys(usage.get("featureId"))}


def normalize_role(raw):
    """An Atlas AWS role (API form) as modules return it: snake_case, every field present."""
    raw = raw or {}
    role = {result: raw.get(api) for api, result in ROLE_FIELDS}
    role["feature_usages"] = [normalize_feature_usage(usage) for usage in raw.get("featureUsages") or []]
    # Atlas returns the IAM role ARN only once the role is authorized.
    role["authorized"] = bool(raw.get("iamAssumedRoleArn"))
    return role


def feature_types(role):
    """The Atlas features that use ``role`` (normalised), such as ``ENCRYPTION_AT_REST``."""
    return [usage.get("feature_type") for usage in role.get("feature_usages") or []]


def in_use(role):
    return bool(role.get("feature_usages"))


def describe_usages(role):
    """``ENCRYPTION_AT_REST`` or ``EXPORT_SNAPSHOT (bucket_id=...)``, comma separated."""
    parts = []
    for usage in role.get("feature_usages") or []:
        text = str(usage.get("feature_type"))
        feature_id = usage.get("feature_id")
        if isinstance(feature_id, dict) and feature_id:
            text += " (" + ", ".join(f"{key}={value}" for key, value in sorted(feature_id.items())) + ")"
        elif feature_id not in (None, "", {}):
            text += f" ({feature_id})"
        parts.append(text)
    return ", ".join(parts)


def predicted_role(roles, role_id=UNKNOWN):
    """The role a create would return, for check mode: what Atlas decides is unknown until it runs.

    The Atlas AWS account ARN is the same for every role of a project, so another role gives it.
    """
    account_arns = [role["atlas_aws_account_arn"] for role in roles if role.get("atlas_aws_account_arn")]
    return {
        "role_id": role_id,
        "atlas_aws_account_arn": account_arns[0] if account_arns else UNKNOWN,
        "external_id": UNKNOWN,
        "iam_assumed_role_arn": None,
        "authorized_date": None,
        "created_date": UNKNOWN,
        "feature_usages": [],
        "authorized": False,
    }


def trust_policy_requirement(iam_role_arn, atlas_aws_account_arn, external_id):
    """What the IAM role's trust policy must hold for Atlas to assume it (neither value is a secret)."""
    return (
        f"The trust policy of {iam_role_arn} must allow the principal {atlas_aws_account_arn} to call sts:AssumeRole "
        f'with the condition {{"StringEquals": {{"sts:ExternalId": "{external_id}"}}}}, and nothing may deny it.'
    )


# -- choosing the role -------------------------------------------------------------------------

Selection = collections.namedtuple("Selection", ["role", "reused_by"])
"""The role to reuse (normalised; None when one must be created) and the rule that chose it."""


def _oldest_first(roles):
    return sorted(roles, key=lambda role: (role.get("created_date") or "", role.get("role_id") or ""))


def _known(value):
    return value is not None and not is_unknown(value)


def _role_list(roles):
    if not roles:
        return "the project has none"
    return "roles in the project: " + ", ".join(
        f"{role['role_id']} ({'authorized for ' + role['iam_assumed_role_arn'] if role['authorized'] else 'not authorized'})" for role in roles
    )


def select_role(roles, role_id=None, iam_role_arn=None, external_id=None, project_id=None):
    """Choose the role to reuse among the project's AWS roles (normalised), by these rules in order:

    1. ``role_id``: that role (RoleNotFoundError when the project has none with that id);
    2. ``iam_role_arn``: the role already authorized for it (one in use first, then the oldest);
    3. ``external_id``: the role with that external id (the one the IAM role's trust policy names);
    4. the oldest role that is neither authorized nor used by any feature.

    Returns ``Selection(None, "created")`` when none fits. A check-mode placeholder skips its rule,
    except ``role_id``: that role comes from an earlier task, so a placeholder role stands in for it.
    """
    if role_id is not None:
        if is_unknown(role_id):
            return Selection(predicted_role(roles), REUSED_BY_ROLE_ID)
        for role in roles:
            if role["role_id"] == role_id:
                return Selection(role, REUSED_BY_ROLE_ID)
        where = f" of project {project_id}" if project_id else ""
        raise RoleNotFoundError(
            f"role_id {role_id} is not an AWS cloud provider access role{where} ({_role_list(roles)}). "
            "Leave role_id out to reuse or create a role, or pass the role_id this module returned."
        )
    if _known(iam_role_arn):
        matches = [role for role in roles if role["iam_assumed_role_arn"] == iam_role_arn]
        if matches:
            matches = [role for role in matches if in_use(role)] or matches
            return Selection(_oldest_first(matches)[0], REUSED_BY_IAM_ROLE_ARN)
    if _known(external_id):
        for role in _oldest_first(roles):
            if role["external_id"] == external_id:
                return Selection(role, REUSED_BY_EXTERNAL_ID)
    unused = [role for role in roles if not role["authorized"] and not in_use(role)]
    if unused:
        return Selection(_oldest_first(unused)[0], REUSED_BY_UNUSED_ROLE)
    return Selection(None, REUSED_BY_CREATED)


# -- planning ----------------------------------------------------------------------------------

RolePlan = collections.namedtuple("RolePlan", ["before", "after", "reused_by", "create", "authorize", "previous_iam_assumed_role_arn", "warnings"])
"""What ``state=present`` does: ``before``/``after`` are normalised roles (``before`` None when one is
created); ``create``/``authorize`` are the writes; ``previous_iam_assumed_role_arn`` is set when an
authorized role is moved to another IAM role."""


def _in_use_message(role, action):
    return (
        f"Atlas role {role['role_id']} is used by {describe_usages(role)}; {action} would cut that feature off from AWS. "
        "Changing the role of a live feature is not this module's job: for encryption at rest, move it to another role "
        "with cmk.atlas.encryption_at_rest (or disable it) first."
    )


def _check_external_id(role, reused_by, iam_role_arn, external_id):
    """Refuse an external_id that contradicts the chosen role, before anything is written."""
    if not _known(external_id):
        return
    if reused_by == REUSED_BY_CREATED:
        role_external_id = None
    else:
        role_external_id = role["external_id"]
        if not _known(role_external_id) or role_external_id == external_id:
            return
    if reused_by in (REUSED_BY_ROLE_ID, REUSED_BY_IAM_ROLE_ARN):
        raise ModuleInputError(
            f"external_id {external_id} is not the external id of Atlas role {role['role_id']} (chosen by {reused_by}), "
            f"which is {role_external_id}. The IAM role's trust policy must carry the external id of the Atlas role it is "
            "authorized for: leave external_id out, or pass the role whose external id it is."
        )
    if _known(iam_role_arn):
        raise ModuleInputError(
            f"external_id {external_id} belongs to no AWS cloud provider access role of the project, so Atlas could not assume "
            f"{iam_role_arn} with any role this module can choose. Run once without iam_role_arn to get a role and its "
            "external_id, put that external id into the IAM role's trust policy, then authorize with role_id and iam_role_arn."
        )


def plan_present(roles, role_id=None, iam_role_arn=None, external_id=None, project_id=None, authorize=True):
    """Decide what ``state=present`` does for the project's AWS roles (normalised). Writes nothing.

    With ``authorize`` false, ``iam_role_arn`` only chooses the role (the one already authorized
    for it) and nothing is authorized: the first step of a procedure, before the IAM role's trust
    policy names the role, so that a re-run finds the role it authorized before.

    Raises RoleNotFoundError, RoleInUseError or ModuleInputError when the options cannot be met;
    placeholders (check mode) are planned around.
    """
    selection = select_role(roles, role_id=role_id, iam_role_arn=iam_role_arn, external_id=external_id, project_id=project_id)
    reused_by = selection.reused_by
    create = selection.role is None
    before = None if create else selection.role
    current = predicted_role(roles) if create else dict(selection.role)
    _check_external_id(current, reused_by, iam_role_arn if authorize else None, external_id)

    warnings = []
    authorizes = False
    previous = None
    if iam_role_arn is not None and authorize:
        granted = current["iam_assumed_role_arn"]
        if not granted:
            authorizes = True
        elif is_unknown(iam_role_arn) or granted != iam_role_arn:
            if in_use(current):
                raise RoleInUseError(
                    _in_use_message(current, f"authorizing it for {iam_role_arn} instead of {granted}") + f" To keep it, pass iam_role_arn {granted}."
                )
            authorizes = True
            previous = granted
            warnings.append(f"Atlas role {current['role_id']} was authorized for {granted} and no Atlas feature used it; it moves to {iam_role_arn}.")
    if create and roles:
        warnings.append(
            f"Creating a new Atlas role although the project has {len(roles)} other AWS role(s), none of them reusable by "
            "role_id, iam_role_arn, external_id or as an unused role. On later runs pass role_id, iam_role_arn or external_id "
            "so that this role is found again instead of another one being created."
        )

    after = dict(current)
    if authorizes:
        after.update(iam_assumed_role_arn=iam_role_arn, authorized=True, authorized_date=UNKNOWN)
    return RolePlan(before, after, reused_by, create, authorizes, previous, warnings)


AbsentPlan = collections.namedtuple("AbsentPlan", ["roles", "selected_by"])
"""What ``state=absent`` deauthorizes: the matching roles (normalised) and the option that matched them."""


def plan_absent(roles, role_id=None, iam_role_arn=None, external_id=None):
    """The roles ``state=absent`` deauthorizes: by ``role_id``, else ``iam_role_arn``, else ``external_id``.

    Raises RoleInUseError, naming the features, when any of them is in use. Writes nothing.
    """
    if role_id is None and iam_role_arn is None and external_id is None:
        raise ModuleInputError(
            "state=absent needs role_id, iam_role_arn or external_id to name the Atlas role to deauthorize; "
            "the module never deauthorizes a role it was not pointed at."
        )
    if role_id is not None:
        option, value, field = REUSED_BY_ROLE_ID, role_id, "role_id"
    elif iam_role_arn is not None:
        option, value, field = REUSED_BY_IAM_ROLE_ARN, iam_role_arn, "iam_assumed_role_arn"
    else:
        option, value, field = REUSED_BY_EXTERNAL_ID, external_id, "external_id"
    if is_unknown(value):
        # A check-mode placeholder names the role an earlier task creates or authorizes: it would be there to deauthorize.
        placeholder = predicted_role(roles)
        if field == "iam_assumed_role_arn":
            placeholder.update(iam_assumed_role_arn=UNKNOWN, authorized=True, authorized_date=UNKNOWN)
        return AbsentPlan([placeholder], option)
    matches = [role for role in roles if role[field] == value]
    busy = [role for role in matches if in_use(role)]
    if busy:
        raise RoleInUseError(" ".join(_in_use_message(role, "deauthorizing it") for role in busy))
    return AbsentPlan(_oldest_first(matches), option)


# -- talking to Atlas --------------------------------------------------------------------------

RoleOutcome = collections.namedtuple("RoleOutcome", ["changed", "before", "after", "reused_by", "previous_iam_assumed_role_arn", "warnings"])


class CloudProviderAccess(ProjectApi):
    """The AWS cloud provider access roles of one Atlas project.

    ``client`` is an AtlasClient; ``sleep``/``clock``/``log`` are handed to the authorize retry
    (tests replace them).
    """

    def __init__(self, client, project_id, sleep=None, clock=None, log=None):
        super().__init__(client, project_id, sleep=sleep, clock=clock, log=log)
        # The roles last read (or created), for create() to tell a role that appeared after a lost answer.
        self._known_role_ids = None

    # -- single calls ---------------------------------------------------------------------------

    def roles(self):
        """Every AWS role of the project, normalised (one read)."""
        body = self.client.call("listGroupCloudProviderAccess", groupId=self.project_id) or {}
        found = [normalize_role(raw) for raw in body.get("awsIamRoles") or []]
        self._known_role_ids = {role["role_id"] for role in found}
        return found

    def find(self, role_id=None, iam_role_arn=None):
        """The project's AWS roles with that id and/or authorized for that IAM role (all when neither is given)."""
        found = self.roles()
        if role_id is not None:
            found = [role for role in found if role["role_id"] == role_id]
        if iam_role_arn is not None:
            found = [role for role in found if role["iam_assumed_role_arn"] == iam_role_arn]
        return found

    def create(self):
        """Create a role. The POST is not idempotent, so after a 500 or a lost answer it is not simply repeated:
        a role that appeared since the last read (unauthorized, unused) is the one Atlas made; only if none did,
        the POST is sent once more."""
        if self._known_role_ids is None:
            self.roles()
        known = self._known_role_ids
        try:
            role = self._post_role()
        except (AtlasApiError, AtlasConnectionError) as error:
            if isinstance(error, AtlasApiError) and error.status != 500:
                raise
            appeared = [role for role in self.roles() if role["role_id"] not in known and not role["authorized"] and not in_use(role)]
            if appeared:
                role = _oldest_first(appeared)[0]
                self._debug(f"createGroupCloudProviderAccess failed ({error}), but Atlas created role {role['role_id']}: using it")
                return role
            self._debug(f"createGroupCloudProviderAccess failed ({error}) and no role appeared: creating once more")
            role = self._post_role()
        return role

    def _post_role(self):
        role = normalize_role(self.client.call("createGroupCloudProviderAccess", body={"providerName": PROVIDER}, groupId=self.project_id))
        if self._known_role_ids is not None:
            self._known_role_ids.add(role["role_id"])
        return role

    def authorize(self, role, iam_role_arn, timeout=DEFAULT_AUTHORIZE_TIMEOUT):
        """Authorize ``role`` for ``iam_role_arn``, repeating ``CANNOT_ASSUME_ROLE`` for up to ``timeout`` seconds.

        When Atlas still cannot assume the role, the error says what the trust policy must hold.
        """
        body = {"providerName": PROVIDER, "iamAssumedRoleArn": iam_role_arn}

        def attempt():
            return self.client.call("authorizeGroupCloudProviderAccessRole", body=body, groupId=self.project_id, roleId=role["role_id"])

        try:
            raw = retry_on_error_codes(
                attempt,
                AUTHORIZE_RETRY_CODES,
                timeout,
                sleep=self._sleep,
                clock=self._clock,
                interval=AUTHORIZE_FIRST_INTERVAL,
                max_interval=AUTHORIZE_MAX_INTERVAL,
                log=self._log,
            )
        except AtlasApiError as error:
            if error.error_code in AUTHORIZE_RETRY_CODES:
                error.hint = (
                    f"{trust_policy_requirement(iam_role_arn, role['atlas_aws_account_arn'], role['external_id'])} "
                    "If the IAM role was just created or changed, IAM may need longer: raise authorize_timeout."
                )
            raise
        return normalize_role(raw)

    def deauthorize(self, role_id):
        """Deauthorize (remove) the role; one that is already gone counts as done."""
        try:
            self.client.call("deauthorizeGroupCloudProviderAccessRole", cloudProvider=PROVIDER, groupId=self.project_id, roleId=role_id)
        except AtlasApiError as error:
            if error.status != 404 or error.error_code not in (None, "CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND"):
                raise

    # -- whole steps ----------------------------------------------------------------------------

    def ensure(self, role_id=None, iam_role_arn=None, external_id=None, authorize_timeout=DEFAULT_AUTHORIZE_TIMEOUT, check_mode=False, authorize=True):
        """Make sure the project has the AWS role the options describe (and, with ``authorize``, that it
        is authorized for ``iam_role_arn`` when given); in check mode only predict. Returns a RoleOutcome.

        An Atlas error after the role was created carries it as ``error.role`` (normalised), so the
        caller can tell the user which role exists now.
        """
        roles = self.roles()
        plan = plan_present(roles, role_id=role_id, iam_role_arn=iam_role_arn, external_id=external_id, project_id=self.project_id, authorize=authorize)
        changed = plan.create or plan.authorize
        if check_mode:
            return RoleOutcome(changed, plan.before, plan.after, plan.reused_by, plan.previous_iam_assumed_role_arn, plan.warnings)
        role = plan.before
        if plan.create:
            role = self.create()
        if plan.authorize:
            try:
                role = self.authorize(role, iam_role_arn, authorize_timeout)
            except AtlasError as error:
                error.role = role
                raise
        return RoleOutcome(changed, plan.before, role, plan.reused_by, plan.previous_iam_assumed_role_arn, plan.warnings)

    def remove(self, role_id=None, iam_role_arn=None, external_id=None, check_mode=False):
        """Deauthorize the roles the options name unless a feature uses one; returns the AbsentPlan."""
        plan = plan_absent(self.roles(), role_id=role_id, iam_role_arn=iam_role_arn, external_id=external_id)
        if not check_mode:
            for role in plan.roles:
                self.deauthorize(role["role_id"])
        return plan
