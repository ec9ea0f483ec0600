# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS connection options, boto3 sessions and clients, and readable AWS error messages.

Option names and aliases follow amazon.aws so that ``module_defaults`` carry over. Options that
are unset are left to boto3's standard chain (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``, ...).
boto3 is imported only when the first client is built, so importing this file never needs it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import traceback
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError, is_region_name, parse_role_arn
from ansible_collections.cmk.atlas.plugins.module_utils.aws.regions import RegionError, to_aws_region
from ansible_collections.cmk.atlas.plugins.module_utils.version import COLLECTION_NAME, COLLECTION_VERSION

DEFAULT_MAX_ATTEMPTS = 6
"""Attempts per AWS call, the first included (botocore standard retry mode)."""
DEFAULT_SESSION_NAME = "cmk-atlas"
USER_AGENT_EXTRA = f"{COLLECTION_NAME}/{COLLECTION_VERSION}"

# sts:AssumeRole limits, checked here so a typo fails before any call.
_SESSION_NAME_RE = re.compile(r"^[A-Za-z0-9_+=,.@-]{2,64}$")
_EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$")

_REDACTED = "********"

# Option name -> how messages name it (with the alias users coming from amazon.aws type).
_OPTION_LABELS = {
    "access_key": "access_key (aws_access_key_id)",
    "secret_key": "secret_key (aws_secret_access_key)",
    "session_token": "session_token (aws_session_token)",
    "profile": "profile (aws_profile)",
    "region": "region (aws_region)",
    "endpoint_url": "endpoint_url (aws_endpoint_url)",
}

AWS_OPTION_NAMES = (
    "access_key",
    "secret_key",
    "session_token",
    "profile",
    "region",
    "endpoint_url",
    "validate_certs",
    "aws_ca_bundle",
    "assume_role_arn",
    "assume_role_external_id",
    "assume_role_session_name",
)

AWS_REQUIRED_TOGETHER = [["access_key", "secret_key"]]
AWS_MUTUALLY_EXCLUSIVE = [["profile", "access_key"], ["profile", "secret_key"], ["profile", "session_token"]]


def aws_argument_spec():
    """The AWS connection options every AWS module merges into its argument spec."""
    return dict(
        access_key=dict(type="str", aliases=["aws_access_key_id", "aws_access_key", "ec2_access_key"], no_log=False),
        secret_key=dict(type="str", aliases=["aws_secret_access_key", "aws_secret_key", "ec2_secret_key"], no_log=True),
        session_token=dict(type="str", aliases=["aws_session_token", "security_token", "aws_security_token"], no_log=True),
        profile=dict(type="str", aliases=["aws_profile"]),
        region=dict(type="str", aliases=["aws_region", "ec2_region"]),
        endpoint_url=dict(type="str", aliases=["aws_endpoint_url", "ec2_url"]),
        validate_certs=dict(type="bool", default=True),
        aws_ca_bundle=dict(type="path"),
        assume_role_arn=dict(type="str"),
        assume_role_external_id=dict(type="str", no_log=False),
        assume_role_session_name=dict(type="str", default=DEFAULT_SESSION_NAME),
    )


class AwsOptionError(CmkAtlasError, ValueError):
    """An AWS connection option is missing, malformed or contradicts another; found before any call."""


class AwsDependencyError(CmkAtlasError, ImportError):
    """boto3 or botocore cannot be imported. ``traceback`` holds the import failure for fail_json."""

    def __init__(self, message, tb=None):
        super().__init__(message)
        self.traceback = tb


