# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Steps 1-4 of the procedures in one pass: an Atlas project reaches a KMS key through an IAM role.

Each resource is read once: the project's encryption at rest and cloud provider access roles, the
IAM role with its inline policies, the key and its key policy. Writes follow the order the
services need (Atlas role, IAM role, key policy, authorization); an ``aws:SourceIp`` list that loses
addresses is widened to old and new first and narrowed only after Atlas reports the key valid.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.cmk.atlas.plugins.module_utils.arn import parse_role_arn
from ansible_collections.cmk.atlas.plugins.module_utils.cloud_provider_access import (
    CloudProviderAccess,
)
from ansible_collections.cmk.atlas.plugins.module_utils.cloud_provider_access import (
    plan_present as plan_atlas_role,
)
from ansible_collections.cmk.atlas.plugins.module_utils.encryption_at_rest import (
    ACCESS_CREDENTIALS,
    ACCESS_NONE,
    ACCESS_ROLE,
    EncryptionAtRestApi,
    same_key,
)
from ansible_collections.cmk.atlas.plugins.module_utils.encryption_at_rest import (
    normalize as normalize_encryption,
)
from ansible_collections.cmk.atlas.plugins.module_utils.iam_role import (
    apply_actions,
    check_role_path,
    desired_role,
    predicted_arn,
    read_role,
    validate_description,
    validate_policy_name,
    validate_role_name,
    validate_role_path,
    validate_tags,
)
from ansible_collections.cmk.atlas.plugins.module_utils.iam_role import (
    diff_view as role_diff_view,
)
from ansible_collections.cmk.atlas.plugins.module_utils.iam_role import (
    plan_present as plan_iam_role,
)
from ansible_collections.cmk.atlas.plugins.module_utils.kms import (
    KeyPolicyPlan,
    check_key,
    default_key_access_sid,
    describe_key,
    foreign_alias_error,
    get_key_policy,
    key_ref,
    plan_key_access,
    put_key_policy,
    unread_key_policy_warning,
    validate_key_principals,
)
from ansible_collections.cmk.atlas.plugins.module_utils.module import UNKNOWN, ModuleInputError, diff_of, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.policy import condition_source_ips, normalize_policy, normalize_source_ips

PROCEDURE_ENABLE = "enable"
PROCEDURE_SWITCH = "switch"

Outcome = collections.namedtuple("Outcome", ["changed", "result", "diffs", "warnings"])


def guard_procedure(procedure, project_id, current):
    """Refuse, before any write, a project the procedure does not apply to."""
    if procedure == PROCEDURE_ENABLE and current["access_method"] == ACCESS_CREDENTIALS:
        raise ModuleInputError(
            f"Project {project_id} encrypts at rest with key {current['customer_master_key_id']} reached with access key "
            f"{current['access_key_id']} (credentials-based access). Enable does not change such a project: switch it to the IAM role "
            "with cmk.atlas.switch (ansible-playbook cmk.atlas.switch with cmk_atlas_confirm_switch: true; preview it with --check --diff). "
            "The switch cannot be undone. Nothing was written."
        )
    if procedure == PROCEDURE_SWITCH and current["access_method"] == ACCESS_NONE:
        raise ModuleInputError(
            f"Project {project_id} has no encryption at rest with AWS KMS, so there is nothing to switch. "
            "Enable it with cmk.atlas.enable (it needs cmk_atlas_kms_key). Nothing was written."
        )


def encryption_in_place(current, role_id, key_arn, region, role_account):
    """Whether the project already encrypts with this key, through this role, and Atlas reports it valid."""
    return (
        current["access_method"] == ACCESS_ROLE
        and current["role_id"] == role_id
        and current["valid"] is True
        and current["aws_region"] == region
        and same_key(current["customer_master_key_id"], key_arn, region=region, principal_account=role_account)
    )


