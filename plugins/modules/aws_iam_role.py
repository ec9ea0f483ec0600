#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: aws_iam_role
short_description: The AWS IAM role MongoDB Atlas assumes to reach a KMS key
version_added: 0.1.0
description:
  - Creates, updates or deletes the IAM role that MongoDB Atlas assumes for Customer Key Management with AWS KMS.
  - The role's trust policy lets the Atlas AWS account (O(atlas_aws_account_arn)) call C(sts:AssumeRole) only with
    Atlas's external ID (O(external_id)). The trust policy is managed as a whole, so any other statement in it is removed.
  - An inline policy (O(policy_name)) grants exactly C(kms:Encrypt), C(kms:Decrypt) and C(kms:DescribeKey) on
    O(kms_key_arns), optionally only from O(source_ips).
  - Tags C(cmk-atlas:project-id) and C(cmk-atlas:role-id) pair the role with the Atlas project and its cloud provider
    access role, so that a later run finds the pairing.
  - Policies are compared by meaning, not by text, so AWS's own reformatting of a document never counts as a change.
    A run that finds the role as wanted sends no write request.
  - B(Ownership.) An existing role is changed only when it is this project's, that is when its C(cmk-atlas:project-id) tag names
    O(atlas_project_id), or (untagged) its trust policy already lets O(atlas_aws_account_arn) assume it with
    O(external_id). A role paired with another Atlas project, or trusting Atlas with another external ID, is never
    changed. Any other existing role (for example one that trusts C(ec2.amazonaws.com)) is changed only with
    O(adopt=true). The module fails before any write otherwise.
author:
  - cmk.atlas maintainers (@cmk-atlas)
