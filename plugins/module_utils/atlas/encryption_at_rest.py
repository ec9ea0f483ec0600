# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A project's encryption at rest with AWS KMS: read it, normalise it, plan the one PATCH that
brings it where it should be, check before writing that Atlas will be able to use the key, write,
and wait until Atlas says the key works (``valid: true``).

Planning is pure (state in, plan out) so check mode and the real run take the same decisions.
The rules that protect data access live here: a project that uses an IAM role is never moved back
to an access key; the irreversible switch from an access key to a role needs a confirmation; a key
in another account than the role is always given to Atlas as its full ARN.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.cmk.atlas.plugins.module_utils._module import ATLAS_ID, UNKNOWN, ModuleInputError, is_unknown
from ansible_collections.cmk.atlas.plugins.module_utils._poll import poll
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError, AtlasError, ProjectApi, retry_on_error_codes
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import (
    ENCRYPTION_AT_REST,
    CloudProviderAccess,
    feature_types,
    predicted_role,
    trust_policy_requirement,
)
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.private_endpoints import PrivateEndpoints
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError, build_key_arn, parse_kms_key_ref, parse_role_arn
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import KmsKeyError, describe_key, get_key_policy, key_label, key_problems, key_ref
from ansible_collections.cmk.atlas.plugins.module_utils.aws.regions import RegionError, to_atlas_region, to_aws_region
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import trust_policy_allows
from ansible_collections.cmk.atlas.plugins.module_utils.policy.evaluator import (
    Documents,
    RoleNotFoundError,
    control_plane_addresses,
    evaluate_access,
    needs_source_addresses,
    read_role_policies,
)

PROVIDER = "AWS"
ACCESS_ROLE = "role"
ACCESS_CREDENTIALS = "credentials"
ACCESS_NONE = "none"
HIDDEN = "(hidden)"
DEFAULT_VALID_TIMEOUT = 300
# What Atlas answers while IAM changes propagate; the same codes the Terraform provider retries on this call.
TRANSIENT_CODES = ("CANNOT_ASSUME_ROLE", "CLOUD_PROVIDER_ACCESS_ROLE_NOT_AUTHORIZED", "INVALID_AWS_CREDENTIALS")
CREDENTIALS_DEPRECATED = "AWS_KMS_CREDENTIALS_AUTH_DEPRECATED"
# A short capped interval: the wait ends within 2 s of Atlas reporting valid, at most 30 reads a minute.
FIRST_INTERVAL = 1.0
MAX_INTERVAL = 2.0

# Preflight check names, in the order results list them.
KEY_EXISTS = "key_exists"
KEY_STATE = "key_state"
KEY_REGION = "key_region"
KEY_ARN = "key_arn"
ROLE_AUTHORIZED = "role_authorized"
ROLE_TRUST = "role_trust"
ROLE_POLICY = "role_policy"
KEY_POLICY = "key_policy"
SOURCE_IP = "source_ip"
CREDENTIALS = "credentials"
PREVIOUS_ACCESS_KEY = "previous_access_key"

ACCESS_ACTIONS_TEXT = "kms:Encrypt, kms:Decrypt and kms:DescribeKey"

_DENIED_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")


class NeverBackError(ModuleInputError):
    """The request would move a project that uses an IAM role back to an access key."""


class SwitchNotConfirmedError(ModuleInputError):
    """The switch from an access key to an IAM role was asked for without confirm_switch_to_role."""


class ClustersUseEncryptionError(ModuleInputError):
    """Encryption at rest cannot be disabled while clusters use it."""


# -- the normalised configuration ----------------------------------------------------------------


def _aws_region(region):
    if not region:
        return None
    try:
        return to_aws_region(region)
    except RegionError:
        return None


def encryption_role(roles, role_id=None):
    """The project's role with ``role_id``, else the one whose feature usages include encryption at rest."""
    if role_id:
        for role in roles:
            if role["role_id"] == role_id:
                return role
        return None
    for role in roles:
        if ENCRYPTION_AT_REST in feature_types(role):
            return role
    return None


