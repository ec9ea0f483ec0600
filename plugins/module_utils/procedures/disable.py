# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The disable procedure on the engine: read, plan and judge, apply.

Atlas refuses to disable a project's encryption at rest while any cluster uses the key or any
encryption-at-rest private endpoint exists, and it needs the key to be usable while it does, so the
order is fixed: every cluster that uses the key goes to ``encryptionAtRestProvider: NONE`` (waited for
until IDLE), the private endpoints are deleted (waited for until gone), the project's encryption at rest
is disabled, and only then, with ``remove_access``, what the collection made goes: its key-policy
statement, the IAM role paired with this project, and the Atlas roles no feature uses any more.

It needs ``confirm_disable`` (Atlas re-syncs every cluster and rebuilds search indexes) and is refused
while the project's backup compliance policy requires encryption at rest. Every refusal comes before
the first write.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError, diff_of
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import ENCRYPTION_AT_REST, describe_usages, feature_types, in_use
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.clusters import NONE, PAUSED_FAIL, cluster_results, clusters_using, list_clusters, plan_provider
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import ACCESS_NONE, diff_view
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import normalize as normalize_encryption
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import plan_absent as plan_encryption_absent
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.private_endpoints import PrivateEndpoints, describe, plan_removal
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError, parse_kms_key_ref
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import (
    ADOPTED_TAG,
    COLLECTION_TAG_PREFIX,
    Action,
    RoleConflictError,
    apply_actions,
    predicted_arn,
    read_attachments,
    read_role,
    role_ownership,
    same_role_arn,
    tag_value,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import diff_view as role_diff_view
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import plan_absent as plan_iam_role_absent
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import (
    KmsKeyError,
    has_statement,
    key_access_sid,
    key_problems,
    key_ref,
    plan_key_policy_statement,
    put_key_policy,
)
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import normalize_policy
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.enable import Outcome, RoleBasedAccess
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.engine import execute

PROCEDURE_DISABLE = "disable"
CONSEQUENCES = (
    "Disabling encryption at rest makes Atlas re-sync every cluster of the project that uses the key (each node is "
    "rebuilt from its data, one at a time) and rebuild the search indexes of its search nodes"
)


def compliance_requires_encryption(policy):
    """Whether a backup compliance policy (as read; None or {} for none) requires encryption at rest."""
    return bool((policy or {}).get("encryptionAtRestEnabled"))


def inline_key_arns(iam_role, policy_name):
    """The key ARNs the role's inline KMS policy grants, in order (how a re-run finds the key once Atlas forgot it)."""
    document = ((iam_role or {}).get("inline_policies") or {}).get(policy_name) or {}
    statements = document.get("Statement", [])
    found = []
    for statement in statements if isinstance(statements, list) else [statements]:
        resources = statement.get("Resource", []) if isinstance(statement, dict) else []
        for resource in resources if isinstance(resources, list) else [resources]:
            try:
                if parse_kms_key_ref(resource).kind == "key_arn" and resource not in found:
                    found.append(resource)
            except (ArnError, TypeError):
                continue
    return found


class Disable(RoleBasedAccess):
    """One run of disable. Same connections, waits and key reading as enable (RoleBasedAccess); its own plan."""

    def __init__(self, params, atlas, aws, key_owner, check_mode=False, sleep=None, clock=None, log=None):
        super().__init__(params, atlas, aws, key_owner, check_mode=check_mode, sleep=sleep, clock=clock, log=log)
        self.remove_access = bool(params.get("remove_access"))
        self.endpoints_api = PrivateEndpoints(atlas, self.project_id, sleep=sleep, clock=clock, log=log)

    # -- 1. read ---------------------------------------------------------------------------------

    def read(self):
        """Every resource the procedure touches, once; the project's settings first (a wrong project id stops the run
        before any other call). AWS is read only with ``remove_access`` or when the project has a key to judge."""
        settings = self.encryption.settings()
        self.compliance_policy = self._read_compliance_policy()
        self.roles = self.atlas_roles.roles()
        self.current = normalize_encryption(settings.get("awsKms"), self.roles)
        self.search_nodes = settings.get("enabledForSearchNodes")
        self.clusters = list_clusters(self._atlas, self.project_id)
        self.endpoints = self.endpoints_api.list()
        self.iam_role = self.iam_role_arn = self.attachments = None
        if self.role_name is None:
            # The role the project uses now, which remove_access needs (a re-run after the disable needs the name).
            self._adopt_role_in_use(settings, self.roles, required=self.remove_access)
        if self.remove_access:
            aws = self._aws()
            self.iam_role = read_role(aws, self.role_name)
            self._check_adopted_role()
            self.iam_role_arn = self.iam_role["arn"] if self.iam_role is not None else predicted_arn(aws, self.role_name, self.role_path)
            if self.iam_role is not None:
                self.attachments = read_attachments(aws, self.role_name, self.iam_role["managed_policies"])
        self.key_connection, self.key, self.key_policy = self._read_key()

    def _read_compliance_policy(self):
        """The project's backup compliance policy, or None: Atlas answers 404 (or nothing) where there is none."""
        try:
            return self._atlas.call("getGroupBackupCompliancePolicy", groupId=self.project_id) or None
        except AtlasApiError as error:
            if error.status == 404:
                return None
            raise

    def _key_reference(self):
        """The key given, else the project's current one, else (a re-run after the disable) the one the IAM role's
        inline policy grants."""
        ref, region = super()._key_reference()
        if ref is not None or not self.remove_access:
            return ref, region
        arns = inline_key_arns(self.iam_role, self.policy_name)
        if not arns:
            return None, None
        return key_ref(arns[0], self.var.kms_key), None

    # -- 2. plan and judge ----------------------------------------------------------------------

    def plan_all(self):
        plan = self.plan
        self.key_arn = self.key["key_arn"] if self.key is not None else None
        self.cluster_plan = self._plan_clusters()
        self.endpoint_plan = self._plan_endpoints()
        self.encryption_plan = self._plan_disable()
        self.removed_statement = self.removed_iam_role = None
        self.atlas_roles_to_remove = []
        if self.remove_access:
            self._plan_remove_access()
        if plan.steps:
            self._judge_confirmation()
            self._judge_compliance()
        return plan

    def _plan_clusters(self):
        using = clusters_using(self.clusters)
        if not using:
            return None
        try:
            cluster_plan = plan_provider(self.clusters, NONE, using, PAUSED_FAIL, self.project_id)
        except ModuleInputError as error:
            self.plan.problem(f"clusters of project {self.project_id}", str(error), "resume the paused clusters, then run again")
            return None
        if cluster_plan.to_change:
            self.plan.step(f"set encryptionAtRestProvider NONE on {', '.join(cluster_plan.to_change)} and wait for IDLE", self._apply_clusters)
        results = cluster_results(cluster_plan, NONE)
        header = f"clusters' encryptionAtRestProvider (project {self.project_id})"
        before = {entry["name"]: entry["provider_before"] for entry in results}
        after = {entry["name"]: entry["provider"] for entry in results}
        self.plan.diffs.append(diff_of(before, after, header, header))
        return cluster_plan

    def _plan_endpoints(self):
        if not self.endpoints:
            return None
        endpoint_plan = plan_removal(self.endpoints)
        listed = ", ".join(describe(endpoint) for endpoint in endpoint_plan.to_wait)
        what = "delete" if endpoint_plan.to_delete else "wait for the deletion of"
        self.plan.step(f"{what} encryption-at-rest private endpoints {listed} and wait until they are gone", self._apply_endpoints)
        header = f"encryption-at-rest private endpoints (project {self.project_id})"
        self.plan.diffs.append(diff_of({"private_endpoints": [describe(e) for e in self.endpoints]}, {"private_endpoints": []}, header, header))
        return endpoint_plan

    def _plan_disable(self):
        current = self.current
        encryption = plan_encryption_absent(current, [])
        if not encryption.body:
            return encryption
        if current["valid"] is not True:
            self.plan.problem(
                f"encryption at rest of project {self.project_id}",
                f"Atlas reports its key {current['customer_master_key_id']} not valid, and Atlas disables encryption at rest only while it can still "
                "use the key (it decrypts every cluster's data while it re-syncs)",
                "make the key usable again (cmk.atlas.verify lists what Atlas cannot do with it), then run again",
            )
        if self.key is not None:
            for problem in key_problems(self.key):
                self.plan.problem(
                    f"KMS key {self.key['key_arn']}", problem.message + "; Atlas needs the key while it disables encryption at rest", "enable the key first"
                )
        self.plan.step(f"disable encryption at rest of project {self.project_id} (awsKms.enabled false)", self._apply_disable)
        header = f"encryption at rest (project {self.project_id})"
        self.plan.diffs.append(diff_of(diff_view(encryption.before), diff_view(encryption.after), header, header))
        return encryption

    def _plan_remove_access(self):
        plan = self.plan
        external_ids = [role["external_id"] for role in self.roles if role.get("external_id")]
        atlas_account = next((role["atlas_aws_account_arn"] for role in self.roles if role.get("atlas_aws_account_arn")), None)
        self.ownership = ownership = role_ownership(self.iam_role, self.project_id, atlas_account, external_ids)
        ours = ownership.kind in ("ours", "absent")
        if not ours:
            plan.warnings.append(f"{ownership.message}: the collection did not make it for this project, so it and its key-policy statement stay")
        # The Atlas roles authorized for the IAM role: after the disable, encryption at rest no longer uses them.
        authorized = [role for role in self.roles if role.get("iam_assumed_role_arn") and same_role_arn(role["iam_assumed_role_arn"], self.iam_role_arn)]
        busy = [role for role in authorized if [feature for feature in feature_types(role) if feature != ENCRYPTION_AT_REST]]
        for role in busy:
            plan.warnings.append(
                f"Atlas role {role['role_id']} of project {self.project_id} is used by {describe_usages(role)}: it stays, and so do IAM role "
                f"{self.role_name} and its key-policy statement, which that feature may need"
            )
        if busy:
            ours = False
        if ours:
            self._plan_key_statement()
            self._plan_iam_role()
        self.atlas_roles_to_remove = [role for role in authorized if role not in busy]
        for role in self.atlas_roles_to_remove:
            plan.step(f"deauthorize Atlas role {role['role_id']} (for {self.iam_role_arn}) once no feature uses it", self._deauthorizer(role))
        if self.atlas_roles_to_remove:
            header = f"Atlas cloud provider access roles (project {self.project_id})"
            before = {role["role_id"]: role.get("iam_assumed_role_arn") for role in authorized}
            after = {role["role_id"]: role.get("iam_assumed_role_arn") for role in busy}
            plan.diffs.append(diff_of(before, after, header, header))

    def _plan_key_statement(self):
        if self.key is None:
            if getattr(self, "foreign_key", None):
                arn, account, caller = self.foreign_key
                self.plan.warnings.append(
                    f"The key policy of {arn} (account {account}) cannot be read with the credentials of account {caller}: remove its statement "
                    f"{key_access_sid(self.iam_role_arn)} for {self.iam_role_arn} there, or give {self.var.key_owner_assume_role_arn}"
                )
            return
        if self.key_policy in (None, False):
            return
        sid = key_access_sid(self.iam_role_arn)
        if not has_statement(self.key_policy, sid):
            return
        try:
            statement_plan = plan_key_policy_statement(self.key_policy, sid, None, self.key["key_arn"], principals=[self.iam_role_arn])
        except KmsKeyError as error:
            self.plan.problem(f"key policy of {self.key['key_arn']}", str(error), f"remove statement {sid} by hand, or leave {self.var.remove_access} false")
            return
        if not statement_plan.changed:
            return
        self.removed_statement = sid
        after = statement_plan.after
        self.plan.step(f"remove key-policy statement {sid} from {self.key['key_arn']}", lambda: put_key_policy(self.key_connection, self.key, after))
        header = f"key policy of {self.key['key_arn']}"
        self.plan.diffs.append(diff_of(normalize_policy(self.key_policy), normalize_policy(after), header, header))

    def _plan_iam_role(self):
        if self.iam_role is None:
            return
        if tag_value(self.iam_role["tags"], ADOPTED_TAG) is not None:
            self._plan_adopted_iam_role()
            return
        try:
            actions = plan_iam_role_absent(self.iam_role, self.attachments, purge_policies=False)
        except RoleConflictError as error:
            self.plan.problem(self.var.iam_role_name, str(error), f"detach what is not the collection's, or leave {self.var.remove_access} false")
            return
        self.removed_iam_role = self.iam_role_arn
        self.plan.step(f"delete IAM role {self.role_name} ({'; '.join(action.summary for action in actions)})", lambda: apply_actions(self._aws(), actions))
        header = f"IAM role {self.role_name}"
        self.plan.diffs.append(diff_of(role_diff_view(self.iam_role, self.policy_name), None, header, header))

    def _plan_adopted_iam_role(self):
        """A role the collection took over (made by hand, by Terraform, in the UI) stays: only what the collection added
        goes, its inline policy and its tags."""
        name = self.role_name
        actions = []
        after = dict(self.iam_role, inline_policies=dict(self.iam_role["inline_policies"]), tags=dict(self.iam_role["tags"]))
        if self.policy_name in after["inline_policies"]:
            request = {"RoleName": name, "PolicyName": self.policy_name}
            actions.append(Action("delete_role_policy", request, f"delete inline policy {self.policy_name} of {name}"))
            del after["inline_policies"][self.policy_name]
        ours = sorted(key for key in after["tags"] if key.lower().startswith(COLLECTION_TAG_PREFIX))
        if ours:
            actions.append(Action("untag_role", {"RoleName": name, "TagKeys": ours}, f"remove tags {', '.join(ours)} from {name}"))
            after["tags"] = {key: value for key, value in after["tags"].items() if key not in ours}
        if not actions:
            return
        self.plan.step(
            f"remove what the collection added to IAM role {name}, which it adopted and leaves in place ({'; '.join(a.summary for a in actions)})",
            lambda: apply_actions(self._aws(), actions),
        )
        header = f"IAM role {name}"
        self.plan.diffs.append(diff_of(role_diff_view(self.iam_role, self.policy_name), role_diff_view(after, self.policy_name), header, header))

    def _judge_confirmation(self):
        if self.params.get("confirm_disable"):
            return
        message = f"{CONSEQUENCES}; the project's data is then encrypted with Atlas's keys only."
        if self.check_mode:
            self.plan.warnings.append(f"{message} The real run stops before any write unless {self.var.confirm_disable} is true.")
        else:
            self.plan.problem(f"project {self.project_id}", message, f"preview the disable with --check --diff, then set {self.var.confirm_disable}: true")

    def _judge_compliance(self):
        if not compliance_requires_encryption(self.compliance_policy):
            return
        self.plan.problem(
            f"project {self.project_id}",
            "its backup compliance policy requires encryption at rest (encryptionAtRestEnabled true), so Atlas keeps it on",
            "ask the compliance officer named in the policy "
            f"({self.compliance_policy.get('authorizedEmail') or 'see Project Settings, Backup Compliance Policy'}) to change the policy; MongoDB support "
            "must approve disabling a protected setting",
        )

    # -- 3. apply (in the order Atlas needs) -----------------------------------------------------

    def _apply_clusters(self):
        self.clusters_after = self.clusters_api.apply(self.cluster_plan, NONE, wait_timeout=self.params["cluster_timeout"])

    def _apply_endpoints(self):
        self.endpoints_api.remove(self.endpoint_plan, self.params["endpoint_timeout"], self.var.endpoint_timeout)

    def _apply_disable(self):
        self.encryption.update(self.encryption_plan.body, self.params["authorize_timeout"])
        self.current_after = self.encryption_plan.after

    def _deauthorizer(self, planned):
        def deauthorize():
            # Read after the disable: only a role no feature uses is deauthorized.
            role = next((role for role in self.atlas_roles.roles() if role["role_id"] == planned["role_id"]), None)
            if role is None:
                return
            if in_use(role):
                self.plan.warnings.append(f"Atlas role {role['role_id']} is still used by {describe_usages(role)} after the disable: it stays")
                self.kept_atlas_roles.append(role["role_id"])
                return
            self.atlas_roles.deauthorize(role["role_id"])
            self.deauthorized.append(role["role_id"])

        return deauthorize

    # -- the run --------------------------------------------------------------------------------

    def run(self):
        self.clusters_after = None
        self.current_after = None
        self.deauthorized = []
        self.kept_atlas_roles = []
        self.read()
        plan = self.plan_all()
        done = execute(plan, f"cmk.atlas.{PROCEDURE_DISABLE} of project {self.project_id}", self.check_mode)
        return Outcome(plan.changed, self._result(done), plan.diffs, plan.warnings)

    def _result(self, changes):
        clusters = {cluster["name"]: cluster["provider"] for cluster in self.clusters}
        if self.cluster_plan is not None:
            clusters.update({entry["name"]: entry["provider"] for entry in cluster_results(self.cluster_plan, NONE, self.clusters_after)})
        encryption = self.current_after or self.encryption_plan.after
        atlas_roles = [role["role_id"] for role in self.atlas_roles_to_remove] if self.check_mode else list(self.deauthorized)
        return {
            "project_id": self.project_id,
            "procedure": PROCEDURE_DISABLE,
            "changes": changes,
            "encryption_at_rest_before": self.current,
            "encryption_at_rest": encryption,
            "disabled": self.current["access_method"] != ACCESS_NONE and not encryption["enabled"],
            "clusters": clusters,
            "private_endpoints_removed": [endpoint["id"] for endpoint in (self.endpoint_plan.to_wait if self.endpoint_plan else [])],
            "backup_compliance_policy_requires_encryption": compliance_requires_encryption(self.compliance_policy),
            "removed_access": {
                "key_policy_statement": self.removed_statement,
                "key_arn": self.key_arn if self.removed_statement else None,
                "iam_role_arn": self.removed_iam_role,
                "atlas_role_ids": atlas_roles,
            },
            "iam_role_arn": self.iam_role_arn,
            "key_arn": self.key_arn,
        }