options:
  name:
    description:
      - Name of the IAM role.
    type: str
    required: true
  path:
    description:
      - IAM path of the role, V(/) or a path that starts and ends with V(/), such as V(/atlas/).
      - IAM cannot move an existing role to another path; the module fails when the role exists under another path.
      - Ignored with O(state=absent) (role names are unique in an account).
    type: str
    default: /
  description:
    description:
      - Description of the role.
      - When unset, the description of an existing role is left as it is.
    type: str
  max_session_duration:
    description:
      - Maximum session length in seconds, from V(3600) (one hour) to V(43200) (12 hours).
      - When unset, an existing role keeps its value and a new role gets AWS's default of V(3600).
    type: int
  tags:
    description:
      - Tags of the role, as a dictionary of tag keys and values.
      - Keys starting with C(aws:) or C(cmk-atlas:) are refused; the C(cmk-atlas:) pairing tags come from
        O(atlas_project_id) and O(atlas_role_id).
    type: dict
  purge_tags:
    description:
      - When V(false), only the tags in O(tags) and the pairing tags are set; other tags on the role stay.
      - When V(true), tags that are not in O(tags) are removed too. The pairing tags C(cmk-atlas:project-id) and
        C(cmk-atlas:role-id) are never removed by this option; they change only when O(atlas_project_id) or
        O(atlas_role_id) give another value.
    type: bool
    default: false
  atlas_aws_account_arn:
    description:
      - The AWS principal Atlas assumes the role as, the C(atlasAWSAccountArn) of the Atlas cloud provider access role
        (for example from M(cmk.atlas.cloud_provider_access)).
      - Required with O(state=present).
      - In check mode the placeholder C((known after apply)) is accepted and predicted as a change.
    type: str
  external_id:
    description:
      - The external ID Atlas sends when assuming the role, the C(atlasAssumedRoleExternalId) of the Atlas cloud
        provider access role. The trust policy requires it with C(StringEquals sts:ExternalId).
      - Required with O(state=present); an empty value is refused, a trust policy without external ID is never written.
      - In check mode the placeholder C((known after apply)) is accepted (the Atlas role does not exist yet); the trust
        policy is predicted with the placeholder and the task reports a change without writing.
    type: str
  kms_key_arns:
    description:
      - Full ARNs of the KMS keys Atlas may use through this role, such as
        V(arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab).
      - Bare key IDs and aliases are refused, because IAM policies name keys by their ARN.
      - When empty or unset, the inline policy O(policy_name) is not managed (neither written nor removed), for
        example when the KMS permissions are granted by a later step.
    type: list
    elements: str
  source_ips:
    description:
      - IP addresses or CIDR blocks the KMS calls must come from. Adds an C(IpAddress aws:SourceIp) condition to the
        inline policy.
      - Must list every address Atlas reaches KMS from (its control plane and the project's cluster nodes), or Atlas
        loses access to the key.
      - Only with O(kms_key_arns).
    type: list
    elements: str
  policy_name:
    description:
      - Name of the inline policy that grants the KMS permissions.
    type: str
    default: cmk-atlas-kms-access
  purge_policies:
    description:
      - With O(state=present), V(false) leaves other inline policies on the role alone (they are listed in
        RV(other_inline_policies)); V(true) deletes every inline policy other than O(policy_name).
      - With O(state=absent), inline policies are always deleted with the role. Managed policies attached to the role
        keep IAM from deleting it; V(true) detaches them first, V(false) makes the module fail and list them.
    type: bool
    default: false
  adopt:
    description:
      - With O(state=present), whether to take over an existing role that is neither this project's nor another Atlas
        project's (see B(Ownership) above). Its trust policy is replaced, so whoever it trusts now loses it; run with
        C(--check --diff) first to see what changes.
      - Never takes over a role paired with another Atlas project or trusting Atlas with another external ID.
    type: bool
    default: false
  atlas_project_id:
    description:
      - ID of the Atlas project (24 hexadecimal digits) the role serves. Sets the pairing tag C(cmk-atlas:project-id).
      - With O(state=present), an existing role whose C(cmk-atlas:project-id) tag names another project is refused.
        When unset, a tagged role is changed only when its trust policy already has O(external_id).
      - With O(state=absent) and Atlas credentials, the module reads this project's encryption at rest and cloud
        provider access roles and refuses to delete the role while encryption at rest uses it. When unset, the
        project named by the role's C(cmk-atlas:project-id) tag is checked.
    type: str
  atlas_role_id:
    description:
      - ID of the Atlas cloud provider access role (C(roleId)) that assumes this IAM role. Sets the pairing tag
        C(cmk-atlas:role-id).
      - In check mode the placeholder C((known after apply)) is accepted.
    type: str
  state:
    description:
      - V(present) creates or updates the role; V(absent) deletes it with its inline policies.
    type: str
    choices: [present, absent]
    default: present
  validate_certs:
    description:
      - Whether to verify the TLS certificates of the AWS endpoints and of O(base_url).
      - Set to V(false) only for test servers with self-signed certificates; prefer O(aws_ca_bundle) for AWS.
    type: bool
    default: true
extends_documentation_fragment:
  - cmk.atlas.aws
  - cmk.atlas.atlas
  - cmk.atlas.attributes.action_group
  - cmk.atlas.attributes.check_mode_full
  - cmk.atlas.attributes.diff_mode_full
notes:
  - The Atlas connection options are used only with O(state=absent), to check that no Atlas project's encryption at rest
    uses the role. Without Atlas credentials the module warns that it could not check, and deletes the role.
  - Right after creating the role, writes that IAM answers with C(NoSuchEntity) (its eventual consistency) are repeated
    a few times, for at most about a minute.
  - If another run creates the role between this run's read and its C(iam:CreateRole), the module reads the role again
    and decides as for any existing role.
  - The module needs C(iam:GetRole), C(iam:ListRolePolicies), C(iam:GetRolePolicy), C(iam:ListAttachedRolePolicies),
    C(sts:GetCallerIdentity) (check mode, new role), and for changes C(iam:CreateRole), C(iam:UpdateRole), C(iam:UpdateAssumeRolePolicy), C(iam:PutRolePolicy),
    C(iam:DeleteRolePolicy), C(iam:TagRole), C(iam:UntagRole); for O(state=absent) also
    C(iam:ListInstanceProfilesForRole), C(iam:DetachRolePolicy) and C(iam:DeleteRole).
seealso:
  - name: Manage customer keys with AWS KMS (MongoDB Atlas)
    description: The procedure this role is part of.
    link: https://www.mongodb.com/docs/atlas/security-aws-kms/
  - name: Set up unified AWS access (MongoDB Atlas)
    description: How Atlas assumes an IAM role with an external ID.
    link: https://www.mongodb.com/docs/atlas/security/set-up-unified-aws-access/
"""

EXAMPLES = r"""
- name: Make sure the project has an Atlas role for AWS
  cmk.atlas.cloud_provider_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
  register: atlas_role

- name: Ensure the IAM role Atlas assumes, with access to the key
  cmk.atlas.aws_iam_role:
    name: atlas-kms
    description: MongoDB Atlas encryption at rest
    atlas_aws_account_arn: "{{ atlas_role.atlas_aws_account_arn }}"
    external_id: "{{ atlas_role.external_id }}"
    atlas_project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    atlas_role_id: "{{ atlas_role.role_id }}"
    kms_key_arns:
      - arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
    tags:
      team: data-platform
  register: iam_role

- name: Authorize the Atlas role for the IAM role
  cmk.atlas.cloud_provider_access:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    role_id: "{{ atlas_role.role_id }}"
    iam_role_arn: "{{ iam_role.arn }}"

- name: Allow the key only from Atlas's addresses
  cmk.atlas.aws_iam_role:
    name: atlas-kms
    atlas_aws_account_arn: "{{ atlas_role.atlas_aws_account_arn }}"
    external_id: "{{ atlas_role.external_id }}"
    kms_key_arns: "{{ key_arns }}"
    source_ips: "{{ atlas_source_ips }}"

- name: Manage only the trust policy and tags; the KMS permissions come later
  cmk.atlas.aws_iam_role:
    name: atlas-kms-staging
    path: /atlas/
    atlas_aws_account_arn: "{{ atlas_role.atlas_aws_account_arn }}"
    external_id: "{{ atlas_role.external_id }}"
    tags:
      owner: platform
    purge_tags: true

- name: Delete the role, unless the project's encryption at rest still uses it
  cmk.atlas.aws_iam_role:
    name: atlas-kms
    state: absent
    atlas_project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
"""

RETURN = r"""
arn:
  description:
    - ARN of the role. In check mode, for a role that does not exist yet, the ARN it will get (the caller's account,
      O(path) and O(name)).
    - With O(state=absent), the ARN of the deleted role, or V(null) when there was none.
  returned: always
  type: str
  sample: arn:aws:iam::123456789012:role/atlas-kms
role_id:
  description:
    - AWS's unique ID of the role (C(AROA...)). C((known after apply)) in check mode for a role that does not exist yet.
    - With O(state=absent), the ID of the deleted role, or V(null) when there was none.
  returned: always
  type: str
  sample: AROAEXAMPLEID1234567
role_name:
  description: Name of the role.
  returned: always
  type: str
  sample: atlas-kms
path:
  description: IAM path of the role.
  returned: when O(state=present)
  type: str
  sample: /
description:
  description: Description of the role, V(null) when it has none.
  returned: when O(state=present)
  type: str
  sample: MongoDB Atlas encryption at rest
max_session_duration:
  description: Maximum session length of the role in seconds.
  returned: when O(state=present)
  type: int
  sample: 3600
tags:
  description: Every tag of the role after the run, pairing tags included.
  returned: when O(state=present)
  type: dict
  sample: {"cmk-atlas:project-id": "5f4e3d2c1b0a998877665544", "cmk-atlas:role-id": "65a1b2c3d4e5f60718293a4b", "team": "data-platform"}
trust_policy:
  description: The role's trust policy document after the run.
  returned: when O(state=present)
  type: dict
  sample:
    Version: "2012-10-17"
    Statement:
      - Sid: MongoDBAtlasAssumeRole
        Effect: Allow
        Principal: {AWS: "arn:aws:iam::536727724300:root"}
        Action: sts:AssumeRole
        Condition: {StringEquals: {"sts:ExternalId": "2b8f0b7e-4a4c-4f0e-9d6c-1b9e1d0a5c3f"}}
policy_name:
  description: Name of the inline policy that grants the KMS permissions.
  returned: when O(state=present)
  type: str
  sample: cmk-atlas-kms-access
inline_policy:
  description:
    - The inline policy O(policy_name) after the run, V(null) when the role has none.
    - Reported also when O(kms_key_arns) is unset and the policy is therefore not managed.
  returned: when O(state=present)
  type: dict
  sample:
    Version: "2012-10-17"
    Statement:
      - Sid: MongoDBAtlasKmsAccess
        Effect: Allow
        Action: [kms:Decrypt, kms:DescribeKey, kms:Encrypt]
        Resource: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
other_inline_policies:
  description: Names of the role's other inline policies, left alone unless O(purge_policies=true).
  returned: when O(state=present)
  type: list
  elements: str
  sample: []
permissions_beyond_kms:
  description:
    - What the role may do after the run beyond C(kms:Encrypt), C(kms:Decrypt) and C(kms:DescribeKey) on O(kms_key_arns),
      one sentence each, naming the policy; empty when nothing. Whoever can assume the role (Atlas) has these too.
    - Counted are other inline policies, attached managed policies (not read, so counted whole), and statements of
      O(policy_name) that allow other actions or other resources (wildcards count as wider). Without O(kms_key_arns),
      the resources of O(policy_name) are not judged.
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["inline policy s3-read of IAM role atlas-kms allows s3:GetObject on arn:aws:s3:::bucket/*"]
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, CmkAtlasModule, diff_of
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import (
    DEFAULT_POLICY_NAME,
    PROJECT_TAG,
    RoleAppearedError,
    RoleConflictError,
    apply_actions,
    atlas_usage,
    desired_role,
    diff_view,
    extra_permissions,
    plan_absent,
    plan_present,
    predicted_arn,
    read_attachments,
    read_role,
    result_view,
    role_ownership,
    tag_value,
    validate_atlas_id,
    validate_kms_key_arns,
    validate_policy_name,
    validate_role_name,
)

ATLAS_CREDENTIAL_OPTIONS = ("public_key", "private_key", "client_id", "client_secret")


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        path=dict(type="str", default="/"),
        description=dict(type="str"),
        max_session_duration=dict(type="int"),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=False),
        atlas_aws_account_arn=dict(type="str"),
        external_id=dict(type="str", no_log=False),
        kms_key_arns=dict(type="list", elements="str", no_log=False),
        source_ips=dict(type="list", elements="str"),
        policy_name=dict(type="str", default=DEFAULT_POLICY_NAME),
        purge_policies=dict(type="bool", default=False),
        adopt=dict(type="bool", default=False),
        atlas_project_id=dict(type="str"),
        atlas_role_id=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        validate_certs=dict(type="bool", default=True),
    )


