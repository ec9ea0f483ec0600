# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rotate procedure: a role-based project moves to a new key, the old one stays reachable as a retained key.

The plan grants the role the new key first (inline policy with the new, the current and the retained
keys; a key-policy statement on the new key where needed), then gives Atlas the new
``customerMasterKeyID`` (same role, the new key's region) and waits for ``valid``, then records on the
IAM role when the old key was rotated out (``aws/retained_keys.py``). A project whose current key is
already unusable is refused before any write: Atlas does not change the key while it cannot use the
current one.

Retiring a retained key (``retire_keys``) removes it from the role's policy and its record, and is
refused while anything Atlas may restore could need it (``holders``): a snapshot of any cluster (deleted
clusters with retained backups included) taken at or before the second the key was rotated out, and a
cluster with continuous backup whose point-in-time restore window (``pit_window_days``) may reach back
to that second, since its oplog is encrypted with the key of its time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.backups import read_restorable
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import describe_usages, in_use
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import ACCESS_ROLE, same_key
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError, parse_role_arn
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import validate_kms_key_arns
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import KmsKeyError, describe_key, get_key_policy, key_problems, key_ref
from ansible_collections.cmk.atlas.plugins.module_utils.aws.retained_keys import (
    RetainedRole,
    format_time,
    now,
    record_time,
    retained_keys,
    retained_roles,
    retained_tag,
    tag_value,
)
from ansible_collections.cmk.atlas.plugins.module_utils.policy.evaluator import Documents, evaluate_access
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.enable import RoleBasedAccess

DEFAULT_PIT_WINDOW_DAYS = 7


def _cluster_label(cluster_name, deleted):
    return f"cluster {cluster_name}" + (" (deleted, backups retained)" if deleted else "")


def holders(retained, clusters, snapshots, now, pit_window_days=DEFAULT_PIT_WINDOW_DAYS):
    """What Atlas may still restore with the retained key or role ``retained`` (a RetainedKey or RetainedRole), one sentence each.

    - The rotation is not recorded (a rotation that did not finish): everything may need it.
    - A snapshot (not failed) created at or before ``rotated_out``, compared to the second: it was taken
      under the key. One without a creation time counts too.
    - A cluster with continuous backup (``pit_enabled``) while ``now - pit_window_days`` is at or before
      ``rotated_out``: its restore window may reach back to a time whose oplog is under the key.
    """
    rotated_out = retained.rotated_out
    if rotated_out is None:
        if isinstance(retained, RetainedRole):
            return [f"the time the project moved away from role {retained.role_arn} is not recorded yet (tag {retained.tag}): a move did not finish"]
        return [f"the time key {retained.key_arn} was rotated out is not recorded yet (tag {retained.tag}): a rotation did not finish"]
    rotated_out = rotated_out.replace(microsecond=0)
    deleted = {}
    for cluster in clusters:
        deleted[cluster["name"]] = deleted.get(cluster["name"], True) and cluster["deleted"]
    found = []
    for snapshot in sorted(snapshots, key=lambda item: (item["cluster"], item["created_at"] or rotated_out)):
        if snapshot.get("status") == "failed":
            continue
        created = snapshot["created_at"]
        if created is None or created.replace(microsecond=0) <= rotated_out:
            when = format_time(created) if created is not None else "at an unknown time"
            found.append(f"snapshot {snapshot['id']} of {_cluster_label(snapshot['cluster'], deleted.get(snapshot['cluster'], False))}, taken {when}")
    window = datetime.timedelta(days=pit_window_days)
    for cluster in sorted(clusters, key=lambda item: item["name"]):
        if cluster["pit_enabled"] and now - window <= rotated_out:
            found.append(
                f"{_cluster_label(cluster['name'], cluster['deleted'])} has continuous backup: its point-in-time restore window ({pit_window_days} days) "
                f"may reach back before {format_time(rotated_out)} until {format_time(rotated_out + window)}"
            )
    return found


class Rotate(RoleBasedAccess):
    """One run of rotate: enable's plan with the current key kept (retained) and the new one given to Atlas."""

    def __init__(self, params, atlas, aws, key_owner, check_mode=False, sleep=None, clock=None, log=None):
        super().__init__(params, atlas, aws, key_owner, check_mode=check_mode, sleep=sleep, clock=clock, log=log)
        self.retire_option = self.var.retire_keys
        self.window_option = self.var.pit_window_days
        self.retire = validate_kms_key_arns(params.get("retire_keys"), self.retire_option)
        self.retire_roles_option = self.var.retire_roles
        self.retire_role_arns = []
        for value in params.get("retire_roles") or []:
            try:
                self.retire_role_arns.append(parse_role_arn(value, self.retire_roles_option).arn)
            except ArnError as error:
                raise ModuleInputError(f"{error}; nothing was read and nothing was written") from None
        self.pit_window_days = params.get("pit_window_days")
        if self.pit_window_days is None:
            self.pit_window_days = DEFAULT_PIT_WINDOW_DAYS
        if self.pit_window_days < 0:
            raise ModuleInputError(f"{self.window_option} is {self.pit_window_days}; it must be 0 or more days, such as 7 (Atlas's default restore window)")
        self.recorded = []

    # -- 1. read ---------------------------------------------------------------------------------

    def read(self):
        super().read()
        self.retained = retained_keys((self.iam_role or {}).get("tags"))
        self.current_key, self.current_key_policy = self._read_current_key()
        self.retained_roles = retained_roles((self.iam_role or {}).get("tags"))
        self.restorable = read_restorable(self._atlas, self.project_id) if self.retire or self.retire_role_arns else ([], [])

    def _read_current_key(self):
        """(metadata or None, key policy or None) of the key Atlas uses now; problems go to the plan."""
        current = self.current
        if current["access_method"] != ACCESS_ROLE or not current["customer_master_key_id"]:
            return None, None
        ref = key_ref(current["customer_master_key_id"], "the current key")
        connection = self._key_owner() or self._aws()
        region = ref.region or current["aws_region"]
        if region and region != connection.region:
            connection = connection.derive(region=region)
        if ref.account is not None and connection.caller_identity()["Account"] != ref.account:
            return None, None  # another account's key: Atlas's valid flag is the judge
        try:
            metadata = describe_key(connection, ref, option="the current key")
        except KmsKeyError as error:
            self.plan.problem(f"the current key {current['customer_master_key_id']} of project {self.project_id}", str(error))
            return None, None
        try:
            policy = get_key_policy(connection, metadata)
        except AwsError:
            policy = None
        return metadata, policy

    # -- 2. plan and judge ----------------------------------------------------------------------

    def _current_arn(self):
        return self.current_key["key_arn"] if self.current_key is not None else self.current["customer_master_key_id"]

    def _rotating(self, key_arn):
        current = self.current
        if current["access_method"] != ACCESS_ROLE or not key_arn or not current["customer_master_key_id"]:
            return False
        return not same_key(current["customer_master_key_id"], key_arn, region=current["aws_region"])

    def _guard(self):
        current, plan = self.current, self.plan
        if current["access_method"] != ACCESS_ROLE:
            plan.problem(
                f"project {self.project_id}",
                f"it does not reach an AWS KMS key through an IAM role (access: {current['access_method']}); rotate moves a role-based project to a new key",
                "enable it with cmk.atlas.enable, or switch it from its access key with cmk.atlas.switch, first",
            )
        if self.ref is None:
            plan.problem(self.var.kms_key, "it is not set; rotate needs the new key", "give the key id, ARN or alias Atlas should move to")

    def _judge_current_key(self, key_arn):
        """Atlas refuses to change the key while it cannot use the current one: say what is wrong with it."""
        current = self.current
        if not self._rotating(key_arn):
            return
        subject = f"the current key {self._current_arn()} of project {self.project_id}"
        fix = "repair the current key first (enable it, cancel its deletion, grant it to the IAM role again with cmk.atlas.enable), then rotate"
        found = []
        if self.current_key is not None:
            found += [problem.message for problem in key_problems(self.current_key)]
        if current["valid"] is not True:
            detail = ""
            if self.iam_role is not None and self.current_key is not None and self.current_key_policy is not None:
                documents = Documents(
                    [(f"inline policy {name}", doc) for name, doc in sorted(self.iam_role["inline_policies"].items())], None, self.current_key_policy
                )
                report = evaluate_access(self.iam_role_arn, self.current_key["key_arn"], self.current_key["region"], documents)
                texts = report.role_problems + report.key_problems
                if texts:
                    detail = ": " + "; ".join(texts)
            found.append(f"Atlas reports it not valid (the IAM role cannot use it, it is not granted or not usable){detail}")
        if found:
            self.plan.problem(subject, "; ".join(found) + "; Atlas does not change the key while it cannot use the current one", fix)

    def _judge_retire(self, key_arn):
        self.retiring = []
        retained = {key.key_arn: key for key in self.retained}
        clusters, snapshots = self.restorable
        for arn in self.retire:
            if key_arn and same_key(arn, key_arn):
                self.plan.problem(self.retire_option, f"it names {arn}, the key Atlas is to use", f"remove it from {self.retire_option}")
            elif self._rotating(key_arn) and same_key(arn, self._current_arn()):
                self.plan.problem(
                    self.retire_option,
                    f"it names {arn}, the key this run rotates away from; every snapshot taken until now needs it",
                    "retire it in a later run, once nothing Atlas may restore needs it",
                )
            elif arn in retained:
                held = holders(retained[arn], clusters, snapshots, now(), self.pit_window_days)
                if held:
                    self.plan.problem(
                        f"retained key {arn}",
                        "Atlas may still need it to restore: " + "; ".join(held),
                        "keep it until those snapshots expire or are deleted and the restore windows have moved past the rotation, then retire it",
                    )
                else:
                    self.retiring.append(retained[arn])
        self._judge_retire_roles()

    def _judge_retire_roles(self):
        """Retained roles to retire: by the rule of retained keys, and only when no other Atlas feature uses their Atlas role."""
        self.retiring_roles = []
        retained = {role.role_arn: role for role in self.retained_roles}
        atlas_roles = {role["role_id"]: role for role in self.roles}
        clusters, snapshots = self.restorable
        for arn in self.retire_role_arns:
            if arn not in retained:
                continue  # retired already (or never retained): nothing to do
            role = retained[arn]
            held = holders(role, clusters, snapshots, now(), self.pit_window_days)
            atlas_role = atlas_roles.get(role.atlas_role_id)
            if held:
                self.plan.problem(
                    f"retained role {arn}",
                    "Atlas may still need it to restore: " + "; ".join(held),
                    "keep it until those snapshots expire or are deleted and the restore windows have moved past the move, then retire it",
                )
            elif atlas_role is not None and in_use(atlas_role):
                self.plan.problem(
                    f"retained role {arn}",
                    f"its Atlas role {role.atlas_role_id} is still used: {describe_usages(atlas_role)}",
                    "move those features to another role first, then retire it",
                )
            else:
                self.retiring_roles.append((role, atlas_role))

    def plan_all(self):
        self._judge_retire(self._new_key_arn())
        plan = super().plan_all()
        key_arn = self.key_arn
        self._judge_current_key(key_arn)
        if self.encryption_plan is not None and "roleId" in self.encryption_plan.body and self.current["access_method"] == ACCESS_ROLE:
            plan.problem(
                self.var.iam_role_name,
                f"project {self.project_id} uses Atlas role {self.current['role_id']}, not the one of IAM role {self.role_name}; rotate keeps the role",
                "give the IAM role the project uses now",
            )
        for role, atlas_role in self.retiring_roles:
            if atlas_role is not None:
                plan.step(
                    f"deauthorize Atlas role {role.atlas_role_id} (retained role {role.role_arn})",
                    lambda role_id=role.atlas_role_id: self.atlas_roles.deauthorize(role_id),
                )
            plan.step(
                f"remove the record of retained role {role.role_arn} from IAM role {self.role_name}",
                lambda tag=role.tag: self._aws().call("iam", "untag_role", RoleName=self.role_name, TagKeys=[tag]),
            )
        self.recorded = self._to_record(key_arn)
        if self.recorded:
            plan.step(
                f"record on IAM role {self.role_name} when {', '.join(self.recorded)} {'was' if len(self.recorded) == 1 else 'were'} rotated out",
                self._record_rotation,
            )
        return plan

    def _new_key_arn(self):
        if self.key is not None:
            return self.key["key_arn"]
        return self.ref.arn if self.ref is not None else None

    def _to_record(self, key_arn):
        """Keys whose rotation time is to be written after Atlas reports the new key valid."""
        keys = [self._current_arn()] if self._rotating(key_arn) else []
        retiring = {key.key_arn for key in getattr(self, "retiring", [])}
        for key in self.retained:
            if key.rotated_out is None and key.key_arn not in keys and key.key_arn not in retiring and not (key_arn and same_key(key.key_arn, key_arn)):
                keys.append(key.key_arn)
        return keys

    def _policy_key_arns(self, key_arn):
        arns = super()._policy_key_arns(key_arn)
        if self._rotating(key_arn) and self._current_arn() not in arns:
            arns.append(self._current_arn())
        retiring = {key.key_arn for key in getattr(self, "retiring", [])}
        return [arn for arn in arns if arn not in retiring]

    def _desired_iam_role(self, atlas_role, key_arn):
        desired = super()._desired_iam_role(atlas_role, key_arn)
        tags = (self.iam_role or {}).get("tags") or {}
        if self._rotating(key_arn):
            current = self._current_arn()
            tag = retained_tag(current)
            if not tags.get(tag, "").startswith("rotating "):
                desired["tags"][tag] = tag_value(current)
        remove = [key.tag for key in getattr(self, "retiring", [])]
        remove += [key.tag for key in self.retained if key_arn and same_key(key.key_arn, key_arn)]
        desired["remove_tags"] = remove
        return desired

    # -- 3. apply --------------------------------------------------------------------------------

    def _record_rotation(self):
        moment = record_time()
        tags = [{"Key": retained_tag(arn), "Value": tag_value(arn, moment)} for arn in self.recorded]
        self._aws().call("iam", "tag_role", RoleName=self.role_name, Tags=tags)
        self.recorded_at = format_time(moment)

    def _result(self, changes):
        result = super()._result(changes)
        retiring = {key.key_arn for key in self.retiring}
        recorded_at = getattr(self, "recorded_at", None)
        retained = []
        for key in self.retained:
            if key.key_arn in retiring or (self.key_arn and same_key(key.key_arn, self.key_arn)) or key.key_arn in self.recorded:
                continue
            retained.append({"key_arn": key.key_arn, "rotated_out": format_time(key.rotated_out) if key.rotated_out else None})
        for arn in self.recorded:
            retained.append({"key_arn": arn, "rotated_out": recorded_at})
        result["retained_keys"] = sorted(retained, key=lambda item: item["key_arn"])
        result["retired_keys"] = sorted(retiring)
        retired_roles = {role.role_arn for role, _atlas_role in self.retiring_roles}
        result["retained_roles"] = [role for role in result["retained_roles"] if role["iam_role_arn"] not in retired_roles]
        result["retired_roles"] = sorted(retired_roles)
        result["rotated"] = self._rotating(self.key_arn)
        return result
