#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloud_provider_access_info
short_description: List the AWS cloud provider access roles of an Atlas project
version_added: 0.1.0
description:
  - Returns the AWS cloud provider access roles of a MongoDB Atlas project, the Atlas side of the link to
    the IAM roles Atlas assumes. All of them, or those matching O(role_id) and O(iam_role_arn).
  - Only reads; it changes nothing and behaves the same in check mode.
author:
  - cmk.atlas maintainers (@cmk-atlas)
options:
  project_id:
    description:
      - ID of the Atlas project (24 hexadecimal digits).
    type: str
    required: true
  role_id:
    description:
      - Return only the role with this ID (24 hexadecimal digits). No match returns an empty list.
      - In check mode the placeholder C((known after apply)) from an earlier check-mode task is accepted
        and matches no role.
    type: str
  iam_role_arn:
    description:
      - Return only the roles authorized for this IAM role ARN. No match returns an empty list.
      - In check mode the placeholder C((known after apply)) is accepted and matches no role.
    type: str
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws.IGNORED
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.INFO_MODULE
seealso:
  - module: cmk.atlas.cloud_provider_access
"""

EXAMPLES = r"""
- name: List the AWS roles of the project
  cmk.atlas.cloud_provider_access_info:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
  register: atlas_roles

- name: Find the role authorized for an IAM role
  cmk.atlas.cloud_provider_access_info:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    iam_role_arn: arn:aws:iam::123456789012:role/atlas-kms
  register: linked

- name: Show the IDs of the authorized roles
  ansible.builtin.debug:
    msg: "{{ atlas_roles.roles | selectattr('authorized') | map(attribute='role_id') | list }}"
"""

RETURN = r"""
project_id:
  description: ID of the Atlas project.
  returned: always
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
roles:
  description: The matching AWS roles, in the order Atlas lists them.
  returned: always
  type: list
  elements: dict
  contains:
    role_id:
      description: ID of the Atlas role.
      type: str
      sample: 32b6e34b3d91647abb20e7b8
    atlas_aws_account_arn:
      description: ARN of the AWS principal Atlas assumes IAM roles as; trust policies must name it.
      type: str
      sample: arn:aws:iam::536727724300:root
    external_id:
      description: The external ID Atlas sends when it assumes the IAM role with this Atlas role.
      type: str
      sample: 3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b
    iam_assumed_role_arn:
      description: ARN of the IAM role the Atlas role is authorized for; null while it is not authorized.
      type: str
      sample: arn:aws:iam::123456789012:role/atlas-kms
    authorized:
      description: Whether the Atlas role is authorized for an IAM role.
      type: bool
      sample: true
    authorized_date:
      description: When the role was authorized (ISO 8601, UTC); null while it is not authorized.
      type: str
      sample: "2025-01-31T10:15:00Z"
    created_date:
      description: When the role was created (ISO 8601, UTC).
      type: str
      sample: "2025-01-31T10:14:02Z"
    feature_usages:
      description: The Atlas features that use the role.
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
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import CmkAtlasModule, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import (
    CloudProviderAccess,
    validate_iam_role_arn,
    validate_role_id,
)

ARGUMENT_SPEC = {
    "project_id": {"type": "str", "required": True},
    "role_id": {"type": "str"},
    "iam_role_arn": {"type": "str"},
}


def run(module):
    params = module.params
    project_id = validate_project_id(params["project_id"])
    filters = {}
    placeholder = False
    for name, validate in (("role_id", validate_role_id), ("iam_role_arn", validate_iam_role_arn)):
        value = params[name]
        if value is None:
            continue
        if module.known(name, value):
            filters[name] = validate(value, name)
        else:
            placeholder = True
    roles = CloudProviderAccess(module.atlas, project_id).find(**filters)
    if placeholder:
        # A value an earlier check-mode task has not decided yet names nothing that exists now.
        roles = []
    module.exit(False, project_id=project_id, roles=roles)


def main():
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True)
    module.run(run)


if __name__ == "__main__":
    main()
