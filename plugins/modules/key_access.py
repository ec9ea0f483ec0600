#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: key_access
short_description: Let an Atlas project reach an AWS KMS key through an IAM role, all parts in one task
version_added: 0.1.0
description:
  - Ensures everything MongoDB Atlas needs to use a KMS key through an IAM role, in the order AWS and Atlas
    need it, reading each resource once.
  - B(Atlas role.) The project's AWS cloud provider access role already authorized for the IAM role is
    reused, else one that is neither authorized nor used, else a new one is created.
  - B(IAM role.) O(iam_role_name) is created or updated with a trust policy that lets Atlas's AWS account
    assume it only with the Atlas role's external ID, the pairing tags C(cmk-atlas:project-id) and
    C(cmk-atlas:role-id), and an inline policy O(policy_name) allowing C(kms:Encrypt), C(kms:Decrypt) and
    C(kms:DescribeKey) on the key, optionally only from O(source_ips).
  - B(Key policy.) A statement naming the IAM role is added only where the key policy does not already let
    the role use the key (a key in another account, or a key policy that does not delegate to IAM).
    Every other statement stays as it is. See M(cmk.atlas.kms_key_policy).
  - B(Authorization.) The Atlas role is authorized for the IAM role; C(CANNOT_ASSUME_ROLE), which Atlas
    answers while IAM propagates a new trust policy, is retried for up to O(authorize_timeout) seconds.
  - B(Source IPs.) When O(source_ips) drops addresses the policies hold now, the policies first allow the
    old and the new addresses, Atlas must report the key valid with them (for up to O(valid_timeout)
    seconds), and only then are the old ones removed.
  - It does not change the project's encryption at rest; M(cmk.atlas.encryption_at_rest) does, with
    RV(role_id) and RV(key_arn). RV(encryption_at_rest_in_place) says when that step has nothing to do.
  - The playbooks C(cmk.atlas.enable) and C(cmk.atlas.switch) run this module (C(playbooks/tasks/key_access.yml)).
    M(cmk.atlas.cloud_provider_access), M(cmk.atlas.aws_iam_role) and
    M(cmk.atlas.kms_key_policy) do the same parts one at a time.
