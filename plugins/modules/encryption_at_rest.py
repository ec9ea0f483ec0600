#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: encryption_at_rest
short_description: Ensure an Atlas project encrypts at rest with an AWS KMS key reached through an IAM role
version_added: 0.1.0
description:
  - Manages the AWS KMS settings of a MongoDB Atlas project's encryption at rest (customer key management), that is
    the key, its region, the Atlas cloud provider access role Atlas uses to reach it, and private networking.
  - Only what differs from Atlas's current settings is sent. Options left out are not managed.
  - B(Enable.) On a project without encryption at rest, O(customer_master_key_id), O(role_id) and a region
    (O(region), the key ARN's region, or the AWS connection's default region) are required.
  - B(Switch.) On a project that reaches its key with an access key and secret, O(role_id) switches it to the
    role. B(Atlas cannot undo this switch), so the module refuses it unless O(confirm_switch_to_role=true).
    The key and region stay as they are unless O(customer_master_key_id) or O(region) say otherwise.
    Optionally the access key Atlas used before is deactivated afterwards (O(deactivate_previous_access_key)).
  - B(Never back.) A project that uses an IAM role is never moved back to an access key; such a request fails
    before anything is written.
  - B(Cross-account keys.) When the key is in another AWS account than the IAM role, Atlas needs the full key
    ARN. A bare key ID is turned into the ARN when the module finds the key; otherwise it fails and says why.
  - B(Preflight.) Before any write the module checks, with AWS reads, that the key exists, is enabled and is in
    the region; that the Atlas role is authorized and its IAM role's trust policy admits Atlas; and that the
    role's identity policies and the key policy grant C(kms:Encrypt), C(kms:Decrypt) and C(kms:DescribeKey) on
    the key (an explicit Deny wins; wildcards and the conditions Atlas's calls meet count, C(aws:SourceIp)
    against Atlas's control-plane addresses). Every problem is reported at once, each with its fix, and nothing
    is written. RV(preflight) lists every check.
  - After the write, the module waits up to O(valid_timeout) seconds for Atlas to report the key C(valid).
    While IAM changes propagate Atlas answers C(CANNOT_ASSUME_ROLE), C(CLOUD_PROVIDER_ACCESS_ROLE_NOT_AUTHORIZED)
    or C(INVALID_AWS_CREDENTIALS); these are tried again within the same time. If the key does not become valid
    the module fails with the preflight's diagnosis.
  - A run with nothing to change reads Atlas only. If Atlas then reports the key not C(valid), the module runs
    the preflight to diagnose why and fails.
  - With O(state=absent) customer key management is disabled, unless clusters still use it; then the module
    fails and lists them.
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
      - V(present) makes sure encryption at rest with AWS KMS is enabled with the given settings.
      - V(absent) disables it (Atlas removes the settings), only when no cluster of the project uses it.
    type: str
    choices: [present, absent]
    default: present
  customer_master_key_id:
    description:
      - The KMS key Atlas encrypts with, as a key ID, a key ARN, an alias name (C(alias/NAME)) or an alias ARN.
      - An alias is only used to find the key (C(kms:DescribeKey), also with O(preflight=false)); Atlas is given
        the key ID, or the key ARN when an alias ARN was given or the key is in another account than the IAM role.
      - A key ID and the key's ARN count as the same key, so changing one for the other changes nothing.
      - Left out, the project keeps its key.
      - In check mode the placeholder C((known after apply)) from an earlier check-mode task is accepted.
    type: str
  region:
    description:
      - The key's AWS region, as an AWS region name (V(eu-west-2)) or in Atlas's spelling (V(EU_WEST_2)).
        This is also the region of the AWS connection.
      - When O(customer_master_key_id) is an ARN, its region is used and this option must be unset or equal.
      - Left out, the project keeps its region; when enabling, the AWS connection's default region
        (E(AWS_REGION), E(AWS_DEFAULT_REGION), profile) is used.
    type: str
    aliases: [aws_region, ec2_region]
  role_id:
    description:
      - The Atlas cloud provider access role Atlas reaches the key with, by its Atlas ID (24 hexadecimal digits),
        as returned by M(cmk.atlas.cloud_provider_access).
      - The ARN of the IAM role is accepted too and resolved to the project's Atlas role authorized for it.
      - On a project that uses an access key, setting it switches the project to the role; see O(confirm_switch_to_role).
      - Left out, the project keeps its role.
      - In check mode the placeholder C((known after apply)) from an earlier check-mode task is accepted;
        the role checks of the preflight then wait for the real run.
    type: str
  require_private_networking:
    description:
      - Whether Atlas reaches AWS KMS over private networking only.
      - Left out, the setting stays as it is.
    type: bool
  confirm_switch_to_role:
    description:
      - Confirms switching a project from an access key to the IAM role in O(role_id). Atlas cannot switch back.
      - Without it, a run that would switch fails and explains; check mode reports the planned switch with a warning.
    type: bool
    default: false
  deactivate_previous_access_key:
    description:
      - After a switch, once Atlas reports the key C(valid), deactivate (not delete) the IAM access key Atlas used
        before, so that it cannot be used any more.
      - The AWS connection must be able to find the key's IAM user and change it (C(iam:GetAccessKeyLastUsed),
        C(iam:ListAccessKeys), C(iam:UpdateAccessKey) in the account owning the key). This is checked before the switch.
      - Only the run that switches knows the previous key; later runs do nothing for this option.
    type: bool
    default: false
  legacy_access_key_id:
    description:
      - For a project that still reaches its key with an access key and secret, the access key ID it should use.
        A different ID replaces the stored access key (with O(legacy_secret_access_key)); the same ID changes nothing.
      - Refused on a project without encryption at rest (Atlas takes no new credentials-based configurations) and,
        for good, on a project that uses an IAM role. Cannot be combined with O(role_id).
    type: str
  legacy_secret_access_key:
    description:
      - The secret access key of O(legacy_access_key_id). Never logged or shown.
      - Atlas never returns the stored secret, so it is only sent together with a new O(legacy_access_key_id).
    type: str
  preflight:
    description:
      - Whether to check with AWS reads, before writing, that Atlas will be able to use the key (see the description).
      - V(false) skips the AWS reads with a warning; Atlas's own check when the settings are saved remains.
    type: bool
    default: true
  key_owner_assume_role_arn:
    description:
      - An IAM role in the key's account that the AWS credentials may assume, to read a key in another account
        (C(kms:DescribeKey), C(kms:GetKeyPolicy)). A bare key ID that is not in the credentials' account is also
        looked up there.
      - Without it, the key policy of a key in another account is reported as unchecked, not as a failure.
    type: str
  access_changes_pending:
    description:
      - Honoured only in check mode. Says that an earlier task of the same run would change what lets Atlas use
        the key (the IAM role's KMS policy or the key policy, for example a new C(aws:SourceIp) list after a
        cluster node changed its address).
      - Then a C(valid) flag that Atlas reports as false now is shown as a warning with the diagnosis instead of
        failing the run, because the real run may fix it before this module runs. Outside check mode the
        option is ignored, and a key that is not valid fails as always.
    type: bool
    default: false
  valid_timeout:
    description:
      - Seconds to wait after the write for Atlas to report the key C(valid), including retries of the write
        while IAM changes propagate.
      - V(0) writes once and reads once.
    type: int
    default: 300
  validate_certs:
    description:
      - Whether to verify TLS certificates, of the Atlas Admin API and of the AWS endpoints alike.
      - Set to V(false) only for test servers.
    type: bool
    default: true
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.CHECK_MODE_FULL
  - cmk.atlas.attributes.DIFF_MODE_FULL
