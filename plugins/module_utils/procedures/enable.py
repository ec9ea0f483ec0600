# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The enable and switch procedures on the engine: read, plan and judge, apply.

Both bring a project to role-based access to its KMS key: the Atlas cloud provider access role, the
IAM role (trust, pairing tags, inline KMS policy), the key-policy statement where needed, the
authorization, the project's encryption-at-rest settings with the wait for ``valid``, and the
clusters' ``encryptionAtRestProvider``. Switch keeps the key the project has; enable names one.

Every resource is read once. The plan is judged as it will be after the writes (trust, identity and
key policies from every address Atlas uses, key state, region, clusters, ownership of the IAM role
and of the key-policy statement); any problem stops the run before the first write.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError, diff_of, is_unknown, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import CloudProviderAccess
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import plan_present as plan_atlas_role
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.clusters import PAUSED_FAIL, ClusterEncryption, cluster_results, plan_provider
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.clusters import list_clusters as read_clusters
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import (
    ACCESS_CREDENTIALS,
    ACCESS_NONE,
    ACCESS_ROLE,
    Desired,
    EncryptionAtRestApi,
    Preflight,
    deactivate_access_key,
    diff_view,
    same_key,
    switch_message,
)
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import normalize as normalize_encryption
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import plan_present as plan_encryption
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import parse_role_arn
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import (
    ADOPTED_TAG,
    RoleAppearedError,
    RoleConflictError,
    apply_actions,
    check_role_path,
    desired_role,
    extra_permissions,
    predicted_arn,
    read_role,
    role_ownership,
    trust_admits_only,
    validate_description,
    validate_policy_name,
    validate_role_name,
    validate_role_path,
    validate_tags,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import diff_view as role_diff_view
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import plan_present as plan_iam_role
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import (
    KmsKeyError,
    default_key_access_sid,
    describe_key,
    foreign_alias_error,
    get_key_policy,
    key_problems,
    key_ref,
    plan_key_access,
    put_key_policy,
    unread_key_policy_warning,
    validate_key_principals,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.regions import to_atlas_region
from ansible_collections.cmk.atlas.plugins.module_utils.aws.retained_keys import (
    MAX_TAG_VALUE,
    format_time,
    record_time,
    retained_key_arns,
    retained_role_tag,
    retained_roles,
    role_tag_value,
)
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import normalize_policy, normalize_source_ips, trust_policy_allows
from ansible_collections.cmk.atlas.plugins.module_utils.policy.evaluator import Documents, evaluate_access, needs_source_addresses
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.engine import Plan, execute
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.private_networking import plan_for as plan_private_networking

PROCEDURE_ENABLE = "enable"
PROCEDURE_SWITCH = "switch"
PROCEDURE_ROTATE = "rotate"
PROCEDURE_VERIFY = "verify"
ACCESS_ACTIONS_TEXT = "kms:Encrypt, kms:Decrypt and kms:DescribeKey"
_DENIED_CODES = ("AccessDenied", "AccessDeniedException")

Outcome = collections.namedtuple("Outcome", ["changed", "result", "diffs", "warnings"])


def encryption_in_place(current, role_id, key_arn, region, role_account):
    """Whether the project already encrypts with this key, through this role, and Atlas reports it valid."""
    return (
        current["access_method"] == ACCESS_ROLE
        and current["role_id"] == role_id
        and current["valid"] is True
        and current["aws_region"] == region
        and same_key(current["customer_master_key_id"], key_arn, region=region, principal_account=role_account)
    )


class Variables:
    """The option names a message speaks of: the module's, or the playbook variables when a play runs the module."""

    def __init__(self, playbook):
        prefix = "cmk_atlas_" if playbook else ""
        names = {
            "kms_key": "kms_key",
            "region": "region" if playbook else "key_region",
            "iam_role_name": "iam_role_name",
            "adopt_iam_role": "adopt_iam_role",
            "replace_iam_role": "replace_iam_role",
            "retire_keys": "retire_keys",
            "retire_roles": "retire_roles",
            "pit_window_days": "pit_window_days",
            "key_owner_assume_role_arn": "key_owner_role_arn" if playbook else "key_owner_assume_role_arn",
            "source_ips": "source_ips",
            # The module's required_source_ips is what cmk_atlas_manage_source_ips collects in the playbooks.
            "manage_source_ips": "manage_source_ips" if playbook else "required_source_ips",
            "require_private_networking": "require_private_networking",
            "private_endpoint_regions": "private_endpoint_regions",
            "endpoint_timeout": "endpoint_timeout",
            "clusters": "clusters",
            "confirm_switch": "confirm_switch",
            "confirm_disable": "confirm_disable",
            "remove_access": "remove_access",
            "project_id": "project_id",
        }
        self._names = {key: prefix + value for key, value in names.items()}

    def __getattr__(self, name):
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None


class RoleBasedAccess:
    """One run of enable or switch. ``atlas`` is an AtlasClient, ``aws()`` returns the AwsConnection,
    ``key_owner()`` the key owner's connection or None; ``sleep``/``clock``/``log`` go to the waits."""

    def __init__(self, params, atlas, aws, key_owner, check_mode=False, sleep=None, clock=None, log=None):
        self.params = params
        self.check_mode = check_mode
        self.var = Variables(params.get("message_names") == "playbook")
        self.procedure = params["procedure"]
        self.project_id = validate_project_id(params["project_id"], self.var.project_id)
        # Unset: the role the project uses now (adopted by read()).
        self.role_name = validate_role_name(params["iam_role_name"], self.var.iam_role_name) if params.get("iam_role_name") else None
        self.role_path = validate_role_path(params["iam_role_path"] or "/", "iam_role_path")
        self.adopted_role_arn = None
        for name in ("retire_keys", "retire_roles"):
            if params.get(name) and self.procedure != PROCEDURE_ROTATE:
                raise ModuleInputError(
                    f"{getattr(self.var, name)} is given to cmk.atlas.{self.procedure}, which does not retire anything; "
                    "nothing was read and nothing was written. "
                    f"Retire with cmk.atlas.rotate (its {self.var.kms_key} the project's current key to retire without rotating), or leave it unset"
                )
        self.policy_name = validate_policy_name(params["policy_name"], "policy_name")
        self.user_tags = validate_tags(params["iam_role_tags"], "iam_role_tags")
        validate_description(params["iam_role_description"], "iam_role_description")
        self.source_ips = normalize_source_ips(params["source_ips"], self.var.source_ips) if params["source_ips"] else None
        self.required_source_ips = normalize_source_ips(params["required_source_ips"], "required_source_ips") if params["required_source_ips"] else []
        for name in ("authorize_timeout", "valid_timeout", "cluster_timeout"):
            if params[name] < 0:
                raise ModuleInputError(f"{name} is {params[name]}; it must be 0 (try once) or more seconds, such as 300")
        if params["key_owner_assume_role_arn"]:
            parse_role_arn(params["key_owner_assume_role_arn"], self.var.key_owner_assume_role_arn)
        if params["key_region"]:
            to_atlas_region(params["key_region"], self.var.region)
        self.ref = key_ref(params["kms_key"], self.var.kms_key) if params["kms_key"] is not None else None
        self.atlas_roles = CloudProviderAccess(atlas, self.project_id, sleep=sleep, clock=clock, log=log)
        self.encryption = EncryptionAtRestApi(atlas, self.project_id, sleep=sleep, clock=clock, log=log)
        self.clusters_api = ClusterEncryption(atlas, self.project_id, sleep=sleep, clock=clock, log=log)
        self._atlas = atlas
        self._aws = aws
        self._key_owner = key_owner
        self.plan = Plan()

    # -- 1. read ---------------------------------------------------------------------------------

    def read(self):
        """Every resource the procedure touches, once.

        The project's settings come first (a wrong project id stops the run before any AWS call); the IAM role
        is read before the Atlas roles: a run creates its Atlas role before the IAM role that trusts it, so an
        IAM role made by a concurrent run is never seen without the Atlas role it names.
        """
        settings = self.encryption.settings()
        roles = None
        if self.role_name is None:
            roles = self.atlas_roles.roles()
            self._adopt_role_in_use(settings, roles, required=True)
        aws = self._aws()
        self.iam_role = read_role(aws, self.role_name)
        self._check_adopted_role()
        self.iam_role_arn = self.iam_role["arn"] if self.iam_role is not None else predicted_arn(aws, self.role_name, self.role_path)
        self.roles = roles if roles is not None else self.atlas_roles.roles()
        self.current = normalize_encryption(settings.get("awsKms"), self.roles)
        self.search_nodes = settings.get("enabledForSearchNodes")
        self.clusters = read_clusters(self._atlas, self.project_id)
        self.key_connection, self.key, self.key_policy = self._read_key()

    def _adopt_role_in_use(self, settings, roles, required):
        """With no role name given: take the IAM role the project reaches its key through now (its ``roleId``, that
        Atlas role's ``iamAssumedRoleArn``). ``required``: a project without one is refused, before any AWS call."""
        current = normalize_encryption(settings.get("awsKms"), roles)
        arn = current["iam_role_arn"] if current["access_method"] == ACCESS_ROLE else None
        if not arn:
            if not required:
                return
            how = {ACCESS_NONE: "it has no encryption at rest", ACCESS_CREDENTIALS: "it reaches its key with an access key and secret"}.get(
                current["access_method"], "its Atlas role is not authorized for an IAM role"
            )
            raise ModuleInputError(
                f"{self.var.iam_role_name} is not set, and project {self.project_id} has no IAM role to keep ({how}); nothing was read from AWS "
                f"and nothing was written. Give {self.var.iam_role_name}, the IAM role to create for the project, such as atlas-kms-{self.project_id}"
            )
        role = parse_role_arn(arn, "iamAssumedRoleArn")
        self.role_name, self.role_path, self.adopted_role_arn = role.name, role.path, arn

    def _check_adopted_role(self):
        """The role Atlas names must be the one these AWS credentials see under that name."""
        if self.adopted_role_arn is None:
            return
        if self.iam_role is None or self.iam_role["arn"] != self.adopted_role_arn:
            seen = f"their role of that name is {self.iam_role['arn']}" if self.iam_role is not None else "they see no role of that name"
            raise ModuleInputError(
                f"project {self.project_id} reaches its key through IAM role {self.adopted_role_arn}, but the AWS credentials "
                f"cannot read it ({seen}); nothing was written. Use credentials of account {parse_role_arn(self.adopted_role_arn).account}, "
                f"or give {self.var.iam_role_name}"
            )

    def _key_reference(self):
        """(ref, region) of the key Atlas is to use: the one given, else (switch) the project's current one."""
        if self.ref is not None:
            return self.ref, self.ref.region or self.params["key_region"] or None
        if self.current["access_method"] == ACCESS_NONE:
            return None, None
        return key_ref(self.current["customer_master_key_id"], self.var.kms_key), self.params["key_region"] or self.current["aws_region"]

    def _read_key(self):
        """(connection, metadata or None, key policy or None); problems go to the plan."""
        ref, region = self._key_reference()
        self.key_label = None
        if ref is None:
            return None, None, None
        self.key_label = ref.arn or ref.alias or ref.key_id
        connection = self._key_owner() or self._aws()
        region = ref.region or region
        if region and region != connection.region:
            connection = connection.derive(region=region)
        if ref.account is not None and connection.caller_identity()["Account"] != ref.account:
            # Another account's key: only its account can read it; Atlas gets the ARN as given.
            self.foreign_key = (ref.arn, ref.account, connection.caller_identity()["Account"])
            if ref.key_id is None:
                raise foreign_alias_error(ref, self.var.kms_key, self.var.key_owner_assume_role_arn)
            return connection, None, None
        self.foreign_key = None
        try:
            metadata = describe_key(connection, ref, option=self.var.kms_key)
        except KmsKeyError as error:
            self.plan.problem(self.var.kms_key, str(error), f"check {self.var.kms_key} and {self.var.region}")
            return connection, None, None
        try:
            policy = get_key_policy(connection, metadata)
        except AwsError as error:
            if error.code not in _DENIED_CODES:
                raise
            self.plan.problem(
                f"key policy of {metadata['key_arn']}",
                f"the AWS credentials may not read it ({error}), so whether Atlas may use the key cannot be judged",
                f"allow kms:GetKeyPolicy to these credentials, or set {self.var.key_owner_assume_role_arn} to a role in account {metadata['account']} that may",
            )
            return connection, metadata, False
        return connection, metadata, policy

    # -- 2. plan and judge ----------------------------------------------------------------------

    def plan_all(self):
        plan = self.plan
        self._guard()
        ownership = self.ownership = self._judge_ownership()
        self.key_arn, self.key_region = key_arn, region = self._key_target()

        # The Atlas role: the one authorized for the IAM role, else the one its trust names, else an unused one, else a new one.
        external_id = self._trusted_external_id(ownership)
        try:
            selection = plan_atlas_role(self.roles, iam_role_arn=self.iam_role_arn, external_id=external_id, project_id=self.project_id, authorize=False)
        except ModuleInputError as error:
            plan.problem(self.var.iam_role_name, str(error))
            selection = plan_atlas_role(self.roles, iam_role_arn=self.iam_role_arn, project_id=self.project_id, authorize=False)
        plan.warnings.extend(selection.warnings)
        others = [
            role["role_id"] for role in self.roles if role.get("iam_assumed_role_arn") == self.iam_role_arn and role["role_id"] != selection.after["role_id"]
        ]
        if others:
            plan.warnings.append(
                f"Atlas roles {', '.join(others)} of project {self.project_id} are also authorized for {self.iam_role_arn}; "
                f"this run uses {selection.after['role_id']}. Deauthorize the others (cmk.atlas.cloud_provider_access, state: absent) once no feature uses them"
            )
        self.selection = selection
        self.atlas_role = selection.after
        self.replaced_role = self._judge_replacement()
        if selection.create:
            plan.step(f"create an Atlas cloud provider access role in project {self.project_id}", self._create_atlas_role)

        # The IAM role, as it will be.
        try:
            check_role_path(self.iam_role, self.role_path, "iam_role_path", f"use another {self.var.iam_role_name}")
        except RoleConflictError as error:
            plan.problem(self.var.iam_role_name, str(error))
        actions, self.iam_after = plan_iam_role(self.iam_role, self._desired_iam_role(self.atlas_role, key_arn))
        # Steps that change no access (tags only): Atlas's valid need not be confirmed after them.
        self.tag_only_steps = set()
        if actions:
            description = f"{'create' if self.iam_role is None else 'update'} IAM role {self.role_name} ({'; '.join(action.summary for action in actions)})"
            plan.step(description, self._apply_iam_role)
            if all(action.method in ("tag_role", "untag_role") for action in actions):
                self.tag_only_steps.add(description)

        # The key-policy statement, only where the key policy does not already let the role use the key.
        self.key_policy_after, self.key_statement, self.key_statement_needed = self._plan_key_policy()

        # The authorization.
        authorized = self.atlas_role.get("authorized") and self.atlas_role.get("iam_assumed_role_arn") == self.iam_role_arn
        self.authorized_role = dict(self.atlas_role, iam_assumed_role_arn=self.iam_role_arn, authorized=True) if not authorized else self.atlas_role
        if not authorized:
            plan.step(f"authorize Atlas role {self.atlas_role['role_id']} for {self.iam_role_arn}", self._authorize)

        # Private networking (turned off, the endpoints go before the settings change; turned on, they follow it).
        self.networking = plan_private_networking(self)
        # The project's encryption-at-rest settings.
        self.encryption_plan = self._plan_encryption(key_arn, region)
        # When the project moved away from a role (this run or one that stopped after the move), the time is recorded.
        self.roles_to_record = [role for role in retained_roles(self.iam_after["tags"]) if role.rotated_out is None]
        if self.roles_to_record and self.procedure != PROCEDURE_VERIFY:
            arns = ", ".join(role.role_arn for role in self.roles_to_record)
            plan.step(f"record on IAM role {self.role_name} when the project moved away from {arns}", self._record_replacement)
        # The clusters.
        self.cluster_plan = self._plan_clusters()

        self._judge_access(key_arn, region)
        self._diffs(key_arn)
        return plan

    def _guard(self):
        current, plan = self.current, self.plan
        if self.procedure == PROCEDURE_ENABLE and current["access_method"] == ACCESS_CREDENTIALS:
            plan.problem(
                f"project {self.project_id}",
                f"it encrypts at rest with key {current['customer_master_key_id']} reached with access key {current['access_key_id']} "
                "(credentials-based access), which enable does not change",
                f"switch it to the IAM role with cmk.atlas.switch ({self.var.confirm_switch}: true, after --check --diff); it cannot be undone",
            )
        if self.procedure == PROCEDURE_SWITCH and current["access_method"] == ACCESS_NONE:
            plan.problem(
                f"project {self.project_id}", "it has no encryption at rest with AWS KMS, so there is nothing to switch", "enable it with cmk.atlas.enable"
            )
        if self.ref is None and current["access_method"] == ACCESS_NONE and self.procedure != PROCEDURE_SWITCH:
            plan.problem(self.var.kms_key, f"it is not set and project {self.project_id} has no key to keep", "give the key id, ARN or alias Atlas should use")
        if self.procedure == PROCEDURE_SWITCH and current["access_method"] == ACCESS_CREDENTIALS and not self.params["confirm_switch"]:
            message = switch_message(current, "(the IAM role's Atlas role)")
            if self.check_mode:
                plan.warnings.append(f"{message} The real run stops before any write unless {self.var.confirm_switch} is true.")
            else:
                plan.problem(self.var.confirm_switch, message, f"preview the switch with --check --diff, then set {self.var.confirm_switch}: true")

    def _judge_ownership(self):
        """Refuse an IAM role that belongs to someone else; adopt a foreign one only on the user's word."""
        external_ids = [role["external_id"] for role in self.roles if role.get("external_id")]
        atlas_account = next((role["atlas_aws_account_arn"] for role in self.roles if role.get("atlas_aws_account_arn")), None)
        ownership = role_ownership(self.iam_role, self.project_id, atlas_account, external_ids)
        if ownership.kind == "foreign" and "sts:externalid" in json.dumps(self.iam_role["trust_policy"]).lower():
            # An external ID in the trust means the role serves some third party (another Atlas project, before this one has an Atlas role).
            ownership = ownership._replace(kind="other_project", message=ownership.message + "; its trust requires an external ID, so it serves another party")
        if ownership.kind == "other_project":
            self.plan.problem(
                self.var.iam_role_name, ownership.message + "; it is never changed for another project", f"give this project its own {self.var.iam_role_name}"
            )
        elif ownership.kind == "foreign":
            if self.params["adopt_iam_role"]:
                self.plan.warnings.append(f"{ownership.message}; it is adopted ({self.var.adopt_iam_role}: true): the diff shows what it loses")
            else:
                self.plan.problem(
                    self.var.iam_role_name,
                    ownership.message + ": its trust policy would be replaced by Atlas's, and anything else it may do would become Atlas's",
                    f"give a role name that does not exist yet, or set {self.var.adopt_iam_role}: true to take this role over",
                )
        return ownership

    def _judge_replacement(self):
        """The role the project moves away from (a RetainedRole-like dict), or None; refused without ``replace_iam_role``.

        Atlas restores a snapshot with the key and the role recorded when it was taken, so the replaced role keeps its
        authorization and its grant, recorded on the new IAM role as a retained role (retired by cmk.atlas.rotate).
        """
        current = self.current
        if current["access_method"] != ACCESS_ROLE or not current["role_id"] or current["role_id"] == self.atlas_role["role_id"]:
            return None
        if self.procedure not in (PROCEDURE_ENABLE, PROCEDURE_SWITCH):
            return None  # rotate keeps the role and says so; verify reports the plan
        old_arn = current["iam_role_arn"] or "(no IAM role)"
        if not self.params.get("replace_iam_role"):
            self.plan.problem(
                self.var.iam_role_name,
                f"project {self.project_id} reaches its key through IAM role {old_arn} (Atlas role {current['role_id']}), not {self.iam_role_arn}; "
                "moving it to another role is refused unless asked for, since Atlas restores each snapshot with the role recorded when it was taken",
                f"leave {self.var.iam_role_name} unset to keep the role the project uses, or set {self.var.replace_iam_role}: true to move it "
                "(the replaced role stays authorized as a retained role until cmk.atlas.rotate retires it)",
            )
            return None
        if current["iam_role_arn"] and len(role_tag_value(current["iam_role_arn"])) > MAX_TAG_VALUE:
            self.plan.problem(self.var.iam_role_name, f"the ARN of the replaced role {old_arn} is too long to be recorded in an IAM tag")
            return None
        return {"role_id": current["role_id"], "iam_role_arn": current["iam_role_arn"]}

    def _key_target(self):
        """(key ARN, AWS region) Atlas is to use; placeholders where the key could not be read."""
        ref, region = self._key_reference()
        if ref is None:
            return None, None
        if self.ref is not None and self.ref.region and self.params["key_region"] and self.ref.region != self.params["key_region"]:
            self.plan.problem(
                self.var.region,
                f"it is {self.params['key_region']}, but {self.var.kms_key} {self.ref.arn} is in region {self.ref.region}; Atlas would not find the key",
                f"leave {self.var.region} unset (a key ARN names its own region) or set it to {self.ref.region}",
            )
        if self.key is not None:
            for problem in key_problems(self.key):
                self.plan.problem(f"KMS key {self.key['key_arn']}", problem.message, "enable the key, cancel its deletion, or choose another key")
            return self.key["key_arn"], self.key["region"]
        return ref.arn or UNKNOWN, ref.region or region

    def _desired_iam_role(self, atlas_role, key_arn):
        desired = desired_role(
            {
                "name": self.role_name,
                "path": self.role_path,
                "description": self.params["iam_role_description"],
                "tags": self.user_tags,
                "atlas_project_id": self.project_id,
                "atlas_role_id": atlas_role["role_id"],
                "atlas_aws_account_arn": atlas_role["atlas_aws_account_arn"],
                "external_id": atlas_role["external_id"],
                "kms_key_arns": self._policy_key_arns(key_arn),
                "source_ips": self.source_ips,
                "policy_name": self.policy_name,
            }
        )
        current = self.iam_role
        ownership = getattr(self, "ownership", None)
        if current is not None and ownership is not None and ownership.kind in ("trusts_project", "foreign"):
            desired["tags"][ADOPTED_TAG] = "true"  # made elsewhere: cmk.atlas.disable leaves the role itself
        replaced = getattr(self, "replaced_role", None)
        if replaced and replaced["iam_role_arn"]:
            tag = retained_role_tag(replaced["role_id"])
            if not (current or {}).get("tags", {}).get(tag):
                desired["tags"][tag] = role_tag_value(replaced["iam_role_arn"])
        if current is not None:
            # What is already right stays as it is (a role made by hand, by Terraform or in the UI keeps its documents).
            if trust_admits_only(current["trust_policy"], atlas_role["atlas_aws_account_arn"], atlas_role["external_id"]):
                desired["trust_policy"] = current["trust_policy"]
            if (
                desired["inline_policy"] is not None
                and self.policy_name not in current["inline_policies"]
                and not self.source_ips
                and self._granted_by_current_policies(self._policy_key_arns(key_arn))
            ):
                desired["inline_policy"] = None
        return desired

    def _granted_by_current_policies(self, key_arns):
        """Whether the role's inline policies as they are already allow Atlas's KMS actions on every key in ``key_arns``."""
        if not key_arns or any(is_unknown(arn) for arn in key_arns):
            return False
        documents = Documents([(f"inline policy {name}", doc) for name, doc in sorted(self.iam_role["inline_policies"].items())], None, None)
        # No key policy given: only whether the identity policies allow it is judged.
        return all(evaluate_access(self.iam_role["arn"], arn, arn.split(":")[3], documents).role_ok is True for arn in key_arns)

    def _policy_key_arns(self, key_arn):
        """The keys the role's inline policy grants: the project's, and the retained keys its tags record (cmk.atlas.rotate)."""
        if not key_arn:
            return []
        return [key_arn] + [arn for arn in retained_key_arns((self.iam_role or {}).get("tags")) if arn != key_arn]

    def _plan_key_policy(self):
        """(key policy after, statement or None, needed or None)."""
        if self.key is None:
            if getattr(self, "foreign_key", None):
                principals = validate_key_principals([self.iam_role_arn], self.var.iam_role_name)
                self.plan.warnings.append(unread_key_policy_warning(*self.foreign_key, principals, self.var.key_owner_assume_role_arn))
            return None, None, None
        if self.key_policy is False:
            return None, None, None
        principals = validate_key_principals([self.iam_role_arn], self.var.iam_role_name)
        sid = default_key_access_sid(principals)
        key_policy_ips = self.source_ips if self.params["key_policy_source_ips"] else None
        try:
            needed, statement, step = plan_key_access(self.key_policy, sid, principals, self.key, key_policy_ips, only_if_needed=True)
        except (KmsKeyError, ModuleInputError) as error:
            self.plan.problem(f"key policy of {self.key['key_arn']}", str(error))
            return self.key_policy, None, None
        if step.changed:
            self.plan.step(f"put key-policy statement {sid} on {self.key['key_arn']}", lambda: put_key_policy(self.key_connection, self.key, step.after))
        return step.after, statement, needed

    def _plan_encryption(self, key_arn, region):
        role_account = parse_role_arn(self.iam_role_arn, "iam_role_arn").account
        current = self.current
        # Atlas keeps a switched project's key reference as stored; enable gives the ARN (needed across accounts).
        key = key_arn if self.ref is not None or current["customer_master_key_id"] is None else current["customer_master_key_id"]
        desired = Desired(
            key=key,
            region=to_atlas_region(region) if region else None,
            role_id=self.atlas_role["role_id"],
            require_private_networking=self.networking.plan.change,
        )
        try:
            encryption = plan_encryption(
                current, desired, confirm_switch=True, check_mode=self.check_mode, principal_account=role_account, role=self.authorized_role
            )
        except ModuleInputError as error:
            self.plan.problem(f"encryption at rest of project {self.project_id}", str(error))
            return None
        if self.procedure == PROCEDURE_ENABLE and current["access_method"] == ACCESS_ROLE and "customerMasterKeyID" in encryption.body:
            self.plan.problem(
                self.var.kms_key,
                f"project {self.project_id} already encrypts at rest with key {current['customer_master_key_id']}; enable does not move it to {key}",
                "rotate to the new key with cmk.atlas.rotate, which keeps the old key reachable for the snapshots taken under it, or keep the current key",
            )
        self.previous_access_key = current["access_key_id"] if encryption.switch else None
        wanted = self.params["enabled_for_search_nodes"]
        # Unset: never sent, the current value stays. A change reprovisions search nodes and rebuilds their indexes.
        self.search_nodes_change = wanted if wanted is not None and wanted != bool(self.search_nodes) else None
        if self.search_nodes_change is not None:
            self.plan.warnings.append(
                f"Project {self.project_id}: enabledForSearchNodes goes from {bool(self.search_nodes)} to {wanted}; "
                "Atlas reprovisions the project's search nodes and rebuilds their indexes"
            )
        patch = bool(encryption.body or self.search_nodes_change is not None)
        # Private networking turned on: the endpoints follow the PATCH, and Atlas is waited for valid once they are ACTIVE.
        endpoint_steps = self.networking.after_patch
        if patch:
            what = "switch" if encryption.switch else "set"
            fields = sorted(encryption.body) + (["enabledForSearchNodes"] if self.search_nodes_change is not None else [])
            implied = ""
            if self.networking.plan.implied and "requirePrivateNetworking" in encryption.body:
                implied = f", implied by {self.var.private_endpoint_regions}"
            wait = "" if endpoint_steps else " and wait for valid"
            self.plan.step(f"{what} encryption at rest of project {self.project_id} ({', '.join(fields)}{implied}){wait}", self._apply_encryption)
        for description, apply in endpoint_steps:
            self.plan.step(description, apply)
        if patch and endpoint_steps:
            self.plan.step(f"wait until Atlas reports the key of project {self.project_id} valid", self._confirm_valid)
        elif not patch and current["enabled"] and any(step.description not in self.tag_only_steps for step in self.plan.steps):
            # The settings stay, the access under them changes: Atlas must still report the key valid afterwards.
            self.plan.step(f"confirm that Atlas reports the key of project {self.project_id} valid", self._confirm_valid)
        if encryption.switch and self.params["deactivate_previous_access_key"]:
            self.plan.step(f"deactivate the previous access key {current['access_key_id']}", self._deactivate_previous_access_key)
        return encryption

    def _plan_clusters(self):
        names = self.params["clusters"]
        if names is None and not self.params["all_clusters"]:
            return None
        if names and self.params["all_clusters"]:
            self.plan.problem(self.var.clusters, "it names clusters and asks for all clusters at once", "give either the list or all")
            return None
        try:
            cluster_plan = plan_provider(self.clusters, "AWS", None if self.params["all_clusters"] else names, PAUSED_FAIL, self.project_id)
        except ModuleInputError as error:
            self.plan.problem(self.var.clusters, str(error))
            return None
        if cluster_plan.to_change or cluster_plan.to_wait:
            self.plan.step(
                f"set encryptionAtRestProvider AWS on {', '.join(cluster_plan.to_change or cluster_plan.to_wait)} and wait for IDLE", self._apply_clusters
            )
        return cluster_plan

    def _judge_access(self, key_arn, region):
        """Judge the planned trust and policies the way Atlas will meet them."""
        plan = self.plan
        role = self.authorized_role
        if not is_unknown(role.get("external_id")) and not trust_policy_allows(
            self.iam_after["trust_policy"], role["atlas_aws_account_arn"], role["external_id"]
        ):
            plan.problem(
                self.var.iam_role_name, f"the planned trust policy of {self.iam_role_arn} does not let Atlas assume it with external id {role['external_id']}"
            )
        if self.key is None or self.key_policy is False or key_arn is None:
            return
        documents = Documents([(f"inline policy {name}", doc) for name, doc in sorted(self.iam_after["inline_policies"].items())], None, self.key_policy_after)
        sources = None
        if needs_source_addresses(documents):
            sources = normalize_source_ips(self._control_plane_addresses() + self.required_source_ips)
        private = self.networking.plan.after
        report = evaluate_access(self.iam_role_arn, key_arn, region, documents, sources, private)
        where = f"the planned policies of {self.iam_role_arn}"
        for text in report.role_problems:
            if report.source_ip_problems and "(see source_ip)" in text:
                continue  # the same finding as a source-IP problem below, which names the list and its fix
            plan.problem(where, text, f"the inline policy {self.policy_name} must allow {ACCESS_ACTIONS_TEXT} on {key_arn}; remove any Deny that matches")
        for text in report.key_problems:
            plan.problem(f"the planned key policy of {key_arn}", text, "remove the Deny that matches, or let the collection add its statement")
        for text in report.source_ip_problems:
            plan.problem(
                self.var.source_ips,
                text,
                f"include Atlas's control-plane outbound addresses ({', '.join(sources or [])}) and the cluster nodes' public addresses "
                "(cmk_atlas_manage_source_ips: true in the playbooks, or cmk.atlas.source_ip_info, collects them), or leave the list unset",
            )
        if report.unchecked:
            plan.warnings.append(f"Not decided from the policies of {self.iam_role_arn}: {'; '.join(report.unchecked)}")
        if self.iam_role is not None and key_arn:
            for text in extra_permissions(self.iam_after, self.policy_name, self._policy_key_arns(key_arn)):
                plan.warnings.append(f"IAM role {self.role_name} may do more than Atlas needs: {text}")

    def _control_plane_addresses(self):
        if not hasattr(self, "_addresses"):
            self._addresses = self.encryption.control_plane_addresses()
        return self._addresses

    def _diffs(self, key_arn):
        header = f"Atlas cloud provider access role (project {self.project_id})"
        self.plan.diffs.append(diff_of(self.selection.before, self.authorized_role, header, header))
        header = f"IAM role {self.role_name}"
        self.plan.diffs.append(diff_of(role_diff_view(self.iam_role, self.policy_name), role_diff_view(self.iam_after, self.policy_name), header, header))
        if self.key is not None and self.key_policy not in (None, False):
            header = f"key policy of {key_arn}"
            self.plan.diffs.append(diff_of(normalize_policy(self.key_policy), normalize_policy(self.key_policy_after), header, header))
        if self.encryption_plan is not None:
            header = f"encryption at rest (project {self.project_id})"
            before, after = diff_view(self.encryption_plan.before), diff_view(self.encryption_plan.after)
            before["enabled_for_search_nodes"] = bool(self.search_nodes)
            after["enabled_for_search_nodes"] = bool(self.search_nodes) if self.search_nodes_change is None else self.search_nodes_change
            if self.search_nodes_change is not None:
                header += ": enabledForSearchNodes changes, so Atlas reprovisions search nodes and rebuilds their indexes"
            self.plan.diffs.append(diff_of(before, after, header, header))
        endpoints_diff = self.networking.diff(self.project_id)
        if endpoints_diff is not None:
            self.plan.diffs.append(endpoints_diff)
        if self.cluster_plan is not None:
            results = cluster_results(self.cluster_plan, "AWS")
            header = f"clusters' encryptionAtRestProvider (project {self.project_id})"
            before = {entry["name"]: entry["provider_before"] for entry in results}
            after = {entry["name"]: entry["provider"] for entry in results}
            self.plan.diffs.append(diff_of(before, after, header, header))

    # -- 3. apply (in the order the services need) -----------------------------------------------

    def _create_atlas_role(self):
        self.atlas_role = self.atlas_roles.create()
        self.created_atlas_role = self.atlas_role

    def _apply_iam_role(self):
        # Documents are built again with what earlier steps made (the new Atlas role's external id).
        actions, after = plan_iam_role(self.iam_role, self._desired_iam_role(self.atlas_role, self.key_arn))
        try:
            created = apply_actions(self._aws(), actions)
        except RoleAppearedError:
            # Another run created the role meanwhile: read it, and change it only if it is this project's.
            self.iam_role = read_role(self._aws(), self.role_name)
            self.roles = self.atlas_roles.roles()
            external_ids = [role["external_id"] for role in self.roles if role.get("external_id")]
            ownership = role_ownership(self.iam_role, self.project_id, self.atlas_role["atlas_aws_account_arn"], external_ids)
            if ownership.kind not in ("ours", "trusts_project"):
                raise
            self._adopt_concurrent_atlas_role(self._trusted_external_id(ownership))
            actions, after = plan_iam_role(self.iam_role, self._desired_iam_role(self.atlas_role, self.key_arn))
            created = apply_actions(self._aws(), actions)
        if created is not None:
            after["arn"], after["role_id"] = created["Arn"], created["RoleId"]
            self.iam_role_arn = created["Arn"]
        self.iam_after = after

    def _trusted_external_id(self, ownership):
        """The external id of the project's Atlas role that the IAM role's trust names, for a role that is this project's."""
        if ownership is None or ownership.kind not in ("ours", "trusts_project"):
            return None
        if ownership.external_id is not None:
            return ownership.external_id
        # Paired by tag: the Atlas role is the one whose external id the trust names.
        trust = self.iam_role["trust_policy"]
        return next((role["external_id"] for role in self.roles if trust_policy_allows(trust, role["atlas_aws_account_arn"], role["external_id"])), None)

    def _adopt_concurrent_atlas_role(self, external_id):
        """Use the Atlas role the other run's trust names; remove the one this run created and no longer needs."""
        other = next((role for role in self.roles if external_id and role["external_id"] == external_id), None)
        if other is None or other["role_id"] == self.atlas_role["role_id"]:
            return
        if self.created_atlas_role is not None and self.created_atlas_role["role_id"] == self.atlas_role["role_id"]:
            self.atlas_roles.deauthorize(self.created_atlas_role["role_id"])
            self.created_atlas_role = None
        self.atlas_role = self.authorized_role = other

    def _authorize(self):
        self.authorized_role = self.atlas_roles.authorize(self.atlas_role, self.iam_role_arn, self.params["authorize_timeout"])

    def _apply_encryption(self):
        body = dict(self.encryption_plan.body)
        if "roleId" in body:
            body["roleId"] = self.authorized_role["role_id"]
        aws_kms = self.encryption.update(body, self.params["authorize_timeout"], enabled_for_search_nodes=self.search_nodes_change)
        if not self.networking.after_patch:
            self._wait_valid(aws_kms or None)

    def _confirm_valid(self):
        self._wait_valid(None)

    def _wait_valid(self, first):
        aws_kms = self.encryption.wait_valid(self.params["valid_timeout"], first=first)
        self.current_after = normalize_encryption(aws_kms, [self.authorized_role])
        if aws_kms.get("valid") is not True:
            raise AtlasError(
                f"Atlas does not report the key of project {self.project_id} valid after {self.params['valid_timeout']} s (valid_timeout). "
                "cmk.atlas.verify lists what Atlas cannot do with the key"
            )

    def _deactivate_previous_access_key(self):
        checks = []
        user = Preflight(self._aws()).previous_access_key(self.previous_access_key, checks)
        if user is None:
            raise ModuleInputError(checks[-1]["message"] + ". " + (checks[-1]["fix"] or ""))
        deactivate_access_key(self._aws(), user, self.previous_access_key)
        self.deactivated_access_key = self.previous_access_key

    def _record_replacement(self):
        moment = record_time()
        tags = [{"Key": role.tag, "Value": role_tag_value(role.role_arn, moment)} for role in self.roles_to_record]
        self._aws().call("iam", "tag_role", RoleName=self.role_name, Tags=tags)
        self.replaced_at = format_time(moment)

    def _apply_clusters(self):
        self.clusters_after = self.clusters_api.apply(self.cluster_plan, "AWS", wait_timeout=self.params["cluster_timeout"])

    # -- the run --------------------------------------------------------------------------------

    def run(self):
        self.created_atlas_role = None
        self.deactivated_access_key = None
        self.clusters_after = None
        self.current_after = None
        self.read()
        plan = self.plan_all()
        done = execute(plan, f"cmk.atlas.{self.procedure} of project {self.project_id}", self.check_mode)
        return Outcome(plan.changed, self._result(done), plan.diffs, plan.warnings)

    def _retained_roles_result(self):
        """The roles the project moved away from, kept authorized for restores (with the time recorded, once it is)."""
        recorded_at = getattr(self, "replaced_at", None)
        pending = {role.role_arn for role in getattr(self, "roles_to_record", [])}
        roles = retained_roles((getattr(self, "iam_after", None) or self.iam_role or {}).get("tags"))
        return [
            {
                "iam_role_arn": role.role_arn,
                "atlas_role_id": role.atlas_role_id,
                "replaced": format_time(role.rotated_out) if role.rotated_out else (recorded_at if role.role_arn in pending else None),
            }
            for role in roles
        ]

    def _result(self, changes):
        key_arn, region = self.key_arn, self.key_region
        encryption = self.current_after or (self.encryption_plan.after if self.encryption_plan is not None else self.current)
        clusters = {cluster["name"]: cluster["provider"] for cluster in self.clusters}
        if self.cluster_plan is not None:
            results = cluster_results(self.cluster_plan, "AWS", self.clusters_after)
            clusters.update({entry["name"]: entry["provider"] for entry in results})
        role = self.authorized_role
        return {
            "project_id": self.project_id,
            "procedure": self.procedure,
            "changes": changes,
            "role_id": role["role_id"],
            "reused_by": self.selection.reused_by,
            "external_id": role["external_id"],
            "atlas_aws_account_arn": role["atlas_aws_account_arn"],
            "created_atlas_role": self.created_atlas_role is not None or (self.check_mode and self.selection.create),
            "iam_role_arn": self.iam_role_arn,
            "iam_role_name": self.role_name,
            "adopted_iam_role": self.adopted_role_arn is not None,
            "retained_roles": self._retained_roles_result(),
            "policy_name": self.policy_name,
            "key_arn": key_arn,
            "key_region": region,
            "key_state": self.key["key_state"] if self.key is not None else None,
            "key_policy_statement": self.key_statement,
            "key_policy_statement_needed": self.key_statement_needed,
            "source_ips": self.source_ips,
            "switched": bool(self.encryption_plan is not None and self.encryption_plan.switch),
            "deactivated_access_key": self.deactivated_access_key
            or (self.previous_access_key if self.check_mode and self.params["deactivate_previous_access_key"] else None),
            "encryption_at_rest_before": self.current,
            "encryption_at_rest": encryption,
            "enabled_for_search_nodes": bool(self.search_nodes) if self.search_nodes_change is None else self.search_nodes_change,
            "require_private_networking": self.networking.plan.after,
            "private_endpoints": self.networking.results(applied=not self.check_mode),
            "clusters": clusters,
        }