def present(module):
    params = module.params
    for option in ("atlas_aws_account_arn", "external_id", "atlas_role_id", "kms_key_arns"):
        module.known(option, params[option])
    desired = desired_role(params)
    policy_name = desired["policy_name"]
    aws = module.aws
    try:
        current, actions, after = plan_owned(module, desired)
    except RoleAppearedError:
        # Another run created the role after our read: read it again and judge it like any existing role.
        current, actions, after = plan_owned(module, desired)
    if after["arn"] is None:  # check mode, no role yet
        after["arn"], after["role_id"] = predicted_arn(aws, desired["name"], desired["path"]), UNKNOWN
    diff = diff_of(diff_view(current, policy_name), diff_view(after, policy_name), f"IAM role {desired['name']}", f"IAM role {desired['name']}")
    beyond = extra_permissions(after, policy_name, validate_kms_key_arns(params["kms_key_arns"]) or None)
    module.exit(bool(actions), diff=diff, permissions_beyond_kms=beyond, **result_view(after, policy_name))


def plan_owned(module, desired):
    """Read the role, refuse one that is not ours to change, plan and (outside check mode) apply: (current, actions, after)."""
    params = module.params
    current = read_role(module.aws, desired["name"])
    project_id = params["atlas_project_id"] if module.known("atlas_project_id", params["atlas_project_id"]) else None
    ownership = role_ownership(current, project_id, params["atlas_aws_account_arn"], [params["external_id"]])
    if ownership.kind == "other_project":
        raise RoleConflictError(f"{ownership.message}; it is left alone, nothing was changed: use another role name for this project")
    if ownership.kind == "foreign" and not params["adopt"]:
        raise RoleConflictError(
            f"{ownership.message}; it is left alone, nothing was changed: set adopt: true to take it over "
            "(its trust policy is replaced, so whoever it trusts now loses it; run with --check --diff first to see what changes), or use another role name"
        )
    actions, after = plan_present(current, desired)
    if actions and not module.check_mode:
        created = apply_actions(module.aws, actions)
        if created is not None:
            after["arn"], after["role_id"] = created["Arn"], created["RoleId"]
    return current, actions, after