notes:
  - In check mode the module reads Atlas and AWS as in a real run (preflight included) and reports exactly the
    change it would make; RV(encryption_at_rest.valid) is then null, as only Atlas can tell.
  - The changed status is true exactly when the module writes to Atlas (or would, in check mode). A run with
    nothing to change sends no write request.
  - The AWS reads need C(sts:GetCallerIdentity), C(kms:DescribeKey), C(kms:GetKeyPolicy), C(iam:GetRole),
    C(iam:ListRolePolicies), C(iam:GetRolePolicy), C(iam:ListAttachedRolePolicies), C(iam:GetPolicy) and
    C(iam:GetPolicyVersion). A check that cannot be made (access denied, a condition key whose value Atlas's
    calls do not fix, a role or key in another account) is reported as unchecked with a warning, not as a failure.
  - The preflight checks C(aws:SourceIp) conditions against Atlas's control-plane outbound addresses only. Atlas
    also reaches the key from the cluster nodes; their addresses are not checked here.
  - The Atlas and AWS credentials, the legacy secret access key and the secret Atlas stores are never shown in
    results, diffs, warnings or errors. The diff shows an access key's ID and C(secret_access_key) as C((hidden)).
seealso:
  - module: cmk.atlas.encryption_at_rest_info
  - module: cmk.atlas.cloud_provider_access
  - module: cmk.atlas.kms_key_policy
  - name: Customer key management with AWS KMS (MongoDB Atlas documentation)
    description: Enabling role-based access to the key, and switching from credentials to a role.
    link: https://www.mongodb.com/docs/atlas/security-aws-kms/
