# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    # AWS connection options; names and aliases follow amazon.aws so module_defaults carry over.
    DOCUMENTATION = r"""
options:
  access_key:
    description:
      - AWS access key ID.
      - Must be given together with O(secret_key); cannot be combined with O(profile).
      - When unset, boto3's standard credential chain is used (environment variables
        E(AWS_ACCESS_KEY_ID), E(AWS_SECRET_ACCESS_KEY), E(AWS_SESSION_TOKEN), E(AWS_PROFILE),
        shared configuration files, container or instance credentials).
    type: str
    aliases: [aws_access_key_id, aws_access_key, ec2_access_key]
  secret_key:
    description:
      - AWS secret access key. Never logged or shown in messages.
      - Must be given together with O(access_key).
    type: str
    aliases: [aws_secret_access_key, aws_secret_key, ec2_secret_key]
  session_token:
    description:
      - AWS STS session token for temporary credentials, used with O(access_key) and O(secret_key).
      - Never logged or shown in messages.
    type: str
    aliases: [aws_session_token, security_token, aws_security_token]
  profile:
    description:
      - Named profile from the AWS shared configuration files.
      - Cannot be combined with O(access_key), O(secret_key) or O(session_token).
      - When unset, boto3 reads E(AWS_PROFILE).
    type: str
    aliases: [aws_profile]
  region:
    description:
      - AWS region, such as V(us-east-1). The Atlas spelling (V(US_EAST_1)) is accepted too.
      - When unset, E(AWS_REGION), then E(AWS_DEFAULT_REGION) and the profile's region are used.
      - IAM is global; the region matters for KMS and STS.
    type: str
    aliases: [aws_region, ec2_region]
  endpoint_url:
    description:
      - URL to send every AWS request to (IAM, KMS and STS alike) instead of the AWS endpoints,
        for example V(http://127.0.0.1:5000) for a local AWS emulator.
      - Must be an absolute C(http) or C(https) URL.
    type: str
    aliases: [aws_endpoint_url, ec2_url]
  validate_certs:
    description:
      - Whether to verify the TLS certificates of AWS endpoints.
      - Prefer O(aws_ca_bundle) over turning this off.
    type: bool
    default: true
  aws_ca_bundle:
    description:
      - Path of a PEM bundle of CA certificates to verify AWS endpoints with.
      - When unset, boto3 reads E(AWS_CA_BUNDLE).
    type: path
  assume_role_arn:
    description:
      - ARN of an IAM role to assume (once, with STS AssumeRole) before any other call, for acting
        in another AWS account, for example the account that owns the KMS key.
      - The credentials above must be allowed to assume it.
    type: str
  assume_role_external_id:
    description:
      - External ID to send when assuming O(assume_role_arn), if its trust policy requires one.
    type: str
  assume_role_session_name:
    description:
      - Session name for O(assume_role_arn); it appears in the role's CloudTrail entries.
    type: str
    default: cmk-atlas
requirements:
  - boto3 >= 1.28.0
  - botocore >= 1.31.0
notes:
  - AWS calls are retried in botocore's standard retry mode (throttling, transient errors).
  - Environment variables and shared configuration files are read on the host the module runs on.
"""

    # For a module that does not talk to AWS: the options are accepted so that one module_defaults
    # for group/cmk.atlas.atlas serves every module. validate_certs comes with the Atlas options.
    IGNORED = r"""
options:
  access_key:
    description:
      - Accepted and ignored; this module does not talk to AWS. Every module of the collection takes the AWS
        connection options, so that one C(module_defaults) for C(group/cmk.atlas.atlas) serves them all.
    type: str
    aliases: [aws_access_key_id, aws_access_key, ec2_access_key]
  secret_key:
    description:
      - Accepted and ignored, like O(access_key). Never logged.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key, ec2_secret_key]
  session_token:
    description:
      - Accepted and ignored, like O(access_key). Never logged.
    type: str
    aliases: [aws_session_token, security_token, aws_security_token]
  profile:
    description:
      - Accepted and ignored, like O(access_key).
    type: str
    aliases: [aws_profile]
  region:
    description:
      - Accepted and ignored, like O(access_key).
    type: str
    aliases: [aws_region, ec2_region]
  endpoint_url:
    description:
      - Accepted and ignored, like O(access_key).
    type: str
    aliases: [aws_endpoint_url, ec2_url]
  aws_ca_bundle:
    description:
      - Accepted and ignored, like O(access_key).
    type: path
  assume_role_arn:
    description:
      - Accepted and ignored, like O(access_key).
    type: str
  assume_role_external_id:
    description:
      - Accepted and ignored, like O(access_key).
    type: str
  assume_role_session_name:
    description:
      - Accepted and ignored, like O(access_key).
    type: str
"""