def _atlas_credentials_given(params):
    return any(params.get(option) for option in ATLAS_CREDENTIAL_OPTIONS)


def check_atlas_usage(module, role):
    """Refuse to delete a role an Atlas project's encryption at rest uses; warn where that cannot be checked."""
    given = module.params["atlas_project_id"]
    if given is not None and not module.known("atlas_project_id", given):
        given = None
    tagged = tag_value(role["tags"], PROJECT_TAG)
    projects = []
    if given:
        projects.append((given, False))
    if tagged and tagged != given and validate_atlas_id_or_none(tagged):
        projects.append((tagged, True))
    if not projects:
        return
    names = " and ".join(project_id for project_id, _from_tag in projects)
    if not _atlas_credentials_given(module.params):
        module.warn(
            f"Could not check whether Atlas project {names} uses IAM role {role['arn']} for encryption at rest: no Atlas credentials "
            "(public_key and private_key, client_id and client_secret, or the MONGODB_ATLAS_* environment variables). "
            "Deleting a role that encryption at rest uses cuts Atlas off from the key."
        )
        return
    for project_id, from_tag in projects:
        try:
            usage = atlas_usage(module.atlas, project_id, role["arn"])
        except AtlasApiError as exc:
            if from_tag and exc.status == 404:
                module.warn(f"The role's {PROJECT_TAG} tag names Atlas project {project_id}, which Atlas does not know ({exc.error_code}); not checked")
                continue
            raise
        if usage["encryption_role_id"]:
            module.fail(
                f"IAM role {role['arn']} is in use: encryption at rest of Atlas project {project_id} uses cloud provider access role "
                f"{usage['encryption_role_id']}, which assumes it; deleting it would cut Atlas off from the key. "
                "Move encryption at rest to another role or disable it first; nothing was deleted"
            )
        if usage["authorized_role_ids"]:
            module.warn(
                f"Atlas project {project_id} still has cloud provider access role {', '.join(usage['authorized_role_ids'])} authorized with "
                f"IAM role {role['arn']}; it stops working once the IAM role is gone: deauthorize it in Atlas"
            )