"""

EXAMPLES = r"""
- name: Enable encryption at rest with a key and the Atlas role authorized for the IAM role
  cmk.atlas.encryption_at_rest:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    customer_master_key_id: alias/atlas-cmk
    region: eu-west-2
    role_id: "{{ atlas_role.role_id }}"

- name: Use a key in another AWS account (Atlas gets the key ARN); read its key policy there
  cmk.atlas.encryption_at_rest:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    customer_master_key_id: arn:aws:kms:eu-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
    role_id: arn:aws:iam::111111111111:role/atlas-kms
    key_owner_assume_role_arn: arn:aws:iam::222222222222:role/key-admin

- name: Switch a project from its access key to the IAM role (cannot be undone), then deactivate the old key
  cmk.atlas.encryption_at_rest:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    role_id: 32b6e34b3d91647abb20e7b8
    confirm_switch_to_role: true
    deactivate_previous_access_key: true
  register: switch

- name: Disable customer key management (fails while clusters use it)
  cmk.atlas.encryption_at_rest:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    state: absent
"""

RETURN = r"""
project_id:
  description: ID of the Atlas project.
  returned: always
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
encryption_at_rest:
  description: The project's AWS KMS settings after the run (predicted in check mode).
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
      description: ID of the Atlas cloud provider access role in use; null unless O(state=present) with a role.
      type: str
      sample: 32b6e34b3d91647abb20e7b8
    iam_role_arn:
      description: ARN of the IAM role that Atlas role is authorized for.
      type: str
      sample: arn:aws:iam::111111111111:role/atlas-kms
    access_key_id:
      description: The access key ID Atlas uses when RV(encryption_at_rest.access_method=credentials); the secret is never returned.
      type: str
      sample: AKIAIOSFODNN7EXAMPLE
    require_private_networking:
      description: Whether Atlas reaches KMS over private networking only.
      type: bool
      sample: false
    valid:
      description: Whether Atlas reports that it can encrypt and decrypt with the key; null in check mode when the settings would change.
      type: bool
      sample: true
preflight:
  description:
    - The checks made before writing (or to diagnose C(valid=false)), in order; empty when none ran.
    - Names are V(key_exists), V(key_state), V(key_region), V(key_arn), V(role_authorized), V(role_trust),
      V(role_policy), V(key_policy), V(source_ip), V(credentials) and V(previous_access_key).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: What was checked.
      type: str
      sample: role_policy
    ok:
      description: True when it passed, false for a problem Atlas would refuse, null when it could not be checked.
      type: bool
      sample: true
    message:
      description: What was found.
      type: str
    fix:
      description: What to do about it; null when RV(preflight[].ok) is true.
      type: str
switched_to_role:
  description: Whether the run switched the project from an access key to an IAM role (or would, in check mode).
  returned: always
  type: bool
  sample: false
previous_access_key_id:
  description: The access key ID Atlas used before the switch (an ID, not a secret).
  returned: when RV(switched_to_role) is true
  type: str
  sample: AKIAIOSFODNN7EXAMPLE
previous_access_key_deactivated:
  description: Whether that access key was deactivated (O(deactivate_previous_access_key)).
  returned: when RV(switched_to_role) is true
  type: bool
  sample: true