options:
  project_id:
    description:
      - The Atlas project (group) id, 24 hexadecimal digits.
    type: str
    required: true
  iam_role_name:
    description:
      - Name of the IAM role Atlas assumes. It is created when it does not exist.
    type: str
    required: true
  iam_role_path:
    description:
      - Path of the IAM role. IAM cannot move a role to another path, so a role with this name under
        another path fails the module before anything is written.
    type: str
    default: /
  iam_role_description:
    description:
      - Description of the IAM role. When unset, an existing role keeps its description.
    type: str
  iam_role_tags:
    description:
      - Tags of the IAM role besides the pairing tags. Other tags the role has stay.
    type: dict
  kms_key:
    description:
      - The KMS key, as a key id, key ARN, alias name (V(alias/NAME)) or alias ARN. A key id or alias
        name is looked up in the account the AWS credentials act in (or the key owner's, with
        O(key_owner_assume_role_arn)) and in O(region).
      - When unset, the key the project's encryption at rest uses now (for a switch).
    type: str
  key_owner_assume_role_arn:
    description:
      - For a key in another AWS account than the IAM role, a role in the key's account to assume for
        reading and changing the key policy.
      - Without it, such a key's policy cannot be read; the module then warns, names what the key policy
        must allow, and leaves it alone. O(kms_key) must then be the key's ARN.
    type: str
  source_ips:
    description:
      - IP addresses or CIDR blocks Atlas reaches KMS from (its control plane's outbound addresses and
        the public IPs of the project's cluster nodes, see M(cmk.atlas.source_ip_info)). When set, the
        inline policy (and, with O(key_policy_source_ips), the key-policy statement) allows the key only
        from them (C(IpAddress) on C(aws:SourceIp)).
      - When unset or empty, the policies have no such condition.
    type: list
    elements: str
  key_policy_source_ips:
    description:
      - Whether a key-policy statement the module adds carries the O(source_ips) condition too.
    type: bool
    default: true
  policy_name:
    description:
      - Name of the IAM role's inline policy that grants the key.
    type: str
    default: cmk-atlas-kms-access
  procedure:
    description:
      - The procedure this task is part of; it refuses, before anything is written, a project the
        procedure does not apply to.
      - V(enable) refuses a project whose encryption at rest reaches its key with an access key and
        secret (switch it instead). V(switch) refuses a project without encryption at rest.
      - When unset, neither is checked.
    type: str
    choices: [enable, switch]
  authorize_timeout:
    description:
      - Seconds to keep retrying the authorization while Atlas cannot assume the IAM role yet (IAM
        propagation). V(0) tries once.
    type: int
    default: 300
  valid_timeout:
    description:
      - Seconds to wait for Atlas to report the key valid before addresses are removed from the
        C(aws:SourceIp) condition.
    type: int
    default: 300
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.CHECK_MODE_FULL
  - cmk.atlas.attributes.DIFF_MODE_FULL
notes:
  - In check mode the module reads as in a real run and reports every write it would make. On a project
    without an Atlas role yet, the role id and external ID Atlas has not chosen show as V((known after apply)).
  - With C(--diff) there are up to three diffs, the Atlas role, the IAM role (trust policy, tags, inline
    policies) and the key policy, each before and after.
  - One run reads the project's encryption at rest and cloud provider access roles once each, the IAM role
    with its inline policies once, and the key and its key policy once; a converged run writes nothing.
  - The AWS credentials need C(iam:GetRole), C(iam:ListRolePolicies), C(iam:GetRolePolicy), C(iam:CreateRole),
    C(iam:UpdateAssumeRolePolicy), C(iam:PutRolePolicy), C(iam:TagRole), C(kms:DescribeKey), C(kms:GetKeyPolicy),
    C(kms:PutKeyPolicy) (in the key's account) and C(sts:GetCallerIdentity).
seealso:
  - module: cmk.atlas.encryption_at_rest
  - module: cmk.atlas.cloud_provider_access
  - module: cmk.atlas.aws_iam_role
  - module: cmk.atlas.kms_key_policy
  - name: Set up unified AWS access
    description: The MongoDB Atlas guide to cloud provider access roles.
    link: https://www.mongodb.com/docs/atlas/security/set-up-unified-aws-access/
author:
  - cmk.atlas maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Let the project reach its key through the IAM role atlas-kms
  cmk.atlas.key_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    iam_role_name: atlas-kms
    kms_key: alias/atlas-cmk
    procedure: enable
  register: access

- name: Then encrypt at rest with it, unless that is in place already
  cmk.atlas.encryption_at_rest:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    role_id: "{{ access.role_id }}"
    customer_master_key_id: "{{ access.key_arn }}"
    region: "{{ access.key_region }}"
  when: not access.encryption_at_rest_in_place

- name: Key in account 222222222222, changed through a role there; only from Atlas's addresses
  cmk.atlas.key_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    iam_role_name: atlas-kms
    kms_key: arn:aws:kms:eu-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
    key_owner_assume_role_arn: arn:aws:iam::222222222222:role/key-admin
    source_ips: "{{ addresses.cidrs }}"
"""

RETURN = r"""
project_id:
  description: The Atlas project id.
  returned: success
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
role_id:
  description: The Atlas cloud provider access role; V((known after apply)) in check mode before it exists.
  returned: success
  type: str
  sample: 32b6e34b3d91647abb20e7b8
reused_by:
  description: How the Atlas role was found, V(iam_role_arn) (already authorized for the IAM role), V(unused_role) or V(created).
  returned: success
  type: str
  sample: iam_role_arn
external_id:
  description: The external ID Atlas sends when it assumes the IAM role (not a secret).
  returned: success
  type: str
  sample: 24a1c5f2-8d3e-4b6a-9f70-1e2d3c4b5a69
atlas_aws_account_arn:
  description: Atlas's AWS principal that the trust policy names.
  returned: success
  type: str
  sample: arn:aws:iam::536727724300:root
authorized:
  description: Whether the Atlas role is authorized for the IAM role (after the run, or as check mode predicts).
  returned: success
  type: bool
iam_role_arn:
  description: The IAM role's ARN (predicted from the caller's account in check mode before it exists).
  returned: success
  type: str
  sample: arn:aws:iam::111111111111:role/atlas-kms
iam_role_name:
  description: The IAM role's name.
  returned: success
  type: str
policy_name:
  description: The inline policy that grants the key.
  returned: success
  type: str
key_arn:
  description: The key's ARN, what Atlas should be given.
  returned: success
  type: str
  sample: arn:aws:kms:eu-west-2:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab
key_region:
  description: The key's AWS region.
  returned: success
  type: str
  sample: eu-west-2
key_state:
  description: The key's state (V(Enabled)); null for another account's key that could not be read.
  returned: success
  type: str
key_policy_statement:
  description: The key-policy statement the module ensures; null where the key policy needs none.
  returned: success
  type: dict
key_policy_statement_needed:
  description: Whether the key policy needs the module's statement; null when it could not be read.
  returned: success
  type: bool
source_ips:
  description: The C(aws:SourceIp) list the policies hold after the run (CIDR form); null for no condition.
  returned: success
  type: list
  elements: str
source_ips_added:
  description: Addresses the run adds to the condition.
  returned: success
  type: list
  elements: str
source_ips_removed:
  description: Addresses the run removes from the condition.
  returned: success
  type: list
  elements: str
encryption_at_rest:
  description: The project's encryption at rest as read at the start of the run (as M(cmk.atlas.encryption_at_rest_info) returns it).
  returned: success
  type: dict
  contains:
    enabled:
      description: Whether encryption at rest with AWS KMS is on.
      type: bool
    customer_master_key_id:
      description: The key Atlas uses, as stored.
      type: str
    aws_region:
      description: The key's region in AWS form.
      type: str
    access_method:
      description: V(role), V(credentials) or V(none).
      type: str
    role_id:
      description: The Atlas role it uses.
      type: str
    valid:
      description: Whether Atlas reported the key usable.
      type: bool
encryption_at_rest_in_place:
  description:
    - True when this run changed nothing and the project already encrypts at rest with this key through this
      Atlas role, with Atlas reporting it valid; M(cmk.atlas.encryption_at_rest) then has nothing to do.
  returned: success
  type: bool
"""

from ansible_collections.cmk.atlas.plugins.module_utils.iam_role import RoleConflictError
from ansible_collections.cmk.atlas.plugins.module_utils.module import CmkAtlasModule
from ansible_collections.cmk.atlas.plugins.module_utils.project_key_access import KeyAccess

ARGUMENT_SPEC = dict(
    project_id=dict(type="str", required=True),
    iam_role_name=dict(type="str", required=True),
    iam_role_path=dict(type="str", default="/"),
    iam_role_description=dict(type="str"),
    iam_role_tags=dict(type="dict"),
    kms_key=dict(type="str", no_log=False),
    key_owner_assume_role_arn=dict(type="str", no_log=False),
    source_ips=dict(type="list", elements="str"),
    key_policy_source_ips=dict(type="bool", default=True),
    policy_name=dict(type="str", default="cmk-atlas-kms-access"),
    procedure=dict(type="str", choices=["enable", "switch"]),
    authorize_timeout=dict(type="int", default=300),
    valid_timeout=dict(type="int", default=300),
)


def run(module):
    key_owner = {}

    def key_owner_connection():
        arn = module.params["key_owner_assume_role_arn"]
        if not arn:
            return None
        if "connection" not in key_owner:
            key_owner["connection"] = module.aws.derive(assume_role_arn=arn, assume_role_external_id=None)
        return key_owner["connection"]

    access = KeyAccess(module.params, module.atlas, lambda: module.aws, key_owner_connection, check_mode=module.check_mode, log=module.module.debug)
    try:
        outcome = access.run()
    except RoleConflictError as error:
        module.fail(str(error))
    except Exception as error:  # after the Atlas role was created, say which role exists now
        role = getattr(error, "role", None)
        if role is None:
            raise
        module.fail_from(error, project_id=access.project_id, role_id=role["role_id"], external_id=role["external_id"])
    for warning in outcome.warnings:
        module.warn(warning)
    module.exit(outcome.changed, diff=outcome.diffs, **outcome.result)


def main():
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True, aws=True)
    module.run(run)


if __name__ == "__main__":
    main()
