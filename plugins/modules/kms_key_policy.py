#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kms_key_policy
short_description: Grant an IAM role or an AWS account the use of a KMS key through one key-policy statement
version_added: 0.1.0
description:
  - Ensures one statement in the key policy of an AWS KMS key that allows the given principals
    C(kms:Encrypt), C(kms:Decrypt) and C(kms:DescribeKey), what MongoDB Atlas needs to use the key
    for encryption at rest through its IAM role. The statement is identified by its O(sid).
  - The statement is merged into the existing key policy; every other statement stays exactly as it
    is. With O(state=absent) only that statement is removed.
  - The key policy is written (C(kms:PutKeyPolicy)) only when the result differs semantically from
    the current policy, so a second run sends no write call.
  - So that nobody is locked out of the key, the module refuses a result that leaves no principal
    allowed C(kms:PutKeyPolicy), and never replaces or removes a statement with the same Sid that
    grants anything other than some of the three actions above, or that names a principal other than
    O(principals), because such a statement is someone else's.
  - B(Cross-account keys.) When the key is in another AWS account than the Atlas IAM role (key in
    account K, role in account R), the key policy must name the role (or account R), and only
    account K can change it. Run this module with K's credentials, usually by assuming a role in K
    with O(assume_role_arn), and give the key's ARN (or its id or alias in K). A key ARN of another
    account than the credentials act in fails before any change. The role in R also needs an IAM
    policy allowing the three actions on the key (see M(cmk.atlas.aws_iam_role)), and Atlas must be
    given the full key ARN.