clusters_using:
  description: Names of the project's clusters whose encryption at rest provider is C(AWS).
  returned: always
  type: list
  elements: str
  sample: [Cluster0]
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, CmkAtlasModule, ModuleInputError, diff_of, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import (
    ACCESS_CREDENTIALS,
    ACCESS_ROLE,
    CREDENTIALS_DEPRECATED,
    DEFAULT_VALID_TIMEOUT,
    Desired,
    EncryptionAtRestApi,
    NeverBackError,
    Preflight,
    Target,
    atlas_region,
    clusters_using,
    deactivate_access_key,
    describe_checks,
    diff_view,
    encryption_role,
    failed,
    never_back_message,
    normalize,
    plan_absent,
    plan_present,
    resolve_role,
    role_account,
    transient,
    unchecked,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import key_ref
from ansible_collections.cmk.atlas.plugins.module_utils.aws.regions import to_aws_region

ARGUMENT_SPEC = {
    "project_id": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "customer_master_key_id": {"type": "str"},
    "role_id": {"type": "str"},
    "require_private_networking": {"type": "bool"},
    "confirm_switch_to_role": {"type": "bool", "default": False},
    "deactivate_previous_access_key": {"type": "bool", "default": False},
    "legacy_access_key_id": {"type": "str", "no_log": False},
    "legacy_secret_access_key": {"type": "str", "no_log": True},
    "preflight": {"type": "bool", "default": True},
    "key_owner_assume_role_arn": {"type": "str", "no_log": False},
    "valid_timeout": {"type": "int", "default": DEFAULT_VALID_TIMEOUT},
    "access_changes_pending": {"type": "bool", "default": False},
}
MUTUALLY_EXCLUSIVE = [["role_id", "legacy_access_key_id"]]
REQUIRED_TOGETHER = [["legacy_access_key_id", "legacy_secret_access_key"]]
# Options that only mean something with state=present.
PRESENT_ONLY = (
    "customer_master_key_id",
    "role_id",
    "require_private_networking",
    "legacy_access_key_id",
    "confirm_switch_to_role",
    "deactivate_previous_access_key",
    "key_owner_assume_role_arn",
)
_HEADER = "Atlas encryption at rest, AWS KMS (project {})"


class Run:
    """One run of the module: the options, Atlas's current state and the connections, built as needed."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.project_id = validate_project_id(self.params["project_id"])
        if self.params["valid_timeout"] < 0:
            raise ModuleInputError(f"valid_timeout is {self.params['valid_timeout']}; it must be 0 (write and read once) or more seconds, such as 300")
        self.api = EncryptionAtRestApi(module.atlas, self.project_id, log=module.module.debug)
        self.roles = self.api.roles()
        self.current = normalize(self.api.get(), self.roles)
        self.using = clusters_using(self.api.clusters())
        self._preflight = None

    @property
    def preflight(self):
        """The preflight reader; the AWS connections are built on first use, so a run without AWS reads needs no boto3."""
        if self._preflight is None:
            aws = self.module.aws
            owner = None
            if self.params["key_owner_assume_role_arn"]:
                owner = aws.derive(assume_role_arn=self.params["key_owner_assume_role_arn"], assume_role_external_id=None)
            self._preflight = Preflight(aws, owner, self.api.control_plane_addresses)
        return self._preflight

    def fresh_preflight(self):
        self._preflight = None
        return self.preflight

    def result(self, config, checks=(), switched=False, **extra):
        result = {
            "project_id": self.project_id,
            "encryption_at_rest": config,
            "preflight": list(checks),
            "switched_to_role": switched,
            "clusters_using": self.using,
        }
        result.update(extra)
        return result

    def diff(self, before, after):
        header = _HEADER.format(self.project_id)
        return diff_of(diff_view(before), diff_view(after), header, header)

    def fail(self, msg, changed=False, **result):
        self.module.module.fail_json(msg=msg, changed=changed, **result)


def _key_option(run):
    value = run.params["customer_master_key_id"]
    if value is None:
        return None, None
    if not run.module.known("customer_master_key_id", value):
        return UNKNOWN, None
    return value, key_ref(value, "customer_master_key_id")


def _default_region(run):
    """The AWS connection's region, for a first enable without a region."""
    aws = run.module.aws
    if aws.region:
        return aws.region
    try:
        return aws.session.region_name
    except AwsError:
        return None


def present(run):
    params = run.params
    current = run.current
    role, role_id, warnings = resolve_role(run.roles, _role_option(run), run.check_mode, run.project_id)
    for warning in warnings:
        run.module.warn(warning)
    effective_role = role if role_id is not None else (encryption_role(run.roles, current["role_id"]) if current["access_method"] == ACCESS_ROLE else None)

    key, ref = _key_option(run)
    region_option = to_aws_region(params["region"], "region") if params["region"] is not None else None
    metadata = None
    if ref is not None and ref.alias:
        lookup_region = ref.region or region_option or current["aws_region"] or _default_region(run)
        metadata, _connection, problem = run.preflight.lookup_key(ref, lookup_region)
        if metadata is None:
            check_item = {"name": "key_exists", "ok": False, "message": problem[1], "fix": "check customer_master_key_id, region and the AWS credentials"}
            run.fail(
                f"customer_master_key_id {key} could not be resolved to a KMS key; nothing was changed. {describe_checks([check_item])}", preflight=[check_item]
            )
        key = metadata["key_arn"] if ref.kind == "alias_arn" else metadata["key_id"]

    if region_option is not None:
        region = region_option
    elif ref is not None and ref.region:
        region = ref.region
    elif metadata is not None:
        region = metadata["region"]
    elif not current["enabled"] and key is not None:
        region = _default_region(run)
    else:
        region = None
    if not params["preflight"] and ref is not None and ref.region and region_option and ref.region != region_option:
        raise ModuleInputError(
            f"customer_master_key_id {key} is in region {ref.region}, but region is {region_option}; leave region unset or set it to {ref.region}"
        )

    desired = Desired(
        key=key,
        region=atlas_region(region),
        role_id=role_id,
        require_private_networking=params["require_private_networking"],
        access_key_id=params["legacy_access_key_id"],
        secret_access_key=params["legacy_secret_access_key"],
    )
    principal_role = effective_role
    principal_account = role_account(principal_role)
    plan = plan_present(current, desired, params["confirm_switch_to_role"], run.check_mode, principal_account, role)
    for warning in plan.warnings:
        run.module.warn(warning)

    deactivate = params["deactivate_previous_access_key"] and plan.switch
    changes = bool(plan.body)
    diagnose = not changes and current["enabled"] and current["valid"] is False
    checks = []
    owner = None
    if params["preflight"] and (changes or diagnose):
        target = _target(current, plan, desired, region_option, principal_role, role_id, deactivate)
        outcome = run.preflight.run(target)
        checks = outcome.checks
        owner = outcome.access_key_owner
        if outcome.key is not None and outcome.key != target.key and not diagnose:
            desired = desired._replace(key=outcome.key)
            plan = plan_present(current, desired, params["confirm_switch_to_role"], run.check_mode, principal_account, role)
        problems = failed(checks)
        if problems and not diagnose:
            run.fail(
                f"Preflight found {len(problems)} problem(s) that would keep Atlas from using the key; nothing was changed. {describe_checks(problems)}",
                **run.result(current, checks),
            )
        for item in unchecked(checks):
            run.module.warn(f"preflight {item['name']} not checked: {item['message']}")
    elif changes and not params["preflight"]:
        run.module.warn("preflight is false: Atlas will be given the settings without checking the key, the role and their policies first")
        if deactivate:
            owner = run.preflight.previous_access_key(current["access_key_id"], checks)
            if failed(checks):
                run.fail(
                    f"The previous access key cannot be deactivated; nothing was changed. {describe_checks(failed(checks))}", **run.result(current, checks)
                )

    if diagnose:
        found = failed(checks) + unchecked(checks)
        diagnosis = describe_checks(found) if found else _no_cause(params["preflight"])
        if run.check_mode and params["access_changes_pending"]:
            # A permission change planned earlier in this run may be what makes the key usable again.
            run.module.warn(f"Atlas reports the key not valid now; an earlier task would change its permissions first. {diagnosis}")
        else:
            run.fail(
                f"Atlas reports the project's AWS KMS settings as not valid (valid: false): Atlas cannot use the key now. {diagnosis}",
                **run.result(current, checks),
            )

    extra = {}
    if plan.switch:
        extra["previous_access_key_id"] = current["access_key_id"]
        extra["previous_access_key_deactivated"] = False
    if not plan.body:
        run.module.exit(False, diff=run.diff(current, current), **run.result(current, checks, **extra))
    if run.check_mode:
        if deactivate:
            extra["previous_access_key_deactivated"] = True
        run.module.exit(True, diff=run.diff(current, plan.after), **run.result(plan.after, checks, plan.switch, **extra))

    after = apply(run, plan, checks, desired, principal_role, role_id, region_option)
    if deactivate and owner:
        try:
            deactivate_access_key(run.module.aws, owner, current["access_key_id"])
        except AwsError as exc:
            run.fail(
                f"The project now uses IAM role {after['role_id']} and Atlas reports the key valid, but access key {current['access_key_id']} "
                f"of IAM user {owner} could not be deactivated: {exc}. Deactivate it yourself (aws iam update-access-key --status Inactive).",
                changed=True,
                diff=run.diff(current, after),
                **run.result(after, checks, plan.switch, **extra),
            )
        extra["previous_access_key_deactivated"] = True
    run.module.exit(True, diff=run.diff(current, after), **run.result(after, checks, plan.switch, **extra))


def _role_option(run):
    value = run.params["role_id"]
    if value is None:
        return None
    if not run.module.known("role_id", value):
        return UNKNOWN
    return value


def _target(current, plan, desired, region_option, role, role_id, deactivate):
    after = plan.after
    key = desired.key if desired.key is not None else current["customer_master_key_id"]
    principal = ACCESS_CREDENTIALS if after["access_method"] == ACCESS_CREDENTIALS else ACCESS_ROLE
    return Target(
        key=key,
        region=after["aws_region"],
        region_option=region_option,
        role=role,
        role_id=role_id if role_id is not None else current["role_id"],
        principal=principal,
        private_networking=bool(after["require_private_networking"]),
        previous_access_key_id=current["access_key_id"] if deactivate else None,
    )


def _no_cause(preflight):
    if not preflight:
        return "The preflight is off (preflight: false), so the cause was not looked for."
    return (
        "The preflight found no cause from Atlas's control plane: check what it cannot see, such as aws:SourceIp conditions that exclude "
        "the cluster nodes' public addresses, service control policies, or a change made since."
    )


def apply(run, plan, checks, desired, role, role_id, region_option):
    """PATCH, then wait for valid: true; fail with the diagnosis when Atlas refuses or the key does not become valid."""
    current = run.current
    timeout = run.params["valid_timeout"]
    started = run.api.clock()
    try:
        answer = run.api.update(plan.body, timeout)
    except AtlasApiError as error:
        if error.error_code == CREDENTIALS_DEPRECATED:
            raise NeverBackError(never_back_message(current)) from None
        if not transient(error):
            raise
        diagnosis = diagnose(run, plan, desired, role, role_id, region_option)
        run.module.module.fail_json(
            msg=f"{error} Nothing was changed. {diagnosis}",
            atlas_error=error.as_dict(),
            changed=False,
            **run.result(current, checks),
        )
    remaining = timeout - (run.api.clock() - started)
    final = run.api.wait_valid(remaining, answer)
    # Atlas may leave roleId out; the role's feature usages then name it, as they are after the write.
    roles = run.roles if final.get("roleId") or not final.get("enabled") else run.api.roles()
    after = normalize(final, roles)
    if after["valid"] is not True:
        diagnosis = diagnose(run, plan, desired, role, role_id, region_option)
        run.fail(
            f"Atlas saved the settings but does not report the key valid after {timeout} s (valid: {after['valid']}). {diagnosis}",
            changed=True,
            diff=run.diff(current, after),
            **run.result(after, checks, plan.switch),
        )
    return after


def diagnose(run, plan, desired, role, role_id, region_option):
    """A fresh preflight of the settings just written, as text for a failure message."""
    if not run.params["preflight"]:
        return _no_cause(False)
    target = _target(run.current, plan, desired, region_option, role, role_id, False)
    checks = run.fresh_preflight().run(target).checks
    found = failed(checks) + unchecked(checks)
    return ("Preflight now finds: " + describe_checks(found)) if found else _no_cause(True)


def absent(run):
    for name in PRESENT_ONLY:
        value = run.params[name]
        if value not in (None, False):
            run.module.warn(f"{name} is ignored with state=absent")
    current = run.current
    plan = plan_absent(current, run.using)
    if not plan.body:
        run.module.exit(False, diff=run.diff(current, current), **run.result(current))
    after = plan.after
    if not run.check_mode:
        answer = run.api.update(plan.body, 0)
        after = normalize(answer, run.roles)
    run.module.exit(True, diff=run.diff(current, after), **run.result(after))


def main_logic(module):
    run = Run(module)
    if module.params["state"] == "absent":
        absent(run)
    else:
        present(run)


def main():
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True, aws=True, mutually_exclusive=MUTUALLY_EXCLUSIVE, required_together=REQUIRED_TOGETHER)
    module.run(main_logic)


if __name__ == "__main__":
    main()
