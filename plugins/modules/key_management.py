#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: key_management
short_description: Enable or switch an Atlas project's customer key management with AWS KMS, planned before the first write
version_added: 0.1.0
description:
  - Runs the C(enable) or C(switch) procedure of one Atlas project in three phases, the way C(terraform plan)
    then C(apply) does, but stateless.
  - B(Read.) The project's encryption at rest, its cloud provider access roles and clusters, the IAM role with
    its inline policies, attached policies and tags, the KMS key and its key policy, each once; Atlas's
    control-plane addresses when a policy has an C(aws:SourceIp) condition.
  - B(Plan and judge.) The end state of every resource is computed, and that planned state is judged, not
    today's. Can Atlas assume the planned trust; do the planned identity and key policies allow
    C(kms:Encrypt), C(kms:Decrypt) and C(kms:DescribeKey) from every address Atlas uses (no condition means
    every address); is the key enabled, customer managed, symmetric and in the region given; do the named
    clusters exist and run; does the IAM role or the key-policy statement belong to someone else. Every
    problem is reported at once and nothing is written. Check mode stops here.
  - B(Apply.) In the order the services need them. The Atlas role is reused or created first. Then the IAM
    role gets its trust policy, pairing tags and inline policy O(policy_name). A key-policy statement is added
    only where the key policy does not already let the role use the key. Then the Atlas role is authorized,
    with C(CANNOT_ASSUME_ROLE) retried while IAM propagates. The project's encryption-at-rest settings follow,
    and the module waits for Atlas to report them C(valid). Last come the clusters'
    C(encryptionAtRestProvider), each waited for until IDLE. A failure part-way names the writes made, and a
    re-run continues from there.
  - B(Ownership.) An IAM role is this project's when its pairing tags (C(cmk-atlas:project-id)) name it, or
    when its trust already lets Atlas assume it with one of this project's external IDs. A role paired with
    another project is never changed. Any other existing role is changed only with O(adopt_iam_role), and the
    diff shows what it loses. A key-policy statement is the module's when its Sid is the one derived from
    the IAM role's ARN and it names that role. Every other statement stays as it is.
  - The playbooks C(cmk.atlas.enable) and C(cmk.atlas.switch) run this module once per project.
