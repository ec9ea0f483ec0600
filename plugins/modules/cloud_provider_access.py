#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloud_provider_access
short_description: Ensure an Atlas project has an AWS cloud provider access role, authorized for an IAM role
version_added: 0.1.0
description:
  - Manages the Atlas side of the link between a MongoDB Atlas project and the AWS IAM role Atlas assumes
    to reach a KMS key (Atlas I(cloud provider access) for AWS).
  - With O(state=present) the project gets an AWS role, and the module returns what the IAM role's trust
    policy needs, RV(atlas_aws_account_arn) and RV(external_id). Given O(iam_role_arn), it also makes sure
    that this IAM role is the one the Atlas role is authorized for.
  - It never creates a second role on a re-run or after an interrupted run. It reuses, in this order, the
    role named by O(role_id); the role already authorized for O(iam_role_arn); the role whose external ID
    is O(external_id); the oldest role that is neither authorized nor used by any Atlas feature. Only when
    none fits does it create one. RV(reused_by) says which rule chose the role.
  - Right after an IAM role is created or its trust policy changed, Atlas answers C(CANNOT_ASSUME_ROLE) for
    a while. The module tries again, with growing pauses, for up to O(authorize_timeout) seconds, then
    fails with what the trust policy must hold.
  - With O(state=absent) the role is deauthorized (Atlas removes it from the project). A role that an
    Atlas feature uses, such as C(ENCRYPTION_AT_REST), is never deauthorized; the module fails and names
    the feature.
  - A typical run calls the module twice. First with O(iam_role_arn) and O(authorize=false), to get the role
    (on a re-run, the one already authorized for that IAM role), its external ID and the Atlas AWS account ARN
    for the trust policy; then, once the IAM role trusts Atlas, with O(role_id) and O(iam_role_arn), to
    authorize it.
author:
  - cmk.atlas maintainers (@cmk-atlas)
options:
  project_id:
    description:
      - ID of the Atlas project (24 hexadecimal digits).
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the project has the role (and that it is authorized for O(iam_role_arn) when given).
      - V(absent) deauthorizes the role named by O(role_id), else the roles authorized for O(iam_role_arn),
        else the role whose external ID is O(external_id). At least one of them is required.
    type: str
    choices: [present, absent]
    default: present
  role_id:
    description:
      - ID of the Atlas role to use (24 hexadecimal digits), as RV(role_id) returned it.
      - The module fails when the project has no AWS role with this ID; it does not create one in its place.
      - In check mode the placeholder C((known after apply)) from an earlier check-mode task is accepted.
    type: str
  iam_role_arn:
    description:
      - ARN of the AWS IAM role Atlas assumes, such as C(arn:aws:iam::123456789012:role/atlas-kms).
      - With O(state=present) the Atlas role is authorized for this IAM role (unless O(authorize=false)). An
        authorized role is moved to another IAM role only when no Atlas feature uses it.
      - In check mode the placeholder C((known after apply)) from an earlier check-mode task is accepted.
    type: str
  external_id:
    description:
      - The external ID the IAM role's trust policy already carries in C(sts:ExternalId), so that the module
        finds the Atlas role it belongs to on later runs.
      - With O(iam_role_arn), it must be the external ID of the chosen Atlas role; otherwise Atlas could not
        assume the IAM role and the module fails before writing anything.
    type: str
  authorize:
    description:
      - With O(state=present) and O(iam_role_arn), whether to authorize the role for O(iam_role_arn).
      - V(false) uses O(iam_role_arn) only to choose the role, the one already authorized for it, and authorizes
        nothing. This is the first call of the procedure, made before the IAM role's trust policy names the
        Atlas role, so that a re-run reuses the role the earlier run authorized instead of creating another one
        (a project whose roles are all authorized has no unused role to reuse).
    type: bool
    default: true
  authorize_timeout:
    description:
      - How many seconds to keep trying the authorization while Atlas answers C(CANNOT_ASSUME_ROLE),
        which it does while a new or changed IAM role propagates through AWS.
      - V(0) tries once.
    type: int
    default: 300
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws.IGNORED
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.CHECK_MODE_FULL
  - cmk.atlas.attributes.DIFF_MODE_FULL