def validate_atlas_id_or_none(value):
    try:
        return validate_atlas_id(value, PROJECT_TAG)
    except ValueError:
        return None


def absent(module):
    params = module.params
    name = validate_role_name(params["name"])
    policy_name = validate_policy_name(params["policy_name"] or DEFAULT_POLICY_NAME)
    validate_atlas_id(params["atlas_project_id"], "atlas_project_id")
    aws = module.aws
    current = read_role(aws, name)
    if current is None:
        module.exit(False, diff=diff_of(None, None), arn=None, role_id=None, role_name=name)
    attachments = read_attachments(aws, name, current["managed_policies"])
    check_atlas_usage(module, current)
    actions = plan_absent(current, attachments, params["purge_policies"])
    if not module.check_mode:
        apply_actions(aws, actions)
    diff = diff_of(diff_view(current, policy_name), None, f"IAM role {name}", f"IAM role {name} (deleted)")
    module.exit(True, diff=diff, arn=current["arn"], role_id=current["role_id"], role_name=name)


def logic(module):
    try:
        if module.params["state"] == "absent":
            absent(module)
        else:
            present(module)
    except RoleConflictError as exc:
        module.fail(str(exc))


def main():
    module = CmkAtlasModule(
        argument_spec(),
        atlas=True,
        aws=True,
        required_if=[("state", "present", ["atlas_aws_account_arn", "external_id"])],
    )
    module.run(logic)


if __name__ == "__main__":
    main()