def normalize(aws_kms, roles=()):
    """Atlas's ``awsKms`` object as modules return it (snake_case, every field present).

    Atlas may leave ``roleId`` out of its answers; the role whose feature usages include encryption
    at rest stands in for it then.
    """
    aws_kms = aws_kms or {}
    enabled = bool(aws_kms.get("enabled"))
    role_id = aws_kms.get("roleId")
    access_key_id = aws_kms.get("accessKeyID")
    if not enabled:
        method = ACCESS_NONE
    elif access_key_id and not role_id:
        method = ACCESS_CREDENTIALS
    else:
        method = ACCESS_ROLE
    role = None
    if method == ACCESS_ROLE:
        role = encryption_role(roles, role_id) if role_id else encryption_role(roles)
        if role is not None:
            role_id = role["role_id"]
    region = aws_kms.get("region") if enabled else None
    return {
        "provider": PROVIDER,
        "enabled": enabled,
        "customer_master_key_id": aws_kms.get("customerMasterKeyID") if enabled else None,
        "region": region,
        "aws_region": _aws_region(region),
        "access_method": method,
        "role_id": role_id if method == ACCESS_ROLE else None,
        "iam_role_arn": role["iam_assumed_role_arn"] if role else None,
        "access_key_id": access_key_id if method == ACCESS_CREDENTIALS else None,
        "require_private_networking": aws_kms.get("requirePrivateNetworking"),
        "valid": aws_kms.get("valid"),
    }


def none_config(current=None):
    """The configuration after encryption at rest is disabled (Atlas clears the settings)."""
    config = normalize({"enabled": False})
    config["require_private_networking"] = (current or {}).get("require_private_networking")
    config["valid"] = False
    return config


def diff_view(config):
    """What --diff shows: the settings, never a secret; for an access key only that a secret exists."""
    view = {name: config.get(name) for name in ("enabled", "customer_master_key_id", "region", "access_method", "role_id", "iam_role_arn")}
    view["require_private_networking"] = config.get("require_private_networking")
    if config.get("access_method") == ACCESS_CREDENTIALS:
        view["access_key_id"] = config.get("access_key_id")
        view["secret_access_key"] = HIDDEN
    return view


def clusters_using(clusters):
    """Names of the clusters whose encryptionAtRestProvider is AWS."""
    return sorted(cluster.get("name") for cluster in clusters if cluster.get("encryptionAtRestProvider") == PROVIDER)


# -- keys -----------------------------------------------------------------------------------------


def same_key(current, wanted, region=None, principal_account=None):
    """Whether Atlas would read ``current`` and ``wanted`` as the same stored key reference.

    Equal strings are; so are a bare key id and that key's ARN when the ARN is in ``region`` (AWS
    form, the configured region after the change) and in the account Atlas looks bare ids up in
    (the role's, when known).
    """
    if current is None or wanted is None or is_unknown(wanted):
        return False
    if current == wanted:
        return True
    try:
        refs = sorted((parse_kms_key_ref(current), parse_kms_key_ref(wanted)), key=lambda ref: ref.kind)
    except ArnError:
        return False
    arn, bare = refs[0], refs[1]
    if (arn.kind, bare.kind) != ("key_arn", "key_id") or arn.key_id != bare.key_id or arn.region != region:
        return False
    return principal_account is None or arn.account == principal_account


def _same_role_arn(left, right):
    """Whether two IAM role ARNs name one role (names are unique per account, whatever the path)."""
    try:
        a, b = parse_role_arn(left), parse_role_arn(right)
    except ArnError:
        return left == right
    return (a.partition, a.account, a.name) == (b.partition, b.account, b.name)


def placeholder_role(roles, iam_role_arn=UNKNOWN):
    """The role an earlier check-mode task would create or authorize."""
    role = predicted_role(roles, UNKNOWN)
    role.update(iam_assumed_role_arn=iam_role_arn, authorized=True, authorized_date=UNKNOWN)
    return role


def resolve_role(roles, value, check_mode=False, project_id=None):
    """The Atlas role ``value`` names (an Atlas role id or the ARN of the IAM role it is authorized for).

    Returns ``(role, role_id, warnings)``: ``role`` normalised, or None when no role of the project has
    that id (the preflight reports it); a placeholder for ``UNKNOWN``.
    """
    if value is None:
        return None, None, []
    if is_unknown(value):
        return placeholder_role(roles), UNKNOWN, []
    if ATLAS_ID.match(value):
        return encryption_role(roles, value), value, []
    if value.startswith("arn:"):
        arn = parse_role_arn(value, "role_id").arn
        matches = [role for role in roles if role.get("iam_assumed_role_arn") and _same_role_arn(role["iam_assumed_role_arn"], arn)]
        if matches:
            # The role encryption at rest already uses first, then the oldest.
            matches.sort(key=lambda role: (ENCRYPTION_AT_REST not in feature_types(role), role.get("created_date") or "", role["role_id"]))
            return matches[0], matches[0]["role_id"], []
        where = f" of project {project_id}" if project_id else ""
        if check_mode:
            return (
                placeholder_role(roles, arn),
                UNKNOWN,
                [f"no Atlas cloud provider access role{where} is authorized for {arn} yet; check mode assumes an earlier task authorizes one"],
            )
        raise ModuleInputError(
            f"role_id {arn} is an IAM role ARN, and no Atlas cloud provider access role{where} is authorized for it. Authorize one first "
            "(cmk.atlas.cloud_provider_access with iam_role_arn), then pass its Atlas role id or this ARN; nothing was changed."
        )
    raise ModuleInputError(
        f"role_id '{value}' is neither an Atlas cloud provider access role id (24 hexadecimal digits, such as 32b6e34b3d91647abb20e7b8) "
        "nor the ARN of the IAM role such a role is authorized for (arn:aws:iam::ACCOUNT:role/NAME)"
    )