notes:
  - In check mode, values only Atlas can decide (the ID and external ID of a role not created yet, the date
    of an authorization) are returned as C((known after apply)). Later modules of this collection accept
    them in check mode.
  - In check mode a placeholder in O(role_id) stands for the role an earlier task would create. With
    O(state=absent), a placeholder in the option that names the role stands for that role, which the module
    then reports it would deauthorize.
  - The changed status is true exactly when the module creates, authorizes or deauthorizes a role (or would,
    in check mode). A run with nothing to do sends no write request to Atlas.
  - The Atlas AWS account ARN and the external ID are not secrets; Atlas credentials never appear in results.
seealso:
  - module: cmk.atlas.cloud_provider_access_info
  - name: Set up unified AWS access (MongoDB Atlas documentation)
    description: How Atlas assumes an IAM role through cloud provider access.
    link: https://www.mongodb.com/docs/atlas/security/set-up-unified-aws-access/
"""

EXAMPLES = r"""
- name: Make sure the project has an Atlas role for AWS
  cmk.atlas.cloud_provider_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
  register: atlas_role

- name: The same, reusing on re-runs the role already authorized for the IAM role, without authorizing yet
  cmk.atlas.cloud_provider_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    iam_role_arn: arn:aws:iam::123456789012:role/atlas-kms
    authorize: false
  register: atlas_role

- name: Show what the IAM role's trust policy needs
  ansible.builtin.debug:
    msg: >-
      Trust {{ atlas_role.atlas_aws_account_arn }} with sts:ExternalId {{ atlas_role.external_id }}

- name: Authorize the Atlas role for the IAM role (after the IAM role exists)
  cmk.atlas.cloud_provider_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    role_id: "{{ atlas_role.role_id }}"
    iam_role_arn: arn:aws:iam::123456789012:role/atlas-kms
    authorize_timeout: 600

- name: On a later run, find the role through the external ID the trust policy carries
  cmk.atlas.cloud_provider_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    external_id: 3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b

- name: Deauthorize the Atlas role of an IAM role that is no longer needed
  cmk.atlas.cloud_provider_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    iam_role_arn: arn:aws:iam::123456789012:role/atlas-kms-old
    state: absent
"""

RETURN = r"""
project_id:
  description: ID of the Atlas project.
  returned: always
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
role_id:
  description:
    - ID of the Atlas role.
    - C((known after apply)) in check mode when the role would be created.
  returned: O(state=present)
  type: str
  sample: 32b6e34b3d91647abb20e7b8
atlas_aws_account_arn:
  description:
    - ARN of the AWS principal Atlas assumes the IAM role as; the IAM role's trust policy must name it.
    - In check mode on a project without any AWS role, C((known after apply)).
  returned: O(state=present)
  type: str
  sample: arn:aws:iam::536727724300:root
external_id:
  description:
    - The external ID Atlas sends when it assumes the IAM role; the trust policy must require it in C(sts:ExternalId).
    - C((known after apply)) in check mode when the role would be created.
  returned: O(state=present)
  type: str
  sample: 3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b
iam_assumed_role_arn:
  description: ARN of the IAM role the Atlas role is authorized for; null while it is not authorized.
  returned: O(state=present)
  type: str
  sample: arn:aws:iam::123456789012:role/atlas-kms
authorized:
  description: Whether the Atlas role is authorized for an IAM role.
  returned: O(state=present)
  type: bool
  sample: true
authorized_date:
  description:
    - When the role was authorized (ISO 8601, UTC); null while it is not authorized.
    - C((known after apply)) in check mode when it would be authorized.
  returned: O(state=present)
  type: str
  sample: "2025-01-31T10:15:00Z"
created_date:
  description: When the role was created (ISO 8601, UTC); C((known after apply)) in check mode when it would be created.
  returned: O(state=present)
  type: str
  sample: "2025-01-31T10:14:02Z"
feature_usages:
  description: The Atlas features that use the role.
  returned: O(state=present)
  type: list
  elements: dict
  sample: [{"feature_type": "ENCRYPTION_AT_REST", "feature_id": null}]
  contains:
    feature_type:
      description: The feature, such as C(ENCRYPTION_AT_REST), C(EXPORT_SNAPSHOT) or C(ATLAS_DATA_LAKE).
      type: str
    feature_id:
      description: What identifies the feature's use (keys in snake_case); null for encryption at rest.
      type: raw
reused_by:
  description:
    - Why this role was chosen. V(role_id), V(iam_role_arn) or V(external_id) when that option matched it,
      V(unused_role) when an existing role nobody uses was taken, V(created) when the role was created.
  returned: O(state=present)
  type: str
  sample: iam_role_arn