class KeyAccess:
    """One run: ``params`` are the module's options, ``atlas`` an AtlasClient, ``aws`` an AwsConnection
    factory (``aws()`` builds it on first use), ``key_owner`` a callable returning the key owner's
    connection or None; ``sleep``/``clock``/``log`` go to the Atlas waits."""

    def __init__(self, params, atlas, aws, key_owner, check_mode=False, sleep=None, clock=None, log=None):
        self.params = params
        self.check_mode = check_mode
        self.project_id = validate_project_id(params["project_id"])
        self.role_name = validate_role_name(params["iam_role_name"], "iam_role_name")
        self.role_path = validate_role_path(params["iam_role_path"] or "/", "iam_role_path")
        self.policy_name = validate_policy_name(params["policy_name"], "policy_name")
        self.user_tags = validate_tags(params["iam_role_tags"], "iam_role_tags")
        validate_description(params["iam_role_description"], "iam_role_description")
        self.source_ips = normalize_source_ips(params["source_ips"], "source_ips") if params["source_ips"] else None
        for name in ("authorize_timeout", "valid_timeout"):
            if params[name] < 0:
                raise ModuleInputError(f"{name} is {params[name]}; it must be 0 (try once) or more seconds, such as 300")
        if params["key_owner_assume_role_arn"]:
            parse_role_arn(params["key_owner_assume_role_arn"], "key_owner_assume_role_arn")
        if params["kms_key"] is not None:
            key_ref(params["kms_key"], "kms_key")
        self.atlas_roles = CloudProviderAccess(atlas, self.project_id, sleep=sleep, clock=clock, log=log)
        self.encryption = EncryptionAtRestApi(atlas, self.project_id, sleep=sleep, clock=clock, log=log)
        self._aws = aws
        self._key_owner = key_owner
        self.foreign_key = None
        self.warnings = []
        self.diffs = []
        self.changed = False

    # -- the key -------------------------------------------------------------------------------

    def key_connection(self, region):
        """The connection that reads (and writes) the key policy: the key owner's when given, else the module's."""
        connection = self._key_owner() or self._aws()
        if region and region != connection.region:
            connection = connection.derive(region=region)
        return connection

    def resolve_key(self, current):
        """(ref, connection, metadata or None): metadata is None for another account's key that cannot be read here."""
        value = self.params["kms_key"]
        region = self.params["region"] or None
        if value is None:
            if current["access_method"] == ACCESS_NONE:
                raise ModuleInputError(
                    f"kms_key is not set and project {self.project_id} has no encryption at rest whose key could be kept: "
                    "give the key id, ARN or alias Atlas should use"
                )
            value = current["customer_master_key_id"]
            region = region or current["aws_region"]
        ref = key_ref(value, "kms_key")
        # A key or alias ARN names its own region; region (the connection's) only places a bare id or alias name.
        region = ref.region or region
        connection = self.key_connection(region)
        caller_account = connection.caller_identity()["Account"] if ref.account is not None else None
        if ref.account is not None and caller_account != ref.account:
            self.foreign_key = (ref.arn, ref.account, caller_account)
            if ref.key_id is None:
                raise foreign_alias_error(ref, "kms_key", "key_owner_assume_role_arn")
            return ref, connection, None
        metadata = describe_key(connection, ref, option="kms_key")
        for warning in check_key(metadata, "kms_key"):
            self.warnings.append(warning)
        return ref, connection, metadata

    # -- the run -------------------------------------------------------------------------------

    def run(self):
        params = self.params
        roles = self.atlas_roles.roles()
        current = normalize_encryption(self.encryption.get(), roles)
        guard_procedure(params["procedure"], self.project_id, current)

        aws = self._aws()
        iam_role = read_role(aws, self.role_name)
        check_role_path(iam_role, self.role_path, "iam_role_path", "use another iam_role_name")
        iam_role_arn = iam_role["arn"] if iam_role is not None else predicted_arn(aws, self.role_name, self.role_path)
        ref, key_connection, metadata = self.resolve_key(current)
        key_arn = metadata["key_arn"] if metadata is not None else ref.arn
        region = metadata["region"] if metadata is not None else ref.region

        # 1. The Atlas role: the one already authorized for this IAM role, else an unused one, else a new one.
        selection = plan_atlas_role(roles, iam_role_arn=iam_role_arn, project_id=self.project_id, authorize=False)
        self.warnings.extend(selection.warnings)
        atlas_role = selection.after
        if selection.create:
            self.changed = True
            if not self.check_mode:
                atlas_role = self.atlas_roles.create()
                roles = [*roles, atlas_role]

        try:
            return self._after_atlas_role(current, roles, selection, atlas_role, iam_role, iam_role_arn, key_connection, metadata, key_arn, region)
        except Exception as error:  # a failure after the Atlas role was created says which role exists now
            if selection.create and not self.check_mode:
                error.role = atlas_role
            raise

    def _after_atlas_role(self, current, roles, selection, atlas_role, iam_role, iam_role_arn, key_connection, metadata, key_arn, region):
        params = self.params
        aws = self._aws()

        # 2. The IAM role: trust for this Atlas role's external ID, pairing tags, the inline KMS policy.
        previous_ips = condition_source_ips((iam_role or {}).get("inline_policies", {}).get(self.policy_name)) if iam_role else []
        final_ips = self.source_ips
        added = sorted(set(final_ips or []) - set(previous_ips)) if final_ips is not None else []
        removed = sorted(set(previous_ips) - set(final_ips)) if final_ips is not None else []
        # Removing waits for Atlas's valid flag; until then the policies hold the old and the new addresses.
        first_ips = normalize_source_ips(previous_ips + final_ips) if removed else final_ips
        role_before = iam_role
        iam_after = self.ensure_iam_role(aws, iam_role, atlas_role, key_arn, first_ips)
        if iam_after.get("arn"):
            iam_role_arn = iam_after["arn"]

        # 3. The key policy, only where it does not already let the role use the key.
        key_policy_ips = first_ips if params["key_policy_source_ips"] else None
        key_before, key_plan, statement, needed = self.ensure_key_policy(key_connection, metadata, iam_role_arn, key_policy_ips)

        # 4. The authorization, retried while IAM propagates the new trust policy.
        authorized = self.ensure_authorized(roles, atlas_role, iam_role_arn)

        # Then the old addresses go (check mode shows where the run ends, after narrowing).
        if removed:
            if not self.check_mode:
                self.confirm_valid(previous_ips, final_ips, removed)
            iam_after = self.ensure_iam_role(aws, iam_after, authorized, key_arn, final_ips)
            if params["key_policy_source_ips"] and metadata is not None:
                _before, key_plan, statement, needed = self.ensure_key_policy(key_connection, metadata, iam_role_arn, final_ips, plan=key_plan)

        header = f"IAM role {self.role_name}"
        self.diffs.insert(0, diff_of(selection.before, authorized, *(f"Atlas cloud provider access role (project {self.project_id})",) * 2))
        self.diffs.insert(1, diff_of(role_diff_view(role_before, self.policy_name), role_diff_view(iam_after, self.policy_name), header, header))
        if metadata is not None:
            key_header = f"key policy of {key_arn}"
            self.diffs.append(diff_of(normalize_policy(key_before), normalize_policy(key_plan.after), key_header, key_header))

        role_account = parse_role_arn(iam_role_arn, "iam_role_arn").account
        in_place = not self.changed and encryption_in_place(current, authorized["role_id"], key_arn, region, role_account)
        result = {
            "project_id": self.project_id,
            "role_id": authorized["role_id"],
            "reused_by": selection.reused_by,
            "external_id": authorized["external_id"],
            "atlas_aws_account_arn": authorized["atlas_aws_account_arn"],
            "authorized": bool(authorized.get("authorized")),
            "iam_role_arn": iam_role_arn,
            "iam_role_name": self.role_name,
            "policy_name": self.policy_name,
            "key_arn": key_arn,
            "key_region": region,
            "key_state": metadata["key_state"] if metadata is not None else None,
            "key_policy_statement": statement,
            "key_policy_statement_needed": needed,
            "source_ips": final_ips,
            "source_ips_added": added,
            "source_ips_removed": removed,
            "encryption_at_rest": current,
            "encryption_at_rest_in_place": in_place,
        }
        return Outcome(self.changed, result, self.diffs, self.warnings)

    # -- steps ---------------------------------------------------------------------------------

    def _desired_iam_role(self, atlas_role, key_arn, source_ips):
        return desired_role(
            {
                "name": self.role_name,
                "path": self.role_path,
                "description": self.params["iam_role_description"],
                "tags": self.user_tags,
                "atlas_project_id": self.project_id,
                "atlas_role_id": atlas_role["role_id"],
                "atlas_aws_account_arn": atlas_role["atlas_aws_account_arn"],
                "external_id": atlas_role["external_id"],
                "kms_key_arns": [key_arn],
                "source_ips": source_ips,
                "policy_name": self.policy_name,
            }
        )

    def ensure_iam_role(self, aws, current, atlas_role, key_arn, source_ips):
        actions, after = plan_iam_role(current, self._desired_iam_role(atlas_role, key_arn, source_ips))
        if actions:
            self.changed = True
            if not self.check_mode:
                created = apply_actions(aws, actions)
                if created is not None:
                    after["arn"], after["role_id"] = created["Arn"], created["RoleId"]
        if current is None and not after.get("arn"):
            after["arn"], after["role_id"] = predicted_arn(aws, self.role_name, self.role_path), UNKNOWN
        return after

    def ensure_key_policy(self, connection, metadata, iam_role_arn, source_ips, plan=None):
        """(policy before, KeyPolicyPlan, statement or None, needed); ``plan`` continues from an earlier plan's result."""
        principals = validate_key_principals([iam_role_arn], "iam_role_name")
        sid = default_key_access_sid(principals)
        if metadata is None:
            self.warnings.append(unread_key_policy_warning(*self.foreign_key, principals, "key_owner_assume_role_arn"))
            return None, KeyPolicyPlan(None, None, False, None), None, None
        current = plan.after if plan is not None else get_key_policy(connection, metadata)
        before = plan.before if plan is not None else current
        needed, statement, step = plan_key_access(current, sid, principals, metadata, source_ips, only_if_needed=True)
        if step.changed:
            self.changed = True
            if not self.check_mode:
                put_key_policy(connection, metadata, step.after)
        return before, KeyPolicyPlan(before, step.after, step.changed or (plan is not None and plan.changed), step.statement), statement, needed

    def ensure_authorized(self, roles, atlas_role, iam_role_arn):
        if atlas_role.get("iam_assumed_role_arn") == iam_role_arn and atlas_role.get("authorized"):
            return atlas_role
        known = roles if any(role["role_id"] == atlas_role["role_id"] for role in roles) else [*roles, atlas_role]
        plan = plan_atlas_role(known, role_id=atlas_role["role_id"], iam_role_arn=iam_role_arn, project_id=self.project_id, authorize=True)
        self.warnings.extend(plan.warnings)
        if not plan.authorize:
            return plan.after
        self.changed = True
        if self.check_mode:
            return plan.after
        return self.atlas_roles.authorize(atlas_role, iam_role_arn, self.params["authorize_timeout"])

    def confirm_valid(self, previous_ips, final_ips, removed):
        """Wait until Atlas reports the key valid while it encrypts at rest; refuse to remove addresses otherwise."""
        aws_kms = self.encryption.get()
        if not aws_kms.get("enabled"):
            return
        aws_kms = self.encryption.wait_valid(self.params["valid_timeout"], first=aws_kms)
        if aws_kms.get("valid") is not True:
            both = ", ".join(normalize_source_ips(previous_ips + final_ips))
            raise ModuleInputError(
                f"Project {self.project_id}: Atlas reports the key not valid with the old and the new addresses allowed ({both}), so no address "
                f"was removed (it would remove {', '.join(removed)}). Check the key, the role's trust and KMS permissions (cmk.atlas.verify), then run again."
            )