def role_account(role):
    arn = (role or {}).get("iam_assumed_role_arn")
    if not arn or is_unknown(arn):
        return None
    try:
        return parse_role_arn(arn).account
    except ArnError:
        return None


# -- planning -------------------------------------------------------------------------------------

Desired = collections.namedtuple(
    "Desired", ["key", "region", "role_id", "require_private_networking", "access_key_id", "secret_access_key"], defaults=(None, None, None, None, None, None)
)
"""What the options ask for; None leaves a setting as it is. ``region`` is in Atlas form; ``role_id``
may be the check-mode placeholder."""

Plan = collections.namedtuple("Plan", ["body", "before", "after", "switch", "rotate", "first_enable", "warnings"])
"""The ``awsKms`` fields to PATCH (empty: nothing to do), the configuration before and after,
whether it switches from an access key to a role, rotates the access key, or enables for the first time."""


def never_back_message(current):
    return (
        f"Atlas encryption at rest of this project uses IAM role {current.get('role_id') or '(role)'}: a project that uses role-based access "
        "can never go back to an access key and secret (Atlas refuses it with AWS_KMS_CREDENTIALS_AUTH_DEPRECATED). "
        "Remove legacy_access_key_id and legacy_secret_access_key, and keep role_id; nothing was changed."
    )


def switch_message(current, role_id):
    return (
        f"The project's encryption at rest uses access key {current.get('access_key_id')}; role_id {role_id} would switch it to role-based access. "
        "Atlas cannot undo this switch: the project can never use an access key again. The key and region stay as they are unless "
        "customer_master_key_id or region say otherwise, so no data is re-encrypted."
    )


def predict(current, body, role=None):
    """The configuration after Atlas applies ``body`` (``valid`` is unknown until Atlas checks the key)."""
    if body.get("enabled") is False:
        return none_config(current)
    after = dict(current)
    after["enabled"] = True
    if "customerMasterKeyID" in body:
        after["customer_master_key_id"] = body["customerMasterKeyID"]
    if "region" in body:
        after["region"] = body["region"]
        after["aws_region"] = _aws_region(body["region"])
    if "roleId" in body:
        after.update(access_method=ACCESS_ROLE, role_id=body["roleId"], access_key_id=None)
        after["iam_role_arn"] = (role or {}).get("iam_assumed_role_arn") if not is_unknown(body["roleId"]) else UNKNOWN
    if "accessKeyID" in body:
        after.update(access_method=ACCESS_CREDENTIALS, access_key_id=body["accessKeyID"])
    if "requirePrivateNetworking" in body:
        after["require_private_networking"] = body["requirePrivateNetworking"]
    if body:
        after["valid"] = None
    return after