previous_iam_assumed_role_arn:
  description: The IAM role the Atlas role was authorized for before it was authorized for O(iam_role_arn).
  returned: when an authorized role not used by any feature was moved to another IAM role
  type: str
  sample: arn:aws:iam::123456789012:role/atlas-kms-old
deauthorized_role_ids:
  description: IDs of the Atlas roles deauthorized (or that would be, in check mode); empty when none matched.
  returned: O(state=absent)
  type: list
  elements: str
  sample: [32b6e34b3d91647abb20e7b8]
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, CmkAtlasModule, ModuleInputError, diff_of, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import (
    DEFAULT_AUTHORIZE_TIMEOUT,
    CloudProviderAccess,
    validate_external_id,
    validate_iam_role_arn,
    validate_role_id,
)

ARGUMENT_SPEC = {
    "project_id": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "role_id": {"type": "str"},
    "iam_role_arn": {"type": "str"},
    "external_id": {"type": "str"},
    "authorize": {"type": "bool", "default": True},
    "authorize_timeout": {"type": "int", "default": DEFAULT_AUTHORIZE_TIMEOUT},
}

# The role fields every present result carries, in this order.
ROLE_RESULT_FIELDS = (
    "role_id",
    "atlas_aws_account_arn",
    "external_id",
    "iam_assumed_role_arn",
    "authorized",
    "authorized_date",
    "created_date",
    "feature_usages",
)


def option_value(module, name, validate):
    """The option validated, None when unset, UNKNOWN for a check-mode placeholder (only in check mode)."""
    value = module.params[name]
    if value is None:
        return None
    if not module.known(name, value):
        return UNKNOWN
    return validate(value, name)


def role_result(role):
    return {name: role.get(name) for name in ROLE_RESULT_FIELDS}


def present(module, access, role_id, iam_role_arn, external_id):
    try:
        outcome = access.ensure(
            role_id=role_id,
            iam_role_arn=iam_role_arn,
            external_id=external_id,
            authorize_timeout=module.params["authorize_timeout"],
            check_mode=module.check_mode,
            authorize=module.params["authorize"],
        )
    except AtlasError as error:  # after the role was created, say which role exists now
        role = getattr(error, "role", None)
        if role is None:
            raise
        module.fail_from(error, project_id=access.project_id, **role_result(role))
    for warning in outcome.warnings:
        module.warn(warning)
    result = {"project_id": access.project_id, "reused_by": outcome.reused_by}
    result.update(role_result(outcome.after))
    if outcome.previous_iam_assumed_role_arn:
        result["previous_iam_assumed_role_arn"] = outcome.previous_iam_assumed_role_arn
    header = f"Atlas cloud provider access role (project {access.project_id})"
    module.exit(outcome.changed, diff=diff_of(outcome.before, outcome.after, header, header), **result)


def absent(module, access, role_id, iam_role_arn, external_id):
    plan = access.remove(role_id=role_id, iam_role_arn=iam_role_arn, external_id=external_id, check_mode=module.check_mode)
    if len(plan.roles) == 1:
        before = plan.roles[0]
        after = None
    else:
        before = {"roles": plan.roles}
        after = {"roles": []}
    header = f"Atlas cloud provider access role (project {access.project_id})"
    module.exit(
        bool(plan.roles),
        diff=diff_of(before, after, header, header),
        project_id=access.project_id,
        deauthorized_role_ids=[role["role_id"] for role in plan.roles],
    )


def run(module):
    params = module.params
    project_id = validate_project_id(params["project_id"])
    role_id = option_value(module, "role_id", validate_role_id)
    iam_role_arn = option_value(module, "iam_role_arn", validate_iam_role_arn)
    external_id = option_value(module, "external_id", validate_external_id)
    timeout = params["authorize_timeout"]
    if timeout < 0:
        raise ModuleInputError(f"authorize_timeout is {timeout}; it must be 0 (try once) or more seconds, such as 300")
    if params["state"] == "absent" and role_id is None and iam_role_arn is None and external_id is None:
        raise ModuleInputError(
            "state=absent needs role_id, iam_role_arn or external_id to name the Atlas role to deauthorize; "
            "the module never deauthorizes a role it was not pointed at."
        )
    access = CloudProviderAccess(module.atlas, project_id, log=module.module.debug)
    if params["state"] == "absent":
        absent(module, access, role_id, iam_role_arn, external_id)
    else:
        present(module, access, role_id, iam_role_arn, external_id)


def main():
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True)
    module.run(run)


if __name__ == "__main__":
    main()
