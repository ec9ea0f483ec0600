# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The verify procedure: the enable plan's read and judge phases with no apply.

Its drift is the plan's changes and problems: what ``cmk.atlas.enable`` would write, what it would
refuse, and what Atlas reports now (``valid``). The source-IP list is reported on its own: the role's
KMS permissions are planned with the list the policy holds, so a list that only lacks an address does
not also count as drifted permissions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import ACCESS_ROLE
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import extra_permissions
from ansible_collections.cmk.atlas.plugins.module_utils.aws.retained_keys import format_time, retained_keys
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import condition_source_ips
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.enable import Outcome, RoleBasedAccess
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.private_networking import endpoint_results

CHECKS = ("role", "trust_policy", "kms_permissions", "key_state", "key_policy", "valid", "source_ips")


class Verify(RoleBasedAccess):
    """Read and judge as enable does; report instead of writing."""

    def read(self):
        super().read()
        inline = (self.iam_role or {}).get("inline_policies", {}).get(self.policy_name)
        self.current_ips = condition_source_ips(inline) if inline else []
        self.wanted_ips = self.source_ips or []
        # Planned with the list the policy holds: the list is its own check.
        self.source_ips = self.current_ips or None

    def _guard(self):
        """A project that does not use a role yet is drift, not a refusal."""

    def run(self):
        self.read()
        plan = self.plan_all()
        iam_changes = [change for change in plan.changes if change.startswith(("create IAM role", "update IAM role"))]
        current = self.current
        role_in_use = current["access_method"] == ACCESS_ROLE and current["role_id"] == self.authorized_role["role_id"]
        extra = extra_permissions(self.iam_role, self.policy_name, self._policy_key_arns(self.key_arn) if self.key_arn else None) if self.iam_role else []
        checks = {
            "role": role_in_use and not any(change.startswith("authorize") for change in plan.changes),
            "trust_policy": self.iam_role is not None and not any("trust policy" in change for change in iam_changes),
            "kms_permissions": self.iam_role is not None and not any("inline policy" in change for change in iam_changes) and not extra,
            "key_state": self.key is not None and self.key.get("key_state") == "Enabled",
            "key_policy": self.key_policy not in (None, False) and not any(change.startswith("put key-policy") for change in plan.changes),
            "valid": current["enabled"] and current["valid"] is True,
            "source_ips": sorted(self.wanted_ips) == sorted(self.current_ips),
        }
        drifted = [name for name in CHECKS if not checks[name]]
        problems = [f"{problem.subject}: {problem.message}" + (f" Fix: {problem.fix}" if problem.fix else "") for problem in plan.problems]
        report = {
            "project_id": self.project_id,
            "in_sync": not drifted and not problems and not plan.changes,
            "drifted": drifted,
            "checks": checks,
            "changes": plan.changes,
            "problems": problems,
            "permissions_beyond_kms": extra,
            "access_method": current["access_method"],
            "iam_role_arn": self.iam_role_arn,
            "key": self.key_arn or current["customer_master_key_id"],
            "key_state": self.key.get("key_state") if self.key else None,
            # Kept for restores after cmk.atlas.rotate: in the policy on purpose, not drift.
            "retained_keys": [
                {"key_arn": key.key_arn, "rotated_out": format_time(key.rotated_out) if key.rotated_out else None}
                for key in retained_keys((self.iam_role or {}).get("tags"))
                if key.key_arn != self.key_arn
            ],
            "retained_roles": self._retained_roles_result(),
            "enabled_for_search_nodes": bool(self.search_nodes),
            "require_private_networking": bool(current.get("require_private_networking")),
            "private_endpoints": endpoint_results(self.endpoints or []),
            "source_ips": {
                "wanted": sorted(self.wanted_ips),
                "current": sorted(self.current_ips),
                "to_add": sorted(set(self.wanted_ips) - set(self.current_ips)),
                "to_remove": sorted(set(self.current_ips) - set(self.wanted_ips)),
            },
        }
        warnings = [warning for warning in plan.warnings if "may do more than Atlas needs" not in warning]
        return Outcome(False, {"report": report, "encryption_at_rest": current, "clusters": {c["name"]: c["provider"] for c in self.clusters}}, [], warnings)