def plan_present(current, desired, confirm_switch=False, check_mode=False, principal_account=None, role=None):
    """The PATCH that brings ``current`` (normalised) to ``desired``; raises before anything is written when it must not happen."""
    method = current["access_method"]
    body = {}
    warnings = []
    switch = rotate = first_enable = False
    wants_credentials = desired.access_key_id is not None
    if wants_credentials and method == ACCESS_ROLE:
        raise NeverBackError(never_back_message(current))
    if method == ACCESS_NONE:
        if wants_credentials:
            raise ModuleInputError(
                "legacy_access_key_id and legacy_secret_access_key only keep a project that already uses an access key working: "
                "Atlas no longer accepts new credentials-based configurations. Give role_id (an Atlas cloud provider access role "
                "authorized for an IAM role) instead; nothing was changed."
            )
        missing = [name for name, value in (("customer_master_key_id", desired.key), ("region", desired.region), ("role_id", desired.role_id)) if value is None]
        if missing:
            raise ModuleInputError(
                f"Encryption at rest is not enabled in this project yet; enabling it needs {', '.join(missing)} "
                "(customer_master_key_id: the KMS key; region: its region, unless the key is given as an ARN; role_id: the Atlas role "
                "that is authorized for the IAM role Atlas assumes)."
            )
        first_enable = True
        body = {"enabled": True, "customerMasterKeyID": desired.key, "region": desired.region, "roleId": desired.role_id}
        if desired.require_private_networking is not None:
            body["requirePrivateNetworking"] = desired.require_private_networking
        return Plan(body, current, predict(current, body, role), False, False, True, warnings)

    if desired.role_id is not None:
        if method == ACCESS_CREDENTIALS:
            switch = True
            if not confirm_switch:
                if not check_mode:
                    raise SwitchNotConfirmedError(
                        switch_message(current, desired.role_id) + " To go ahead, set confirm_switch_to_role: true; nothing was changed."
                    )
                warnings.append(switch_message(current, desired.role_id) + " The real run refuses it unless confirm_switch_to_role is true.")
            elif check_mode:
                warnings.append(switch_message(current, desired.role_id))
            body["roleId"] = desired.role_id
        elif desired.role_id != current["role_id"]:
            body["roleId"] = desired.role_id
    if method == ACCESS_CREDENTIALS and wants_credentials and not switch and desired.access_key_id != current["access_key_id"]:
        rotate = True
        body["accessKeyID"] = desired.access_key_id
        body["secretAccessKey"] = desired.secret_access_key
    region_after = _aws_region(desired.region if desired.region is not None else current["region"])
    if desired.key is not None and not same_key(current["customer_master_key_id"], desired.key, region_after, principal_account):
        body["customerMasterKeyID"] = desired.key
    if desired.region is not None and desired.region != current["region"]:
        body["region"] = desired.region
    if desired.require_private_networking is not None and desired.require_private_networking != bool(current["require_private_networking"]):
        body["requirePrivateNetworking"] = desired.require_private_networking
    return Plan(body, current, predict(current, body, role), switch, rotate, first_enable, warnings)


def plan_absent(current, using):
    """The PATCH that disables encryption at rest; raises when clusters still use it."""
    if using:
        raise ClustersUseEncryptionError(
            f"Encryption at rest cannot be disabled: clusters {', '.join(using)} use it (encryptionAtRestProvider AWS). "
            "Set their encryption at rest provider to NONE first (cmk.atlas.cluster_encryption) and wait until they are IDLE; nothing was changed."
        )
    if not current["enabled"]:
        return Plan({}, current, current, False, False, False, [])
    body = {"enabled": False}
    return Plan(body, current, predict(current, body), False, False, False, [])


# -- Atlas ----------------------------------------------------------------------------------------


class EncryptionAtRestApi(ProjectApi):
    """The Atlas calls for one project's encryption at rest; ``sleep``/``clock``/``log`` are replaceable for tests."""

    def settings(self):
        """The whole answer: ``awsKms`` and the top-level ``enabledForSearchNodes``."""
        return self.client.call("getGroupEncryptionAtRest", groupId=self.project_id) or {}

    def get(self):
        return self.settings().get("awsKms") or {}

    def roles(self):
        return CloudProviderAccess(self.client, self.project_id).roles()

    def clusters(self):
        return list(self.client.paginate("listGroupClusters", groupId=self.project_id))

    def control_plane_addresses(self):
        return control_plane_addresses(self.client.call("listControlPlaneIpAddresses"))

    def clock(self):
        return self._clock()

    def private_endpoints(self):
        """The project's encryption-at-rest private endpoints (``requirePrivateNetworking``), with the same waits."""
        return PrivateEndpoints(self.client, self.project_id, sleep=self._sleep, clock=self._clock, log=self._log)

    def update(self, aws_kms, timeout, enabled_for_search_nodes=None):
        """PATCH ``awsKms`` (and, when not None, ``enabledForSearchNodes``), repeating Atlas's propagation answers for up
        to ``timeout`` seconds; return the new ``awsKms``."""
        body = {"awsKms": aws_kms} if aws_kms else {}
        if enabled_for_search_nodes is not None:
            body["enabledForSearchNodes"] = enabled_for_search_nodes

        def attempt():
            return self.client.call("updateGroupEncryptionAtRest", body=body, groupId=self.project_id)

        answer = retry_on_error_codes(
            attempt, TRANSIENT_CODES, max(timeout, 0), sleep=self._sleep, clock=self._clock, interval=FIRST_INTERVAL, max_interval=MAX_INTERVAL, log=self._log
        )
        return (answer or {}).get("awsKms") or {}

    def wait_valid(self, timeout, first=None):
        """Read until Atlas reports ``valid: true`` or ``timeout`` seconds pass; return the last ``awsKms``."""
        state = {"current": first}

        def valid():
            if state["current"] is None:
                state["current"] = self.get()
            current, state["current"] = state["current"], None
            state["last"] = current
            return current.get("valid") is True

        def tell(wait):
            if self._log is not None:
                self._log(f"encryption at rest of project {self.project_id} is not valid yet; reading again in {wait:.1f} s")

        poll(valid, timeout, FIRST_INTERVAL, MAX_INTERVAL, sleep=self._sleep, clock=self._clock, log=tell)
        return state["last"]


