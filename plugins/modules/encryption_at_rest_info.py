#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: encryption_at_rest_info
short_description: Read an Atlas project's encryption at rest with AWS KMS, the role it uses and the clusters using it
version_added: 0.1.0
description:
  - Returns the AWS KMS settings of a MongoDB Atlas project's encryption at rest (customer key management) in
    normalised form, whether Atlas reaches the key with an IAM role or with an access key, and whether Atlas
    reports the key C(valid).
  - Also returns the Atlas cloud provider access role in use, with the ARN of the IAM role it is authorized for,
    and the clusters whose encryption at rest provider is C(AWS).
  - Atlas may leave the role's ID out of its answer; the role whose feature usages include encryption at rest
    stands in for it then.
  - Reads Atlas only; no AWS access is needed (the AWS connection options are accepted and ignored).
author:
  - cmk.atlas maintainers (@cmk-atlas)
options:
  project_id:
    description:
      - ID of the Atlas project (24 hexadecimal digits).
    type: str
    required: true
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws.IGNORED
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.INFO_MODULE
notes:
  - The secret access key of a credentials-based configuration is never returned (Atlas does not return it either).
seealso:
  - module: cmk.atlas.encryption_at_rest
  - module: cmk.atlas.cloud_provider_access_info
"""

EXAMPLES = r"""
- name: Read the project's encryption at rest
  cmk.atlas.encryption_at_rest_info:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
  register: ear

- name: Stop unless Atlas can use the key through an IAM role
  ansible.builtin.assert:
    that:
      - ear.encryption_at_rest.access_method == 'role'
      - ear.encryption_at_rest.valid
    fail_msg: "Atlas uses {{ ear.encryption_at_rest.access_method }}, valid: {{ ear.encryption_at_rest.valid }}"
"""

RETURN = r"""
project_id:
  description: ID of the Atlas project.
  returned: always
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
encryption_at_rest:
  description: The project's AWS KMS settings.
  returned: always
  type: dict
  contains:
    provider:
      description: Always V(AWS).
      type: str
      sample: AWS
    enabled:
      description: Whether customer key management with AWS KMS is enabled.
      type: bool
      sample: true
    customer_master_key_id:
      description: The key ID or key ARN Atlas uses; null when not enabled.
      type: str
      sample: 1234abcd-12ab-34cd-56ef-1234567890ab
    region:
      description: The key's region in Atlas's spelling; null when not enabled.
      type: str
      sample: EU_WEST_2
    aws_region:
      description: The key's region as an AWS region name; null when not enabled.
      type: str
      sample: eu-west-2
    access_method:
      description: V(role) (an IAM role), V(credentials) (an access key and secret) or V(none) (not enabled).
      type: str
      sample: role
    role_id:
      description: ID of the Atlas cloud provider access role in use; null unless RV(encryption_at_rest.access_method=role).
      type: str
      sample: 32b6e34b3d91647abb20e7b8
    iam_role_arn:
      description: ARN of the IAM role that Atlas role is authorized for.
      type: str
      sample: arn:aws:iam::111111111111:role/atlas-kms
    access_key_id:
      description: The access key ID Atlas uses when RV(encryption_at_rest.access_method=credentials).
      type: str
      sample: AKIAIOSFODNN7EXAMPLE
    require_private_networking:
      description: Whether Atlas reaches KMS over private networking only.
      type: bool
      sample: false
    valid:
      description: Whether Atlas reports that it can encrypt and decrypt with the key.
      type: bool
      sample: true
enabled_for_search_nodes:
  description: Whether the project's search nodes encrypt with the key too (C(enabledForSearchNodes), beside C(awsKms)).
  returned: always
  type: bool
role:
  description: The Atlas cloud provider access role encryption at rest uses; null when it uses none.
  returned: always
  type: dict
  contains:
    role_id:
      description: ID of the Atlas role.
      type: str
      sample: 32b6e34b3d91647abb20e7b8
    atlas_aws_account_arn:
      description: ARN of the AWS principal Atlas assumes the IAM role as.
      type: str
      sample: arn:aws:iam::536727724300:root
    external_id:
      description: The external ID Atlas sends when it assumes the IAM role.
      type: str
      sample: 3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b
    iam_assumed_role_arn:
      description: ARN of the IAM role the Atlas role is authorized for.
      type: str
      sample: arn:aws:iam::111111111111:role/atlas-kms
    authorized:
      description: Whether the Atlas role is authorized for an IAM role.
      type: bool
      sample: true
    authorized_date:
      description: When the role was authorized (ISO 8601, UTC).
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
clusters_using:
  description: Names of the project's clusters whose encryption at rest provider is C(AWS).
  returned: always
  type: list
  elements: str
  sample: [Cluster0]
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import CmkAtlasModule, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import (
    ACCESS_ROLE,
    EncryptionAtRestApi,
    clusters_using,
    encryption_role,
    normalize,
)

ARGUMENT_SPEC = {"project_id": {"type": "str", "required": True}}


def run(module):
    project_id = validate_project_id(module.params["project_id"])
    api = EncryptionAtRestApi(module.atlas, project_id, log=module.module.debug)
    roles = api.roles()
    settings = api.settings()
    config = normalize(settings.get("awsKms"), roles)
    role = encryption_role(roles, config["role_id"]) if config["access_method"] == ACCESS_ROLE else None
    module.exit(
        False,
        project_id=project_id,
        encryption_at_rest=config,
        enabled_for_search_nodes=settings.get("enabledForSearchNodes"),
        role=role,
        clusters_using=clusters_using(api.clusters()),
    )


def main():
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True)
    module.run(run)


if __name__ == "__main__":
    main()