class AwsError(CmkAtlasError):
    """An AWS call failed. The message is safe to show: it never contains credentials."""

    def __init__(self, message, code=None, service=None, operation=None, status_code=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.service = service
        self.operation = operation
        self.status_code = status_code


def _import_boto3():
    # Imported here, not at the top: modules that never build a client must not need boto3.
    try:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    except ImportError:
        raise AwsDependencyError(missing_required_lib("boto3"), traceback.format_exc()) from None
    return boto3, Config, (BotoCoreError, ClientError)


# -- error messages --------------------------------------------------------------------------


def _redact(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def safe_url(url):
    """``url`` without any user:password part, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" in parts.netloc:
        parts = parts._replace(netloc=_REDACTED + "@" + parts.netloc.rpartition("@")[2])
    return urlunsplit(parts)


def _class_names(exc):
    # By name, so that describing an error never needs botocore importable.
    return {cls.__name__ for cls in type(exc).__mro__}


def describe_aws_error(exc, operation=None, secrets=()):
    """A clear, secret-free message for an exception from boto3 or botocore.

    ``operation`` is ``service:Operation`` (e.g. ``iam:GetRole``) where known. Client errors read
    ``AWS iam:GetRole failed: NoSuchEntity: <AWS message>``; setup errors name the options and
    environment variables to set. Any string in ``secrets`` is replaced in the result.
    """
    if isinstance(exc, AwsError):
        return _redact(str(exc), secrets)
    names = _class_names(exc)
    label = operation or getattr(exc, "operation_name", None) or "call"
    kwargs = getattr(exc, "kwargs", None) or {}
    endpoint = safe_url(str(kwargs.get("endpoint_url", "")))
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        error = response["Error"]
        code = error.get("Code") or "Unknown"
        message = error.get("Message") or error.get("message") or "no message"
        text = f"AWS {label} failed: {code}: {message}"
    elif "NoCredentialsError" in names:
        text = (
            f"AWS {label} failed: no AWS credentials found; set access_key and secret_key (aws_access_key_id, aws_secret_access_key) "
            "or profile (aws_profile), or the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        )
    elif "PartialCredentialsError" in names:
        text = f"AWS {label} failed: incomplete AWS credentials ({exc}); set both access_key and secret_key, or neither"
    elif "NoRegionError" in names:
        text = f"AWS {label} failed: no AWS region is set; set region (aws_region) or the environment variable AWS_REGION or AWS_DEFAULT_REGION, e.g. us-east-1"
    elif "ProfileNotFound" in names:
        text = (
            f"AWS profile '{kwargs.get('profile', '')}' not found; check profile (aws_profile) or AWS_PROFILE "
            "and the files ~/.aws/config and ~/.aws/credentials (or AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)"
        )
    elif "SSLError" in names:
        text = (
            f"AWS {label} failed: TLS certificate verification failed for {endpoint}; "
            "set aws_ca_bundle (or AWS_CA_BUNDLE) to the CA that signed it, or check endpoint_url (aws_endpoint_url)"
        )
    elif "EndpointConnectionError" in names or "ConnectTimeoutError" in names:
        text = (
            f"AWS {label} failed: could not connect to {endpoint}; check endpoint_url (aws_endpoint_url), "
            "region (aws_region) and the network or proxy settings (HTTPS_PROXY)"
        )
    elif "HTTPClientError" in names:
        text = f"AWS {label} failed: the connection to {endpoint} broke ({type(exc).__name__}); the call may be retried"
    elif "ParamValidationError" in names:
        text = f"AWS {label} failed: invalid request parameters: {kwargs.get('report', exc)}"
    else:
        text = f"AWS {label} failed: {type(exc).__name__}: {exc}"
    return _redact(text, secrets)


def _error_code(exc):
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return code, status
    return type(exc).__name__, None


# -- option validation -----------------------------------------------------------------------


def _label(name):
    return _OPTION_LABELS.get(name, name)


def _clean(params):
    """The AWS options from module params; empty strings (e.g. from templated defaults) count as unset."""
    result = {}
    for name in AWS_OPTION_NAMES:
        value = params.get(name)
        if isinstance(value, str) and not value.strip():
            value = None
        result[name] = value
    if result["validate_certs"] is None:
        result["validate_certs"] = True
    if result["assume_role_session_name"] is None:
        result["assume_role_session_name"] = DEFAULT_SESSION_NAME
    return result


def _resolve_region(value, source):
    """An AWS region name from an AWS (us-east-1) or Atlas (US_EAST_1) spelling."""
    if is_region_name(value):
        return value
    try:
        return to_aws_region(value, source)
    except RegionError:
        raise AwsOptionError(f"{source} '{value}' is not an AWS region name; expected e.g. us-east-1 or eu-west-2") from None


def validate_endpoint_url(url, option="endpoint_url (aws_endpoint_url)"):
    """Return ``url`` when it is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        valid = False
    else:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    if not valid:
        raise AwsOptionError(
            f"{option} '{safe_url(url)}' is not a valid URL; expected http(s)://HOST[:PORT], e.g. https://kms.us-east-1.amazonaws.com or http://127.0.0.1:5000"
        )
    return url


def validate_aws_params(params, environ=None):
    """Check the AWS options offline; return them cleaned, with ``region`` resolved. Raise AwsOptionError."""
    environ = os.environ if environ is None else environ
    opts = _clean(params)
    for name in AWS_OPTION_NAMES:
        value = opts[name]
        expected = bool if name == "validate_certs" else str
        if value is not None and not isinstance(value, expected):
            raise AwsOptionError(f"{_label(name)} must be a {expected.__name__}, not {type(value).__name__}")

    has_access, has_secret = opts["access_key"] is not None, opts["secret_key"] is not None
    if has_access != has_secret:
        missing = "secret_key (aws_secret_access_key)" if has_access else "access_key (aws_access_key_id)"
        raise AwsOptionError(
            f"{missing} is missing: access_key and secret_key must be given together; give neither to use profile or the AWS_* environment variables"
        )
    if opts["session_token"] is not None and not has_access:
        raise AwsOptionError("session_token (aws_session_token) needs access_key and secret_key: it belongs to temporary credentials")
    if opts["profile"] is not None and (has_access or opts["session_token"] is not None):
        raise AwsOptionError("profile (aws_profile) cannot be combined with access_key, secret_key or session_token; choose one way to authenticate")

    if opts["region"] is not None:
        opts["region"] = _resolve_region(opts["region"], "region (aws_region)")
    elif environ.get("AWS_REGION"):
        # botocore reads AWS_DEFAULT_REGION but not AWS_REGION, which amazon.aws users rely on.
        opts["region"] = _resolve_region(environ["AWS_REGION"], "environment variable AWS_REGION")

    if opts["endpoint_url"] is not None:
        validate_endpoint_url(opts["endpoint_url"])
    if opts["aws_ca_bundle"] is not None and not os.path.isfile(opts["aws_ca_bundle"]):
        raise AwsOptionError(f"aws_ca_bundle '{opts['aws_ca_bundle']}' is not a file; expected the path of a PEM CA bundle")

    if opts["assume_role_arn"] is not None:
        try:
            parse_role_arn(opts["assume_role_arn"], "assume_role_arn")
        except ArnError as exc:
            raise AwsOptionError(str(exc)) from None
    elif opts["assume_role_external_id"] is not None:
        raise AwsOptionError("assume_role_external_id needs assume_role_arn: the external id is sent when assuming that role")
    if opts["assume_role_external_id"] is not None and not _EXTERNAL_ID_RE.match(opts["assume_role_external_id"]):
        raise AwsOptionError("assume_role_external_id is not valid; expected 2-1224 characters of letters, digits and +=,.@:/-")
    if not _SESSION_NAME_RE.match(opts["assume_role_session_name"]):
        raise AwsOptionError(
            f"assume_role_session_name '{opts['assume_role_session_name']}' is not valid; expected 2-64 characters of letters, digits and +=,.@_-"
        )
    return opts


# -- connection ------------------------------------------------------------------------------


class AwsConnection:
    """Builds and caches boto3 clients for one set of AWS options (one account, one identity).

    Options are checked when the object is made; nothing touches the network until the first
    call. With ``assume_role_arn`` the role is assumed once, on first use, and every client then
    acts in the role's account. ``call_counts`` counts API calls by ``service:Operation`` and
    ``retry_counts`` the retries botocore made for them; connections made with ``derive`` share both.
    """

    def __init__(self, params, max_attempts=DEFAULT_MAX_ATTEMPTS, call_counts=None, retry_counts=None, environ=None):
        self._opts = validate_aws_params(params, environ)
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise AwsOptionError(f"max_attempts must be a positive integer, not {max_attempts!r}")
        self.max_attempts = max_attempts
        self.call_counts = Counter() if call_counts is None else call_counts
        self.retry_counts = Counter() if retry_counts is None else retry_counts
        self._secrets = [value for value in (self._opts["secret_key"], self._opts["session_token"]) if value]
        self._session = None
        self._clients = {}
        self._identity = None
        self._modules = None

    def __repr__(self):
        opts = self._opts
        if opts["access_key"]:
            credentials = "options"
        elif opts["profile"]:
            credentials = f"profile {opts['profile']}"
        else:
            credentials = "default chain"
        endpoint = safe_url(opts["endpoint_url"]) if opts["endpoint_url"] else None
        return f"AwsConnection(region={opts['region']!r}, endpoint_url={endpoint!r}, credentials={credentials!r}, assume_role_arn={opts['assume_role_arn']!r})"

    @property
    def region(self):
        """The region from the options (or AWS_REGION); None leaves it to boto3's chain."""
        return self._opts["region"]

    @property
    def endpoint_url(self):
        return self._opts["endpoint_url"]

    @property
    def assume_role_arn(self):
        return self._opts["assume_role_arn"]

    def derive(self, **overrides):
        """Another connection with some options changed (e.g. another role for the key owner's account), sharing the counters."""
        params = dict(self._opts)
        params.update(overrides)
        return AwsConnection(params, self.max_attempts, self.call_counts, self.retry_counts)

    def describe_error(self, exc, operation=None):
        """describe_aws_error with this connection's secrets (and assumed-role credentials) redacted."""
        return describe_aws_error(exc, operation, self._secrets)

    # boto3 plumbing

    def _boto(self):
        if self._modules is None:
            self._modules = _import_boto3()
        return self._modules

    def _config(self):
        config_class = self._boto()[1]
        return config_class(retries={"mode": "standard", "total_max_attempts": self.max_attempts}, user_agent_extra=USER_AGENT_EXTRA)

    def _verify(self):
        if not self._opts["validate_certs"]:
            return False
        return self._opts["aws_ca_bundle"]

    def _new_client(self, session, service, region):
        client = session.client(
            service,
            region_name=region,
            endpoint_url=self._opts["endpoint_url"],
            verify=self._verify(),
            config=self._config(),
        )
        client.meta.events.register("before-call", self._count_call)
        client.meta.events.register("after-call", self._count_retries)
        return client

    def _count_call(self, model=None, **_kwargs):
        self.call_counts[f"{model.service_model.service_name}:{model.name}"] += 1

    def _count_retries(self, model=None, parsed=None, **_kwargs):
        attempts = ((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts") or 0
        if attempts:
            self.retry_counts[f"{model.service_model.service_name}:{model.name}"] += attempts

    def _wrap(self, exc, service, operation, label=None):
        code, status = _error_code(exc)
        return AwsError(self.describe_error(exc, label or f"{service}:{operation}"), code, service, operation, status)

    def _base_session(self):
        boto3, _config, errors = self._boto()
        opts = self._opts
        try:
            return boto3.session.Session(
                aws_access_key_id=opts["access_key"],
                aws_secret_access_key=opts["secret_key"],
                aws_session_token=opts["session_token"],
                profile_name=opts["profile"],
                region_name=opts["region"],
            )
        except errors as exc:
            raise self._wrap(exc, None, None, "session setup") from None

    @property
    def session(self):
        """The boto3 session, in the assumed role's account when assume_role_arn is set."""
        if self._session is None:
            session = self._base_session()
            if self._opts["assume_role_arn"]:
                session = self._assume_role(session)
            self._session = session
        return self._session

    def _assume_role(self, base):
        boto3, _config, errors = self._boto()
        opts = self._opts
        request = {"RoleArn": opts["assume_role_arn"], "RoleSessionName": opts["assume_role_session_name"]}
        if opts["assume_role_external_id"]:
            request["ExternalId"] = opts["assume_role_external_id"]
        try:
            sts = self._new_client(base, "sts", opts["region"] or base.region_name)
            credentials = sts.assume_role(**request)["Credentials"]
        except errors as exc:
            raise self._wrap(exc, "sts", "AssumeRole") from None
        # The temporary credentials are as secret as the long-term ones.
        self._secrets.extend([credentials["SecretAccessKey"], credentials["SessionToken"]])
        return boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=opts["region"] or base.region_name,
        )

    def client(self, service, region=None):
        """A cached boto3 client for ``service`` in ``region`` (default: the connection's region)."""
        if region is not None:
            region = _resolve_region(region, "region")
        session = self.session
        region = region or self._opts["region"] or session.region_name
        key = (service, region)
        if key not in self._clients:
            errors = self._boto()[2]
            try:
                self._clients[key] = self._new_client(session, service, region)
            except errors as exc:
                raise self._wrap(exc, service, None, f"{service} client setup") from None
        return self._clients[key]

    def call(self, service, method, region=None, **kwargs):
        """Call ``client(service).method(**kwargs)`` (method in snake_case); failures raise AwsError."""
        client = self.client(service, region)
        errors = self._boto()[2]
        operation = client.meta.method_to_api_mapping.get(method, method)
        try:
            return getattr(client, method)(**kwargs)
        except errors as exc:
            raise self._wrap(exc, service, operation) from None

    def paginate(self, service, method, region=None, **kwargs):
        """All pages of a paginated call merged into one result (``build_full_result``); failures raise AwsError."""
        client = self.client(service, region)
        errors = self._boto()[2]
        operation = client.meta.method_to_api_mapping.get(method, method)
        try:
            return client.get_paginator(method).paginate(**kwargs).build_full_result()
        except errors as exc:
            raise self._wrap(exc, service, operation) from None

    def caller_identity(self):
        """sts:GetCallerIdentity for this connection (after any assumed role), fetched once."""
        if self._identity is None:
            result = self.call("sts", "get_caller_identity")
            self._identity = {"Account": result["Account"], "Arn": result["Arn"], "UserId": result["UserId"]}
        return self._identity

    @property
    def account_id(self):
        return self.caller_identity()["Account"]

    def counts(self):
        """API calls and retries so far, for module results and benchmarks."""
        return {"calls": dict(sorted(self.call_counts.items())), "retries": dict(sorted(self.retry_counts.items()))}