options:
  project_id:
    description:
      - The Atlas project (group) id, 24 hexadecimal digits.
    type: str
    required: true
  procedure:
    description:
      - V(enable) sets up a project without encryption at rest (or one that already uses this key through an
        IAM role); it refuses a project that reaches its key with an access key and secret, and one encrypted
        with another key (rotating is its own procedure).
      - V(switch) moves a project from an access key and secret to the IAM role, keeping its key and region
        unless O(kms_key) says otherwise. The switch cannot be undone; it needs O(confirm_switch).
      - V(verify) reads and judges as V(enable) does and writes nothing, whatever check mode says; RV(report)
        lists the drift. O(source_ips) is then the list the policy should hold.
      - V(disable) turns the project's encryption at rest off, in the order Atlas needs. Every cluster that uses
        the key goes to C(encryptionAtRestProvider) V(NONE) (waited for until IDLE). The encryption-at-rest private
        endpoints are deleted (waited for until gone). Then the project's encryption at rest is disabled while
        the key still works. With O(remove_access), what the collection made is removed afterwards, and
        nothing else. It needs O(confirm_disable), and it is refused while the project's backup compliance
        policy requires encryption at rest.
      - V(rotate) moves a project that reaches its key through the IAM role to a new key O(kms_key). The role is
        granted the new key first (keeping the current one), then Atlas gets the new key (same role, the new
        key's region) and must report it C(valid). The previous key stays in the role's policy as a retained
        key, recorded with the time it was rotated out in the IAM role tag C(cmk-atlas:retained:<key id>). A
        project whose current key is already unusable is refused before any write. O(retire_keys) removes
        retained keys.
    type: str
    required: true
    choices: [enable, switch, verify, disable, rotate]
  iam_role_name:
    description:
      - Name of the IAM role Atlas assumes. It is created when it does not exist.
      - When unset, the role the project reaches its key through now (its C(roleId), that Atlas role's
        C(iamAssumedRoleArn)) is adopted, whoever made it (by hand, Terraform or the Atlas UI). It gets the pairing
        tags and nothing else that is already right changes. A project without such a role is refused.
      - A name other than the role the project uses is refused for a role-based project unless
        O(replace_iam_role) is set.
    type: str
  replace_iam_role:
    description:
      - Move a project that reaches its key through one IAM role to the role O(iam_role_name).
      - The replaced role keeps its Atlas authorization and its grant on the key, since Atlas restores a snapshot
        with the key and the role recorded when it was taken. It is recorded on the new role as a retained role
        (tag C(cmk-atlas:retained-role:<Atlas role id>)) and retired with O(retire_roles) by the rule of
        O(retire_keys).
    type: bool
    default: false
  iam_role_path:
    description:
      - Path of the IAM role. IAM cannot move a role to another path.
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
  adopt_iam_role:
    description:
      - Take over an existing IAM role that is neither paired with this project nor trusted by Atlas for it.
        Its trust policy is replaced by Atlas's; with C(--diff) the run shows what it loses, and the module
        warns about every permission it keeps beyond the key.
      - A role paired with another project is refused whatever this says.
    type: bool
    default: false
  kms_key:
    description:
      - The KMS key, as a key id, key ARN, alias name (V(alias/NAME)) or alias ARN.
      - When unset (switch), the key the project uses now.
    type: str
  key_region:
    description:
      - The AWS region of a key given as a bare key id or alias name. A key ARN names its own region; a
        different region here is refused.
      - When unset, a switch keeps the project's region and a bare key id or alias is looked up in the
        connection's region (O(region)).
    type: str
  key_owner_assume_role_arn:
    description:
      - For a key in another AWS account than the IAM role, a role in the key's account to assume for
        reading and changing the key policy. Without it, such a key's policy is left alone and the module
        warns what it must allow.
    type: str
  source_ips:
    description:
      - When set, the inline policy (and, with O(key_policy_source_ips), the key-policy statement) allows the
        key only from these addresses or CIDR blocks (C(IpAddress) on C(aws:SourceIp)). When unset, the
        policies have no such condition.
      - The planned list is judged before any write against Atlas's control-plane outbound addresses and
        O(required_source_ips).
    type: list
    elements: str
  required_source_ips:
    description:
      - Addresses Atlas calls KMS from besides its control plane (the public addresses of the project's
        cluster nodes, from M(cmk.atlas.source_ip_info)); every C(aws:SourceIp) condition must admit them.
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
  clusters:
    description:
      - Clusters to encrypt with the key (C(encryptionAtRestProvider) V(AWS)). They must exist and run.
    type: list
    elements: str
  all_clusters:
    description:
      - Encrypt every cluster of the project with the key. It cannot be combined with a list in O(clusters).
    type: bool
    default: false
  enabled_for_search_nodes:
    description:
      - Whether the project's search nodes encrypt with the key too (C(enabledForSearchNodes), beside C(awsKms)).
      - When unset, it is never sent and stays as it is. Changing it makes Atlas reprovision the search nodes and
        rebuild their indexes; the module warns and the diff says so.
    type: bool
  require_private_networking:
    description:
      - Whether Atlas reaches the key over private networking only (C(awsKms.requirePrivateNetworking)), through
        encryption-at-rest private endpoints (AWS PrivateLink to KMS) that Atlas runs in the regions
        O(private_endpoint_regions).
      - When unset, it is never sent and stays as it is, unless O(private_endpoint_regions) lists regions, which imply
        V(true). V(false) with regions listed is refused before any write.
      - V(true) is set in the project's encryption-at-rest PATCH first; the endpoints are created after it, and Atlas
        is waited for C(valid) once they are C(ACTIVE).
      - V(false) on a project that requires private networking deletes every endpoint, waits until they are gone, and
        then sets it to false.
      - Refused together with O(source_ips) or O(required_source_ips), since over private networking Atlas's requests
        no longer come from public addresses.
      - Not used by O(procedure=disable), which deletes the endpoints anyway.
    type: bool
  private_endpoint_regions:
    description:
      - AWS regions (V(eu-west-2), or Atlas's V(EU_WEST_2)) that each get one encryption-at-rest private endpoint,
        waited for until C(ACTIVE) (O(endpoint_timeout)). One that Atlas reports C(FAILED) fails the run with
        Atlas's C(errorMessage); a re-run deletes it and creates it again.
      - When given, endpoints of regions not listed are deleted (after the listed ones are C(ACTIVE)), waiting out
        those Atlas is still provisioning and cannot delete yet. When unset, the endpoints are left as they are.
      - An unknown region is refused before any write.
    type: list
    elements: str
  endpoint_timeout:
    description:
      - Seconds to wait for encryption-at-rest private endpoints to be C(ACTIVE), or gone once deleted. Atlas can
        take minutes. V(0) checks once.
    type: int
    default: 1800
  confirm_switch:
    description:
      - Confirms the switch from an access key to the IAM role, which Atlas cannot undo.
    type: bool
    default: false
  confirm_disable:
    description:
      - Confirms the disable (O(procedure=disable)). Atlas re-syncs every cluster that used the key and rebuilds
        the search indexes of the project's search nodes. Check mode needs no confirmation.
    type: bool
    default: false
  remove_access:
    description:
      - With O(procedure=disable), once the project's encryption at rest is disabled, remove what the collection
        made for it. That is the key-policy statement whose Sid is derived from the IAM role's ARN (only when
        it names that role), and the IAM role O(iam_role_name) when its pairing tag names this project.
        Last go the project's Atlas cloud provider access roles authorized for that IAM role, when, read after
        the disable, no feature uses them. Anything else stays, with a warning.
      - Without it, the IAM role, the key policy and the Atlas role stay as they are.
    type: bool
    default: false
  retire_keys:
    description:
      - With O(procedure=rotate), retained keys (full key ARNs) to remove from the IAM role's access.
      - Refused for a key while Atlas may still restore with it. A backup snapshot of any cluster (deleted
        clusters with retained backups included) taken at or before the second the key was rotated out
        holds it. So does a cluster with continuous backup while its point-in-time restore window
        (O(pit_window_days)) reaches back to that second.
    type: list
    elements: str
  retire_roles:
    description:
      - With O(procedure=rotate), retained roles (IAM role ARNs, as RV(retained_roles) lists them) whose Atlas
        authorization is removed (the Atlas role is deauthorized when no other feature uses it), and their record.
        The IAM role itself is left as it is.
      - Refused by the rule of O(retire_keys), counted from the time the project moved away from the role.
    type: list
    elements: str
  pit_window_days:
    description:
      - With O(retire_keys), the point-in-time restore window of the clusters with continuous backup, in days.
        Such a cluster holds a retained key until this long after the key was rotated out. Set it to the
        longest restore window of the project's backup policies.
    type: int
    default: 7
  deactivate_previous_access_key:
    description:
      - After a switch, once Atlas reports the key valid through the role, set the access key Atlas used
        before to Inactive (it is not deleted).
    type: bool
    default: false
  authorize_timeout:
    description:
      - Seconds to keep retrying while Atlas cannot assume the IAM role yet (IAM propagation). V(0) tries once.
    type: int
    default: 300
  valid_timeout:
    description:
      - Seconds to wait for Atlas to report the key valid after the settings change.
    type: int
    default: 300
  cluster_timeout:
    description:
      - Seconds to wait for each changed cluster to be IDLE again; with O(procedure=disable) also for the
        encryption-at-rest private endpoints to be gone.
    type: int
    default: 3600
  message_names:
    description:
      - How messages name the settings to fix, V(module) options or V(playbook) variables (C(cmk_atlas_*)).
        The collection's playbooks set V(playbook).
    type: str
    choices: [module, playbook]
    default: module
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.CHECK_MODE_FULL
  - cmk.atlas.attributes.DIFF_MODE_FULL
notes:
  - In check mode the module reads as in a real run, judges the plan the same way, and reports every write
    it would make in RV(changes). Values Atlas has not chosen yet (a new role's id and external ID) show as
    V((known after apply)).
  - With C(--diff) there is one diff per resource, the Atlas role, the IAM role, the key policy, the
    encryption-at-rest settings, the private networking (C(requirePrivateNetworking) and the endpoints by region)
    and the clusters, each before and after.
  - A converged run reads each resource once and writes nothing.
  - The AWS credentials need C(iam:GetRole), C(iam:ListRolePolicies), C(iam:GetRolePolicy),
    C(iam:ListAttachedRolePolicies), C(iam:CreateRole), C(iam:UpdateAssumeRolePolicy), C(iam:PutRolePolicy),
    C(iam:TagRole), C(kms:DescribeKey), C(kms:GetKeyPolicy), C(kms:PutKeyPolicy) (in the key's account) and
    C(sts:GetCallerIdentity).
seealso:
  - module: cmk.atlas.cloud_provider_access
  - module: cmk.atlas.aws_iam_role
  - module: cmk.atlas.kms_key_policy
  - module: cmk.atlas.encryption_at_rest
  - module: cmk.atlas.cluster_encryption
  - name: Customer Key Management with AWS KMS
    description: The MongoDB Atlas guide to the procedures.
    link: https://www.mongodb.com/docs/atlas/security-aws-kms/
author:
  - cmk.atlas maintainers (@cmk-atlas)
"""

EXAMPLES = r"""
- name: Enable customer key management for a project, its cluster included
  cmk.atlas.key_management:
    procedure: enable
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    iam_role_name: atlas-kms
    kms_key: alias/atlas-cmk
    key_region: eu-west-2
    clusters: [Cluster0]

- name: Switch a project from its access key to an IAM role (cannot be undone)
  cmk.atlas.key_management:
    procedure: switch
    project_id: 5f1a2b3c4d5e6f7a8b9c0d20
    iam_role_name: atlas-kms-search
    confirm_switch: true
    deactivate_previous_access_key: true

- name: Key in account 222222222222, changed through a role there; only from Atlas's addresses
  cmk.atlas.key_management:
    procedure: enable
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    iam_role_name: atlas-kms
    kms_key: arn:aws:kms:eu-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
    key_owner_assume_role_arn: arn:aws:iam::222222222222:role/key-admin
    source_ips: "{{ addresses.cidrs }}"
    required_source_ips: "{{ addresses.cidrs }}"
"""

RETURN = r"""
project_id:
  description: The Atlas project id.
  returned: success
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
procedure:
  description: V(enable) or V(switch).
  returned: success
  type: str
changes:
  description: The writes the run made, in order (in check mode, the writes it would make). Empty on a converged run.
  returned: success
  type: list
  elements: str
role_id:
  description: The Atlas cloud provider access role; V((known after apply)) in check mode before it exists.
  returned: success
  type: str
  sample: 32b6e34b3d91647abb20e7b8
reused_by:
  description: How the Atlas role was found, V(iam_role_arn), V(external_id), V(unused_role) or V(created).
  returned: success
  type: str
external_id:
  description: The external ID Atlas sends when it assumes the IAM role (not a secret).
  returned: success
  type: str
atlas_aws_account_arn:
  description: Atlas's AWS principal that the trust policy names.
  returned: success
  type: str
created_atlas_role:
  description: Whether the run created the Atlas role (check mode, whether it would).
  returned: success
  type: bool
iam_role_arn:
  description: The IAM role's ARN (predicted from the caller's account in check mode before it exists).
  returned: success
  type: str
iam_role_name:
  description: The IAM role's name.
  returned: success
  type: str
policy_name:
  description: The inline policy that grants the key.
  returned: success
  type: str
key_arn:
  description: The key's ARN.
  returned: success
  type: str
key_region:
  description: The key's AWS region.
  returned: success
  type: str
key_state:
  description: The key's state; null for another account's key that could not be read.
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
switched:
  description: Whether the run moved the project from an access key to the role.
  returned: success
  type: bool
deactivated_access_key:
  description: The access key set to Inactive after the switch; null when none.
  returned: success
  type: str
encryption_at_rest_before:
  description: The project's encryption at rest as read at the start (as M(cmk.atlas.encryption_at_rest_info) returns it).
  returned: success
  type: dict
encryption_at_rest:
  description: The project's encryption at rest after the run (check mode, as planned; C(valid) is then null when it changes).
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
enabled_for_search_nodes:
  description: Whether the project's search nodes encrypt with the key after the run.
  returned: success
  type: bool
require_private_networking:
  description: Whether Atlas reaches the key over private networking only after the run (check mode, as planned).
  returned: with procedures enable, switch, rotate and verify
  type: bool
private_endpoints:
  description:
    - The project's encryption-at-rest private endpoints after the run, by region (check mode, as planned, a new one
      C(ACTIVE) with the id V((known after apply))).
  returned: with procedures enable, switch, rotate and verify
  type: list
  elements: dict
  contains:
    id:
      description: The endpoint's id.
      type: str
    region:
      description: The AWS region, such as V(eu-west-2).
      type: str
    region_name:
      description: The region in Atlas's form, such as V(EU_WEST_2).
      type: str
    status:
      description: V(INITIATING), V(ACTIVE), V(FAILED) or V(DELETING), as Atlas reports it.
      type: str
    error_message:
      description: Atlas's C(errorMessage) of a C(FAILED) endpoint; null otherwise.
      type: str
clusters:
  description: Every cluster of the project with its C(encryptionAtRestProvider) after the run.
  returned: success
  type: dict
  sample: {Cluster0: AWS}
disabled:
  description: With O(procedure=disable), whether the run turned the project's encryption at rest off (check mode, whether it would).
  returned: with procedure disable
  type: bool
private_endpoints_removed:
  description: With O(procedure=disable), the ids of the encryption-at-rest private endpoints deleted (or waited for until gone).
  returned: with procedure disable
  type: list
  elements: str
backup_compliance_policy_requires_encryption:
  description: With O(procedure=disable), whether the project's backup compliance policy requires encryption at rest (the disable is then refused).
  returned: with procedure disable
  type: bool
removed_access:
  description: With O(procedure=disable) and O(remove_access), what was removed (check mode, what would be); nulls and an empty list otherwise.
  returned: with procedure disable
  type: dict
  contains:
    key_policy_statement:
      description: The Sid of the key-policy statement removed.
      type: str
    key_arn:
      description: The key whose policy lost the statement.
      type: str
    iam_role_arn:
      description: The IAM role deleted.
      type: str
    atlas_role_ids:
      description: The Atlas cloud provider access roles deauthorized.
      type: list
      elements: str
retained_keys:
  description:
    - With O(procedure=rotate), the keys the IAM role keeps for restores after the run, each with C(key_arn)
      and C(rotated_out) (ISO 8601 UTC; null while it is not recorded yet, such as in check mode).
    - With O(procedure=verify), the same list is in RV(report).
  returned: with procedure rotate
  type: list
  elements: dict
retired_keys:
  description: With O(procedure=rotate), the retained keys the run removed from the IAM role's access (check mode, would remove).
  returned: with procedure rotate
  type: list
  elements: str
adopted_iam_role:
  description: Whether O(iam_role_name) was unset and the run used the IAM role the project reaches its key through.
  returned: with procedures enable, switch, rotate and verify
  type: bool
retained_roles:
  description:
    - The IAM roles the project was moved away from (O(replace_iam_role)) and that stay authorized for restores, each
      with C(iam_role_arn), C(atlas_role_id) and C(replaced) (ISO 8601 UTC; null while it is not recorded yet).
  returned: with procedures enable, switch, rotate and verify
  type: list
  elements: dict
retired_roles:
  description: With O(procedure=rotate), the retained roles whose authorization the run removed (check mode, would remove).
  returned: with procedure rotate
  type: list
  elements: str
rotated:
  description: With O(procedure=rotate), whether the run moved Atlas to another key (check mode, whether it would).
  returned: with procedure rotate
  type: bool
report:
  description: With O(procedure=verify), what differs from what enable would leave.
  returned: with procedure verify
  type: dict
  contains:
    in_sync:
      description: True when every check holds and enable would neither write nor refuse anything.
      type: bool
    drifted:
      description: The checks that do not hold.
      type: list
      elements: str
    checks:
      description: V(role), V(trust_policy), V(kms_permissions), V(key_state), V(key_policy), V(valid), V(source_ips), each true or false.
      type: dict
    changes:
      description: The writes enable would make.
      type: list
      elements: str
    problems:
      description: What enable would refuse, with the fix.
      type: list
      elements: str
    permissions_beyond_kms:
      description: What the IAM role may do beyond the three KMS actions on the key.
      type: list
      elements: str
    source_ips:
      description: The C(aws:SourceIp) lists C(wanted), C(current), C(to_add) and C(to_remove).
      type: dict
    retained_keys:
      description: Keys kept in the IAM role's policy for restores after a rotation (not drift), each with C(key_arn) and C(rotated_out).
      type: list
      elements: dict
    retained_roles:
      description: IAM roles the project was moved away from, kept authorized for restores (not drift), as RV(retained_roles).
      type: list
      elements: dict
    enabled_for_search_nodes:
      description: The project's C(enabledForSearchNodes) as Atlas holds it.
      type: bool
    require_private_networking:
      description: The project's C(awsKms.requirePrivateNetworking) as Atlas holds it.
      type: bool
    private_endpoints:
      description: The encryption-at-rest private endpoints read (when private networking is on or checked), as RV(private_endpoints).
      type: list
      elements: dict
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import CmkAtlasModule
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.disable import Disable
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.enable import RoleBasedAccess
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.rotate import Rotate
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.verify import Verify

ARGUMENT_SPEC = dict(
    project_id=dict(type="str", required=True),
    procedure=dict(type="str", required=True, choices=["enable", "switch", "verify", "disable", "rotate"]),
    iam_role_name=dict(type="str"),
    replace_iam_role=dict(type="bool", default=False),
    iam_role_path=dict(type="str", default="/"),
    iam_role_description=dict(type="str"),
    iam_role_tags=dict(type="dict"),
    adopt_iam_role=dict(type="bool", default=False),
    kms_key=dict(type="str", no_log=False),
    key_region=dict(type="str", no_log=False),
    key_owner_assume_role_arn=dict(type="str", no_log=False),
    source_ips=dict(type="list", elements="str"),
    required_source_ips=dict(type="list", elements="str"),
    key_policy_source_ips=dict(type="bool", default=True),
    policy_name=dict(type="str", default="cmk-atlas-kms-access"),
    clusters=dict(type="list", elements="str"),
    all_clusters=dict(type="bool", default=False),
    enabled_for_search_nodes=dict(type="bool"),
    require_private_networking=dict(type="bool"),
    private_endpoint_regions=dict(type="list", elements="str"),
    endpoint_timeout=dict(type="int", default=1800),
    confirm_switch=dict(type="bool", default=False),
    confirm_disable=dict(type="bool", default=False),
    remove_access=dict(type="bool", default=False),
    retire_keys=dict(type="list", elements="str", no_log=False),
    retire_roles=dict(type="list", elements="str"),
    pit_window_days=dict(type="int", default=7),
    deactivate_previous_access_key=dict(type="bool", default=False, no_log=False),
    authorize_timeout=dict(type="int", default=300),
    valid_timeout=dict(type="int", default=300),
    cluster_timeout=dict(type="int", default=3600),
    message_names=dict(type="str", default="module", choices=["module", "playbook"]),
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

    procedure_class = {"verify": Verify, "disable": Disable, "rotate": Rotate}.get(module.params["procedure"], RoleBasedAccess)
    procedure = procedure_class(module.params, module.atlas, lambda: module.aws, key_owner_connection, check_mode=module.check_mode, log=module.module.debug)
    try:
        outcome = procedure.run()
    except Exception:
        # A refused plan or a write that failed part-way: what the plan found still reaches the user.
        for warning in procedure.plan.warnings:
            module.warn(warning)
        raise
    for warning in outcome.warnings:
        module.warn(warning)
    module.exit(outcome.changed, diff=outcome.diffs, **outcome.result)


def main():
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True, aws=True)
    module.run(run)


if __name__ == "__main__":
    main()