# -- preflight ------------------------------------------------------------------------------------


def check(name, ok, message, fix=None):
    """One preflight result: ``ok`` True, False (a problem Atlas would refuse) or None (could not be checked)."""
    return {"name": name, "ok": ok, "message": message, "fix": None if ok else fix}


def failed(checks):
    return [item for item in checks if item["ok"] is False]


def unchecked(checks):
    return [item for item in checks if item["ok"] is None]


def describe_checks(checks):
    """'(1) name: message Fix: fix (2) ...' for a failure message."""
    parts = []
    for number, item in enumerate(checks, 1):
        text = f"({number}) {item['name']}: {item['message']}"
        if item.get("fix"):
            text += f" Fix: {item['fix']}"
        parts.append(text)
    return " ".join(parts)


def _denied(exc):
    return isinstance(exc, AwsError) and exc.code in _DENIED_CODES


def _arn_metadata(value):
    """What a key ARN tells without reading the key (enough to evaluate policies against it)."""
    if not value or is_unknown(value):
        return None
    try:
        ref = parse_kms_key_ref(value)
    except ArnError:
        return None
    if ref.kind != "key_arn":
        return None
    return {"key_id": ref.key_id, "key_arn": ref.arn, "account": ref.account, "region": ref.region, "partition": ref.partition, "reference": ref.arn}


Target = collections.namedtuple(
    "Target", ["key", "region", "region_option", "role", "role_id", "principal", "private_networking", "previous_access_key_id"], defaults=(None,) * 8
)
"""What the preflight checks: ``key`` the reference Atlas will use (as given, or the current one),
``region`` its AWS region, ``region_option`` the region option as given (AWS form), ``role`` the
normalised Atlas role (None: not in the project) with ``role_id`` as asked, ``principal``
ACCESS_ROLE or ACCESS_CREDENTIALS, ``previous_access_key_id`` the access key to deactivate later."""

Outcome = collections.namedtuple("Outcome", ["checks", "key", "metadata", "access_key_owner"])
"""The checks; the key reference to send Atlas (a bare id turned into the ARN for a key in another
account than the role); the key's metadata; the IAM user name owning the previous access key."""