options:
  key_id:
    description:
      - The KMS key, as a key id, a key ARN, an alias name (V(alias/NAME)) or an alias ARN.
      - A key ARN or alias ARN names the key's account and region; a key id or alias name is looked
        up in the account the AWS credentials act in (after O(assume_role_arn)) and in O(region).
      - If an ARN names another account than the credentials act in, the module fails before any
        change; give credentials of the key's account, for example with O(assume_role_arn).
      - The region in an ARN wins over O(region); when O(region) is set to another region, the
        module fails.
      - AWS managed keys (V(alias/aws/...), key manager C(AWS)) are refused, because AWS fixes their key
        policies and Atlas cannot use them. A missing key and a key pending deletion fail; a
        disabled key gives a warning, and the statement is ensured all the same.
    type: str
    required: true
  principals:
    description:
      - Who may use the key, as IAM role ARNs (such as the role Atlas assumes), 12-digit AWS account
        ids, or account root ARNs (V(arn:aws:iam::ACCOUNT:root)).
      - An account is written as its root ARN. That lets the account delegate the use of the key to
        its own IAM principals through their IAM policies (the usual cross-account setup).
      - IAM users and assumed-role session ARNs are refused; Atlas reaches the key through a role.
      - Required with O(state=present). With O(state=absent) only used to derive the default O(sid).
      - In check mode a role ARN may contain the placeholder V((known after apply)) that the modules
        of this collection return for values an earlier step creates only in a real run (for example
        the Atlas IAM role). The statement is then predicted with the placeholder and the task
        reports a change. Outside check mode a placeholder is an error.
    type: list
    elements: str
  sid:
    description:
      - The Sid of the statement this module manages in the key policy.
      - By default it is derived from the principal, so that several projects sharing one key get
        one statement each, and two roles never share one. For a role it is V(MongoDBAtlasKeyAccess) followed
        by the role ARN's partition, account id, path and name, where letters and digits stand for themselves
        and every other character (and the letter C(X) itself) is written as C(X) and two hexadecimal digits.
        For example, V(arn:aws:iam::111111111111:role/atlas-kms) gives
        V(MongoDBAtlasKeyAccessaws111111111111X2FatlasX2Dkms). For an account it is
        V(MongoDBAtlasKeyAccess) followed by the account id.
      - Required when O(principals) names more than one principal.
      - A statement with this Sid that grants anything other than some of C(kms:Encrypt),
        C(kms:Decrypt) and C(kms:DescribeKey), or that names a principal not in O(principals), is left
        alone and the module fails before any write. With O(state=absent) and no O(principals), the
        statement with O(sid) is removed whatever principal it names.
    type: str
  source_ips:
    description:
      - IP addresses or CIDR blocks. When set, the statement allows the use of the key only from them
        (condition C(IpAddress) on C(aws:SourceIp)). For Atlas these are the control plane's
        outbound addresses and the public IPs of the project's cluster nodes.
      - When unset, the statement has no condition. Ignored with O(state=absent).
    type: list
    elements: str
  only_if_needed:
    description:
      - With O(state=present), V(true) adds the statement only where the key policy does not already let the
        principals use the key. A key policy that names the role, or its account (which then delegates to the
        account's IAM policies, as AWS's default key policy does for the key's own account), for all three actions
        and denies none of them needs no statement, and the module changes nothing (RV(statement_needed=false)).
        A statement with O(sid) that is already there stays managed.
      - A condition the key policy alone does not decide (such as C(aws:SourceIp)) counts as not granted.
      - When O(key_id) is an ARN of another account than the AWS credentials act in, the key policy can be neither
        read nor changed, so the module warns, changes nothing and returns RV(statement_needed=null) instead of
        failing. Give O(assume_role_arn) of a role in the key's account to have it checked and changed.
      - V(false) always ensures the statement.
    type: bool
    default: false
  state:
    description:
      - V(present) adds or updates the statement; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - cmk.atlas.aws
  - cmk.atlas.atlas.IGNORED
  - cmk.atlas.attributes.action_group
  - cmk.atlas.attributes.check_mode_full
  - cmk.atlas.attributes.diff_mode_full
notes:
  - A KMS key has exactly one key policy, called C(default); it is the one read and written.
  - The credentials need C(kms:DescribeKey), C(kms:GetKeyPolicy) and C(kms:PutKeyPolicy) on the
    key, and C(sts:GetCallerIdentity) (plus C(sts:AssumeRole) on O(assume_role_arn), if set).
  - KMS refuses a key policy that names a principal that does not exist, so create the IAM role first.
  - With C(--diff) the whole key policy is shown before and after, in a normalised form (statements
    sorted by Sid, lists sorted, an account root ARN shown as the account id).
seealso:
  - name: Allowing users in other accounts to use a KMS key
    description: The AWS guide to key policies for keys used from another account.
    link: https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html
  - name: Manage customer keys with AWS KMS
    description: The MongoDB Atlas guide to encryption at rest with AWS KMS.
    link: https://www.mongodb.com/docs/atlas/security-aws-kms/
author:
  - cmk.atlas maintainers (@cmk-atlas)
"""

EXAMPLES = r"""
- name: Let the IAM role that Atlas assumes use the key
  cmk.atlas.kms_key_policy:
    key_id: alias/atlas-cmk
    principals:
      - arn:aws:iam::111111111111:role/atlas-kms

- name: Key in account 222222222222, role in account 111111111111, changed with the key owner's role
  cmk.atlas.kms_key_policy:
    key_id: arn:aws:kms:eu-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
    principals:
      - arn:aws:iam::111111111111:role/atlas-kms
    assume_role_arn: arn:aws:iam::222222222222:role/key-admin

- name: Let account 111111111111 delegate the use of the key, only from the given addresses
  cmk.atlas.kms_key_policy:
    key_id: arn:aws:kms:eu-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
    principals:
      - "111111111111"
    source_ips:
      - 198.51.100.10
      - 203.0.113.0/24
    assume_role_arn: arn:aws:iam::222222222222:role/key-admin

- name: Use the output of an earlier task, also in check mode
  cmk.atlas.kms_key_policy:
    key_id: "{{ kms_key_arn }}"
    principals:
      - "{{ atlas_role.arn }}"
  register: key_access

- name: Remove the statement again (the other statements stay)
  cmk.atlas.kms_key_policy:
    key_id: alias/atlas-cmk
    principals:
      - arn:aws:iam::111111111111:role/atlas-kms
    state: absent

- name: Add a statement only where the key policy does not already delegate to the role's account
  cmk.atlas.kms_key_policy:
    key_id: alias/atlas-cmk
    principals:
      - arn:aws:iam::111111111111:role/atlas-kms
    only_if_needed: true
  register: key_access

- name: One statement for two roles needs an explicit Sid
  cmk.atlas.kms_key_policy:
    key_id: alias/atlas-cmk
    sid: MongoDBAtlasKeyAccessAnalytics
    principals:
      - arn:aws:iam::111111111111:role/atlas-kms-analytics
      - arn:aws:iam::111111111111:role/atlas-kms-reporting
"""

RETURN = r"""
key_arn:
  description: The ARN of the key.
  returned: success
  type: str
  sample: arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
key_id:
  description: The id of the key.
  returned: success
  type: str
  sample: 1234abcd-12ab-34cd-56ef-1234567890ab
key_state:
  description:
    - The state of the key, such as V(Enabled) or V(Disabled).
    - V(null) when O(only_if_needed=true) left the key policy of a key in another account unread.
  returned: success
  type: str
  sample: Enabled
sid:
  description:
    - The Sid of the statement, given or derived.
    - In check mode it is V(MongoDBAtlasKeyAccess(known after apply)) when it derives from a principal that is not known yet.
  returned: success
  type: str
  sample: MongoDBAtlasKeyAccessaws111111111111X2FatlasX2Dkms
statement_needed:
  description:
    - With O(only_if_needed=true), whether the key policy needed the statement (V(null) when it could not be read);
      otherwise always V(true) with O(state=present).
  returned: with O(state=present)
  type: bool
  sample: false
statement:
  description:
    - The statement ensured in the key policy (with O(state=present)); V(null) with O(state=absent), or when
      O(only_if_needed=true) found it not needed.
  returned: success
  type: dict
  sample:
    Sid: MongoDBAtlasKeyAccessaws111111111111X2FatlasX2Dkms
    Effect: Allow
    Principal:
      AWS: arn:aws:iam::111111111111:role/atlas-kms
    Action: [kms:Decrypt, kms:DescribeKey, kms:Encrypt]
    Resource: "*"
policy:
  description:
    - The whole key policy after the change (in check mode, as it would be), normalised as in the diff.
    - V(null) when O(only_if_needed=true) left the key policy of a key in another account unread.
  returned: success
  type: dict
  sample:
    Version: "2012-10-17"
    Id: key-default-1
    Statement:
      - Sid: Enable IAM User Permissions
        Effect: Allow
        Principal:
          AWS: "222222222222"
        Action: kms:*
        Resource: "*"
      - Sid: MongoDBAtlasKeyAccessaws111111111111X2FatlasX2Dkms
        Effect: Allow
        Principal:
          AWS: arn:aws:iam::111111111111:role/atlas-kms
        Action: [kms:decrypt, kms:describekey, kms:encrypt]
        Resource: "*"
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import CmkAtlasModule, ModuleInputError, diff_of
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import (
    check_key,
    default_key_access_sid,
    describe_key,
    foreign_alias_error,
    get_key_policy,
    key_ref,
    key_region,
    plan_key_access,
    plan_key_policy_statement,
    principal_arns,
    put_key_policy,
    require_key_owner,
    unread_key_policy_warning,
    validate_key_principals,
)
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import normalize_policy, normalize_source_ips

ARGUMENT_SPEC = dict(
    key_id=dict(type="str", required=True),
    principals=dict(type="list", elements="str"),
    sid=dict(type="str"),
    source_ips=dict(type="list", elements="str"),
    only_if_needed=dict(type="bool", default=False),
    state=dict(type="str", default="present", choices=["present", "absent"]),
)


def _is_set(value):
    return isinstance(value, str) and bool(value.strip())


def ensure_statement(module):
    params = module.params
    present = params["state"] == "present"

    # Everything that can be checked offline, before any call.
    ref = key_ref(params["key_id"], "key_id")
    principals = None
    if params["principals"] is not None:
        if not module.check_mode:
            module.known("principals", params["principals"])
        principals = validate_key_principals(params["principals"], "principals", allow_unknown=module.check_mode)
    if _is_set(params["sid"]):
        sid = params["sid"]
    elif principals is None:
        raise ModuleInputError("sid is empty and principals is unset: give the statement's sid, or the principals it derives from")
    else:
        sid = default_key_access_sid(principals)
    if present and params["source_ips"] is not None:
        normalize_source_ips(params["source_ips"], "source_ips")

    connection = module.aws
    region = key_region(ref, connection.region if _is_set(params["region"]) else None, "key_id")
    if region and region != connection.region:
        connection = connection.derive(region=region)
    only_if_needed = present and params["only_if_needed"]
    if only_if_needed and ref.account is not None and connection.caller_identity()["Account"] != ref.account:
        leave_foreign_key_policy(module, connection, ref, sid, principals)
    require_key_owner(connection, ref, "key_id")

    metadata = describe_key(connection, ref, option="key_id")
    for warning in check_key(metadata, "key_id"):
        module.warn(warning)

    current = get_key_policy(connection, metadata)
    if present:
        needed, statement, plan = plan_key_access(current, sid, principals, metadata, params["source_ips"], only_if_needed)
    else:
        named = principal_arns(principals, metadata["partition"]) if principals else None
        needed, statement, plan = None, None, plan_key_policy_statement(current, sid, None, metadata["key_arn"], named)
    if plan.changed and not module.check_mode:
        put_key_policy(connection, metadata, plan.after)

    before, after = normalize_policy(plan.before), normalize_policy(plan.after)
    header = f"key policy of {metadata['key_arn']}"
    module.exit(
        changed=plan.changed,
        diff=diff_of(before, after, header, header),
        key_arn=metadata["key_arn"],
        key_id=metadata["key_id"],
        key_state=metadata["key_state"],
        sid=sid,
        statement=statement,
        policy=after,
        **({"statement_needed": needed} if present else {}),
    )


def leave_foreign_key_policy(module, connection, ref, sid, principals):
    """With only_if_needed, a key of another account: its key policy cannot be read here, so say what it needs and change nothing."""
    if ref.key_id is None:
        raise foreign_alias_error(ref, "key_id", "assume_role_arn")
    identity = connection.caller_identity()
    module.warn(unread_key_policy_warning(ref.arn, ref.account, identity["Account"], principals, "assume_role_arn"))
    module.exit(
        changed=False,
        diff=diff_of(None, None),
        key_arn=ref.arn,
        key_id=ref.key_id,
        key_state=None,
        sid=sid,
        statement=None,
        policy=None,
        statement_needed=None,
    )


def main():
    module = CmkAtlasModule(
        ARGUMENT_SPEC,
        aws=True,
        required_if=[("state", "present", ["principals"]), ("state", "absent", ["sid", "principals"], True)],
    )
    module.run(ensure_statement)


if __name__ == "__main__":
    main()