class Preflight:
    """Reads AWS (and Atlas's control-plane addresses) to tell whether Atlas will be able to use the key.

    ``aws``: the module's AwsConnection; ``key_owner``: a connection acting in the key's account,
    or None; ``addresses``: a callable returning Atlas's control-plane addresses. Nothing is written.
    """

    def __init__(self, aws, key_owner=None, addresses=None):
        self.aws = aws
        self.key_owner = key_owner
        self._addresses = addresses
        self._lookups = {}
        self._address_cache = False

    # -- single reads -------------------------------------------------------------------------

    def lookup_key(self, ref, region):
        """(metadata, connection, None) for a key reference, or (None, None, (ok, message)) when it cannot be found or read."""
        cache_key = (ref, region)
        if cache_key in self._lookups:
            return self._lookups[cache_key]
        # A key ARN is read where it lives; a bare id or alias name in the credentials' account first.
        connections = [self.key_owner or self.aws] if ref.account is not None else [c for c in (self.aws, self.key_owner) if c is not None]
        problem = None
        result = None
        for connection in connections:
            try:
                result = (describe_key(connection, ref, region, "customer_master_key_id"), connection, None)
                break
            except KmsKeyError as exc:
                if exc.code != "not_found":
                    raise
                if ref.account is not None and connection is self.aws and self._caller_account(connection) != ref.account:
                    # Another account's key is only visible when its key policy lets this caller describe it.
                    problem = (None, f"{ref.arn} is in account {ref.account} and could not be read with the AWS credentials of another account ({exc})")
                elif problem is None or problem[0] is not False:
                    problem = (False, str(exc))
            except AwsError as exc:
                if not _denied(exc):
                    raise
                if problem is None:
                    problem = (None, f"the key could not be read: {exc}")
        if result is None:
            result = (None, None, problem)
        self._lookups[cache_key] = result
        return result

    def addresses(self):
        if self._address_cache is False:
            try:
                self._address_cache = self._addresses() if self._addresses else None
            except AtlasError:
                self._address_cache = None
        return self._address_cache

    def _caller_account(self, connection):
        try:
            return connection.account_id
        except AwsError as exc:
            if _denied(exc):
                return None
            raise

    # -- the checks ----------------------------------------------------------------------------

    def run(self, target):
        checks = []
        metadata, send = self._key_checks(target, checks)
        if target.principal == ACCESS_CREDENTIALS:
            checks.append(
                check(
                    CREDENTIALS,
                    None,
                    "the project uses an access key; its IAM user's permissions on the key are not checked (Atlas checks them when the settings are saved)",
                    "switch the project to an IAM role (role_id with confirm_switch_to_role: true)",
                )
            )
        else:
            send = self._role_checks(target, metadata, send, checks)
        owner = None
        if target.previous_access_key_id:
            owner = self.previous_access_key(target.previous_access_key_id, checks)
        return Outcome(checks, send, metadata, owner)

    def _key_checks(self, target, checks):
        key = target.key
        if key is None:
            checks.append(check(KEY_EXISTS, None, "no key is configured or given", "give customer_master_key_id"))
            return None, None
        if is_unknown(key):
            checks.append(check(KEY_EXISTS, None, f"customer_master_key_id is '{UNKNOWN}': the key is checked in the real run", "run without --check"))
            return None, key
        ref = key_ref(key, "customer_master_key_id")
        region = target.region
        if ref.region is not None and target.region_option is not None and ref.region != target.region_option:
            checks.append(
                check(
                    KEY_REGION,
                    False,
                    f"customer_master_key_id {ref.arn} is in region {ref.region}, but region is {target.region_option}; Atlas would not find the key",
                    f"leave region unset (a key ARN names its own region) or set region: {ref.region}",
                )
            )
            region = ref.region
        metadata, _connection, problem = self.lookup_key(ref, ref.region or region)
        if metadata is None:
            ok, message = problem
            fix = (
                "check customer_master_key_id and region. Atlas looks a bare key id up in the IAM role's account: a key in another "
                "account must be given as its full ARN, and key_owner_assume_role_arn lets this module read it"
            )
            if ok is None:
                fix = "give key_owner_assume_role_arn, a role in the key's account that may call kms:DescribeKey and kms:GetKeyPolicy"
            checks.append(check(KEY_EXISTS, ok, message, fix))
            return None, key if ref.kind in ("key_id", "key_arn") else None
        label = key_label(metadata)
        checks.append(check(KEY_EXISTS, True, f"found KMS key {label} in account {metadata['account']}, region {metadata['region']}"))
        problems = key_problems(metadata)
        if problems:
            checks.append(
                check(
                    KEY_STATE,
                    False,
                    "; ".join(problem.message for problem in problems),
                    "enable the key, cancel its deletion, or choose a customer managed symmetric encryption key",
                )
            )
        else:
            checks.append(check(KEY_STATE, True, f"KMS key {label} is Enabled, customer managed and a symmetric encryption key"))
        if not any(item["name"] == KEY_REGION for item in checks):
            if target.region and metadata["region"] != target.region:
                checks.append(
                    check(
                        KEY_REGION,
                        False,
                        f"KMS key {label} is in region {metadata['region']}, but the configuration names region {target.region}",
                        f"set region: {metadata['region']} (or give the key ARN)",
                    )
                )
            else:
                checks.append(check(KEY_REGION, True, f"the key is in region {metadata['region']}, the region Atlas is given"))
        if ref.kind == "alias_arn":
            send = metadata["key_arn"]
        elif ref.kind == "alias_name":
            send = metadata["key_id"]
        else:
            send = key
        return metadata, send

    def _role_checks(self, target, metadata, send, checks):
        role = target.role
        if role is None:
            checks.append(
                check(
                    ROLE_AUTHORIZED,
                    False,
                    f"role_id {target.role_id} is not an AWS cloud provider access role of the project",
                    "create and authorize the role with cmk.atlas.cloud_provider_access and pass the role_id it returns",
                )
            )
            return send
        if is_unknown(role.get("role_id")) or is_unknown(role.get("iam_assumed_role_arn")):
            for name in (ROLE_AUTHORIZED, ROLE_TRUST, ROLE_POLICY, KEY_POLICY):
                checks.append(check(name, None, f"the Atlas role is '{UNKNOWN}' (an earlier task creates it): checked in the real run", "run without --check"))
            return send
        if not role.get("authorized"):
            checks.append(
                check(
                    ROLE_AUTHORIZED,
                    False,
                    f"Atlas role {role['role_id']} is not authorized for an IAM role yet, so Atlas cannot assume any",
                    f"authorize it: cmk.atlas.cloud_provider_access with role_id: {role['role_id']} and iam_role_arn: the IAM role's ARN",
                )
            )
            return send
        role_arn = role["iam_assumed_role_arn"]
        checks.append(check(ROLE_AUTHORIZED, True, f"Atlas role {role['role_id']} is authorized for {role_arn}"))
        account = role_account(role)
        send = self._cross_account(target, metadata, send, account, checks)

        caller = self._caller_account(self.aws)
        if caller != account:
            reason = f"the AWS credentials act in account {caller}" if caller else "the AWS credentials' account could not be read"
            for name in (ROLE_TRUST, ROLE_POLICY):
                checks.append(
                    check(
                        name,
                        None,
                        f"{reason}, but IAM role {role_arn} is in account {account}: its policies were not read",
                        f"give AWS credentials of account {account} (for example assume_role_arn) that may read IAM roles",
                    )
                )
            return send
        try:
            policies = read_role_policies(self.aws, role_arn)
        except RoleNotFoundError as exc:
            checks.append(
                check(
                    ROLE_TRUST,
                    False,
                    f"{exc}: Atlas cannot assume it",
                    "create the IAM role (cmk.atlas.aws_iam_role), or authorize the Atlas role for an existing one",
                )
            )
            return send
        except AwsError as exc:
            if not _denied(exc):
                raise
            checks.append(
                check(
                    ROLE_TRUST,
                    None,
                    f"IAM role {role_arn} could not be read: {exc}",
                    "give AWS credentials that may call iam:GetRole and list and read its policies",
                )
            )
            return send
        if trust_policy_allows(policies.trust_policy, role.get("atlas_aws_account_arn"), role.get("external_id")):
            checks.append(check(ROLE_TRUST, True, f"the trust policy of {role_arn} lets Atlas assume it with the role's external id"))
        else:
            checks.append(
                check(
                    ROLE_TRUST,
                    False,
                    f"the trust policy of {role_arn} does not let Atlas ({role.get('atlas_aws_account_arn')}) assume it "
                    f"with external id {role.get('external_id')}",
                    trust_policy_requirement(role_arn, role.get("atlas_aws_account_arn"), role.get("external_id"))
                    + " cmk.atlas.aws_iam_role writes such a trust policy.",
                )
            )
        if metadata is None:
            metadata = _arn_metadata(send)
        if metadata is None:
            for name in (ROLE_POLICY, KEY_POLICY):
                checks.append(check(name, None, "the key could not be read, so its permissions were not checked", "see key_exists"))
            return send
        self._access_checks(target, metadata, role_arn, account, policies, checks)
        return send

    def _cross_account(self, target, metadata, send, account, checks):
        """Atlas needs the full key ARN when the key is in another account than the role."""
        key_account = metadata["account"] if metadata else None
        if key_account is None and send and not is_unknown(send):
            try:
                key_account = parse_kms_key_ref(send).account
            except ArnError:
                key_account = None
        if key_account is None or account is None or key_account == account:
            return send
        try:
            ref = parse_kms_key_ref(send)
        except ArnError:
            ref = None
        if ref is not None and ref.kind == "key_arn":
            checks.append(check(KEY_ARN, True, f"the key is in account {key_account} and the role in account {account}: Atlas gets the full key ARN"))
            return send
        arn = metadata["key_arn"] if metadata else build_key_arn(ref.key_id, key_account, target.region)
        checks.append(
            check(
                KEY_ARN,
                True,
                f"the key is in account {key_account} and the role in account {account}: Atlas gets the full key ARN {arn} instead of the key id",
            )
        )
        return arn

    def _key_policy_connection(self, key_account):
        if self.key_owner is not None:
            owner_account = self._caller_account(self.key_owner)
            if owner_account == key_account:
                return self.key_owner, None
            return None, f"key_owner_assume_role_arn acts in account {owner_account}, not in the key's account {key_account}"
        if self._caller_account(self.aws) == key_account:
            return self.aws, None
        return None, f"the key is in account {key_account} and only that account can read its key policy; key_owner_assume_role_arn is not set"

    def _access_checks(self, target, metadata, role_arn, account, policies, checks):
        key_arn = metadata["key_arn"]
        connection, reason = self._key_policy_connection(metadata["account"])
        key_policy = None
        if connection is not None:
            try:
                key_policy = get_key_policy(connection, metadata)
            except AwsError as exc:
                if not _denied(exc):
                    raise
                reason = f"the key policy could not be read: {exc}"
        documents = Documents(policies.identity, policies.boundary, key_policy)
        sources = self.addresses() if needs_source_addresses(documents) else None
        report = evaluate_access(role_arn, key_arn, metadata["region"], documents, sources, bool(target.private_networking))
        notes = f" (undecided: {'; '.join(report.unchecked)})" if report.unchecked else ""

        if report.role_ok is True:
            checks.append(check(ROLE_POLICY, True, f"the policies of {role_arn} allow {ACCESS_ACTIONS_TEXT} on {key_arn}"))
        else:
            message = "; ".join(report.role_problems) if report.role_problems else f"the policies of {role_arn} could not be fully evaluated"
            checks.append(
                check(
                    ROLE_POLICY,
                    report.role_ok,
                    message + notes,
                    f"give {role_arn} an identity policy that allows {ACCESS_ACTIONS_TEXT} on {key_arn} (cmk.atlas.aws_iam_role with kms_key_arns: "
                    f"[{key_arn}]) and remove or narrow any Deny that matches",
                )
            )
        key_fix = (
            f"add a key-policy statement that allows {role_arn} {ACCESS_ACTIONS_TEXT} (cmk.atlas.kms_key_policy with principals: [{role_arn}], "
            f"acting in account {metadata['account']}) and remove or narrow any Deny that matches"
        )
        if key_policy is None:
            checks.append(
                check(
                    KEY_POLICY,
                    None,
                    f"the key policy of {key_arn} was not checked: {reason}",
                    f"give key_owner_assume_role_arn, a role in account {metadata['account']} that may call kms:GetKeyPolicy; {key_fix}",
                )
            )
        elif report.key_ok is True:
            checks.append(check(KEY_POLICY, True, f"the key policy of {key_arn} lets {role_arn} use the key"))
        else:
            message = "; ".join(report.key_problems) if report.key_problems else "the key policy could not be fully evaluated"
            checks.append(check(KEY_POLICY, report.key_ok, message + notes, key_fix))

        if report.source_ip_ok is True:
            detail = "every aws:SourceIp condition admits Atlas's control-plane addresses" if sources else "no policy restricts the source address"
            checks.append(check(SOURCE_IP, True, detail))
        else:
            addresses = ", ".join(sources) if sources else "unknown"
            if report.source_ip_ok is False:
                message = "; ".join(report.source_ip_problems)
            elif target.private_networking:
                message = "aws:SourceIp conditions are not checked with require_private_networking: Atlas then reaches KMS through private endpoints"
            else:
                message = "Atlas's control-plane addresses could not be read, so the aws:SourceIp conditions were not checked"
            checks.append(
                check(
                    SOURCE_IP,
                    report.source_ip_ok,
                    message,
                    f"let Atlas's control-plane outbound addresses ({addresses}) and the public addresses of the project's cluster nodes "
                    "pass every aws:SourceIp condition (cmk.atlas.source_ip_info lists them), or drop the condition",
                )
            )

    def previous_access_key(self, access_key_id, checks):
        """Find the IAM user that owns the access key to deactivate after the switch; its name, or None."""
        fix = (
            f"give AWS credentials of the account that owns access key {access_key_id}, allowed iam:GetAccessKeyLastUsed, iam:ListAccessKeys "
            "and iam:UpdateAccessKey; or leave deactivate_previous_access_key false and deactivate the key yourself after the switch"
        )
        try:
            user = self.aws.call("iam", "get_access_key_last_used", AccessKeyId=access_key_id).get("UserName")
            keys = self.aws.paginate("iam", "list_access_keys", UserName=user).get("AccessKeyMetadata", []) if user else []
        except AwsError as exc:
            checks.append(check(PREVIOUS_ACCESS_KEY, False, f"the IAM user of access key {access_key_id} could not be found: {exc}", fix))
            return None
        status = next((item.get("Status") for item in keys if item.get("AccessKeyId") == access_key_id), None)
        if not user or status is None:
            checks.append(check(PREVIOUS_ACCESS_KEY, False, f"access key {access_key_id} is not a key of an IAM user these AWS credentials can see", fix))
            return None
        checks.append(
            check(
                PREVIOUS_ACCESS_KEY, True, f"access key {access_key_id} belongs to IAM user {user} ({status}); it is deactivated once Atlas reports valid: true"
            )
        )
        return user


def deactivate_access_key(aws, user_name, access_key_id):
    """Set the access key Inactive (not deleted: it can be turned on again)."""
    aws.call("iam", "update_access_key", UserName=user_name, AccessKeyId=access_key_id, Status="Inactive")


def atlas_region(region):
    """An AWS or Atlas region name in Atlas form, or None."""
    return to_atlas_region(region, "region") if region is not None else None


def transient(error):
    return isinstance(error, AtlasApiError) and error.error_code in TRANSIENT_CODES
