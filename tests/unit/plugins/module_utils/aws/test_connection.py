import os
import socket
import subprocess
import sys

import pytest
import yaml

from ansible_collections.cmk.atlas.plugins.doc_fragments.aws import ModuleDocFragment
from ansible_collections.cmk.atlas.plugins.module_utils.aws import connection as aws
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsConnection, AwsDependencyError, AwsError, AwsOptionError
from ansible_collections.cmk.atlas.plugins.module_utils.version import COLLECTION_VERSION

SECRET = "s3cr3t-Value-That-Must-Not-Leak"
TOKEN = "t0ken-Value-That-Must-Not-Leak"
KEYS = {"access_key": "AKIAEXAMPLE000000001", "secret_key": SECRET}
OTHER_ACCOUNT = "111111111111"
MOTO_ACCOUNT = "123456789012"
AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No AWS settings from the environment or ~/.aws, and no instance metadata lookups."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@pytest.fixture
def moto(clean_env):
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if boto3 is even loaded: option errors must come first."""

    def forbidden():
        raise AssertionError("boto3 was loaded before the options were validated")

    monkeypatch.setattr(aws, "_import_boto3", forbidden)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_no_secret(*texts):
    for text in texts:
        assert SECRET not in text
        assert TOKEN not in text


# -- argument spec and docs ------------------------------------------------------------------

AMAZON_AWS_ALIASES = {
    "access_key": ["aws_access_key_id", "aws_access_key", "ec2_access_key"],
    "secret_key": ["aws_secret_access_key", "aws_secret_key", "ec2_secret_key"],
    "session_token": ["aws_session_token", "security_token", "aws_security_token"],
    "profile": ["aws_profile"],
    "region": ["aws_region", "ec2_region"],
    "endpoint_url": ["aws_endpoint_url", "ec2_url"],
}


def test_argument_spec_follows_amazon_aws():
    spec = aws.aws_argument_spec()
    for name, aliases in AMAZON_AWS_ALIASES.items():
        assert spec[name]["aliases"] == aliases
    assert spec["secret_key"]["no_log"] is True
    assert spec["session_token"]["no_log"] is True
    assert spec["validate_certs"] == {"type": "bool", "default": True}
    assert spec["aws_ca_bundle"]["type"] == "path"
    assert spec["assume_role_session_name"]["default"] == "cmk-atlas"
    assert set(spec) == set(aws.AWS_OPTION_NAMES)


def test_doc_fragment_matches_argument_spec():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = aws.aws_argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("aliases", []) == option.get("aliases", []), name
        assert documented[name].get("default") == option.get("default"), name


def test_importing_module_utils_does_not_import_boto3():
    collections_root = os.path.join(os.path.dirname(os.path.abspath(aws.__file__)), *([os.pardir] * 6))
    code = (
        "import sys\n"
        "from ansible_collections.cmk.atlas.plugins.module_utils.aws import arn, connection, regions\n"
        "from ansible_collections.cmk.atlas.plugins.module_utils.policy import document\n"
        "print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=os.path.abspath(collections_root)), capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


# -- option validation, before any call ------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"access_key": "AKIAEXAMPLE"}, r"^secret_key \(aws_secret_access_key\) is missing: access_key and secret_key must be given together"),
        ({"secret_key": SECRET}, r"^access_key \(aws_access_key_id\) is missing"),
        ({"session_token": TOKEN}, r"^session_token \(aws_session_token\) needs access_key and secret_key"),
        (dict(KEYS, profile="dev"), r"^profile \(aws_profile\) cannot be combined with access_key, secret_key or session_token"),
        ({"region": "us-east"}, r"^region \(aws_region\) 'us-east' is not an AWS region name; expected e.g. us-east-1"),
        ({"region": "EU_NOWHERE_1"}, r"^region \(aws_region\) 'EU_NOWHERE_1' is not an AWS region name"),
        ({"endpoint_url": "localhost:5000"}, r"^endpoint_url \(aws_endpoint_url\) 'localhost:5000' is not a valid URL; expected http\(s\)://HOST\[:PORT\]"),
        ({"endpoint_url": "ftp://example.com"}, "is not a valid URL"),
        ({"endpoint_url": "http://"}, "is not a valid URL"),
        ({"endpoint_url": "http://127.0.0.1:99999"}, "is not a valid URL"),
        ({"endpoint_url": "http://user:" + SECRET + "@[::1"}, r"is not a valid URL"),
        ({"aws_ca_bundle": "/nonexistent/ca.pem"}, r"^aws_ca_bundle '/nonexistent/ca.pem' is not a file"),
        (
            {"assume_role_arn": "arn:aws:iam::1234:role/x"},
            r"^assume_role_arn 'arn:aws:iam::1234:role/x' is not an IAM role ARN; expected arn:aws:iam::ACCOUNT:role/NAME",
        ),
        ({"assume_role_external_id": "ext-1"}, r"^assume_role_external_id needs assume_role_arn"),
        ({"assume_role_arn": "arn:aws:iam::111111111111:role/x", "assume_role_external_id": "a b"}, r"^assume_role_external_id is not valid"),
        ({"assume_role_session_name": "has space"}, r"^assume_role_session_name 'has space' is not valid; expected 2-64 characters"),
        ({"region": 5}, r"^region \(aws_region\) must be a str, not int"),
        ({"validate_certs": "no"}, r"^validate_certs must be a bool, not str"),
    ],
)
def test_bad_options_fail_before_any_call(no_network, clean_env, params, match):
    with pytest.raises(AwsOptionError, match=match) as info:
        AwsConnection(params)
    assert_no_secret(str(info.value), repr(info.value))


def test_bad_region_in_environment_names_the_variable(no_network, clean_env, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "nowhere")
    with pytest.raises(AwsOptionError, match=r"^environment variable AWS_REGION 'nowhere' is not an AWS region name"):
        AwsConnection({})


def test_region_sources(no_network, clean_env, monkeypatch):
    assert AwsConnection({}).region is None
    assert AwsConnection({"region": "EU_WEST_1"}).region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert AwsConnection({}).region == "ap-south-1"
    assert AwsConnection({"region": "us-west-2"}).region == "us-west-2"


def test_empty_strings_count_as_unset(no_network, clean_env):
    connection = AwsConnection({"access_key": "", "secret_key": "", "profile": " ", "region": "", "assume_role_session_name": None})
    assert connection.region is None
    assert "default chain" in repr(connection)


def test_max_attempts_must_be_positive(no_network, clean_env):
    with pytest.raises(AwsOptionError, match="max_attempts must be a positive integer"):
        AwsConnection({}, max_attempts=0)


def test_repr_shows_no_secrets(no_network, clean_env):
    connection = AwsConnection(dict(KEYS, session_token=TOKEN, region="us-east-1", endpoint_url="http://user:" + SECRET + "@localhost:5000"))
    text = repr(connection)
    assert_no_secret(text)
    assert "credentials='options'" in text
    assert "localhost:5000" in text


# -- clients ---------------------------------------------------------------------------------


def test_client_configuration(moto):
    connection = AwsConnection({"region": "eu-west-1"}, max_attempts=4)
    kms = connection.client("kms")
    assert kms.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert kms.meta.config.user_agent_extra == f"cmk.atlas/{COLLECTION_VERSION}"
    assert kms.meta.region_name == "eu-west-1"
    assert connection.client("kms") is kms
    other_region = connection.client("kms", region="us-east-2")
    assert other_region is not kms
    assert other_region.meta.region_name == "us-east-2"

    agents = []
    kms.meta.events.register("before-send.kms", lambda request, **_: agents.append(request.headers["User-Agent"]))
    kms.list_keys()
    assert f"cmk.atlas/{COLLECTION_VERSION}" in str(agents[0])


def test_one_endpoint_url_for_every_service(clean_env):
    connection = AwsConnection(dict(KEYS, region="us-east-1", endpoint_url="http://127.0.0.1:5000"))
    for service in ("iam", "kms", "sts"):
        assert connection.client(service).meta.endpoint_url == "http://127.0.0.1:5000"
    assert sum(connection.call_counts.values()) == 0


@pytest.mark.parametrize(
    ("validate_certs", "with_bundle", "expected"), [(True, False, "default"), (False, False, False), (True, True, "bundle"), (False, True, False)]
)
def test_certificate_options_reach_the_client(moto, validate_certs, with_bundle, expected):
    bundle = os.path.join(os.path.dirname(os.environ["AWS_CONFIG_FILE"]), "ca.pem")
    with open(bundle, "w") as handle:
        handle.write("")
    params = {"region": "us-east-1", "validate_certs": validate_certs, "aws_ca_bundle": bundle if with_bundle else None}
    client = AwsConnection(params).client("kms")
    wanted = {"default": os.environ.get("AWS_CA_BUNDLE") or True, "bundle": bundle, False: False}[expected]
    assert client._endpoint.http_session._verify == wanted


def test_calls_are_counted_and_shared_with_derived_connections(moto):
    connection = AwsConnection({"region": "us-east-1"})
    connection.call("iam", "create_role", RoleName="atlas", AssumeRolePolicyDocument="{}")
    connection.call("iam", "get_role", RoleName="atlas")
    connection.client("iam").get_role(RoleName="atlas")
    connection.call("kms", "create_key")
    derived = connection.derive(region="eu-west-1")
    derived.call("kms", "list_keys")
    assert derived.region == "eu-west-1"
    assert connection.counts() == {
        "calls": {"iam:CreateRole": 1, "iam:GetRole": 2, "kms:CreateKey": 1, "kms:ListKeys": 1},
        "retries": {},
    }


def test_retries_are_bounded_and_counted(moto, monkeypatch):
    from botocore import endpoint
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse

    monkeypatch.setattr(endpoint.time, "sleep", lambda _seconds: None)
    throttled = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"
    responses = []

    def throttle(request, **_kwargs):
        responses.append(request.url)
        return AWSResponse(request.url, 400, {"content-type": "text/xml"}, MockRawResponse(throttled))

    connection = AwsConnection({"region": "us-east-1"}, max_attempts=3)
    iam = connection.client("iam")
    iam.meta.events.register_first("before-send.iam.GetRole", throttle)
    with pytest.raises(AwsError) as info:
        connection.call("iam", "get_role", RoleName="atlas")
    assert str(info.value) == "AWS iam:GetRole failed: Throttling: Rate exceeded"
    assert info.value.code == "Throttling"
    assert len(responses) == 3
    assert connection.counts() == {"calls": {"iam:GetRole": 1}, "retries": {"iam:GetRole": 2}}


def test_paginate_merges_pages(moto):
    connection = AwsConnection({"region": "us-east-1"})
    for index in range(3):
        connection.call("iam", "create_role", RoleName=f"role-{index}", AssumeRolePolicyDocument="{}")
    result = connection.paginate("iam", "list_roles", PaginationConfig={"PageSize": 1})
    assert sorted(role["RoleName"] for role in result["Roles"]) == ["role-0", "role-1", "role-2"]
    assert connection.call_counts["iam:ListRoles"] == 3


# -- assume role -----------------------------------------------------------------------------


def test_assume_role_acts_in_the_other_account(moto, monkeypatch):
    sent = []
    original = AwsConnection._new_client

    def recording(self, session, service, region):
        client = original(self, session, service, region)
        client.meta.events.register("before-parameter-build.sts.AssumeRole", lambda params, **_: sent.append(dict(params)))
        return client

    monkeypatch.setattr(AwsConnection, "_new_client", recording)
    home = AwsConnection({"region": "eu-west-1"})
    role_arn = f"arn:aws:iam::{OTHER_ACCOUNT}:role/service/key-admin"
    other = home.derive(assume_role_arn=role_arn, assume_role_external_id="ext-42")
    assert home.account_id == MOTO_ACCOUNT
    assert other.account_id == OTHER_ACCOUNT

    key_arn = other.call("kms", "create_key")["KeyMetadata"]["Arn"]
    assert key_arn.startswith(f"arn:aws:kms:eu-west-1:{OTHER_ACCOUNT}:key/")
    other.call("iam", "create_role", RoleName="atlas", AssumeRolePolicyDocument="{}")
    assert other.call("iam", "get_role", RoleName="atlas")["Role"]["Arn"] == f"arn:aws:iam::{OTHER_ACCOUNT}:role/atlas"
    assert home.call("kms", "list_keys")["Keys"] == []

    assert sent == [{"RoleArn": role_arn, "RoleSessionName": "cmk-atlas", "ExternalId": "ext-42"}]
    assert home.call_counts["sts:AssumeRole"] == 1  # once, however many clients


def test_assumed_role_credentials_are_redacted(moto):
    from botocore.exceptions import ClientError

    connection = AwsConnection({"region": "us-east-1", "assume_role_arn": f"arn:aws:iam::{OTHER_ACCOUNT}:role/x"})
    credentials = connection.session.get_credentials()
    leak = f"echo {credentials.secret_key} {credentials.token}"
    error = ClientError({"Error": {"Code": "Weird", "Message": leak}}, "GetRole")
    message = connection.describe_error(error, "iam:GetRole")
    assert credentials.secret_key not in message
    assert credentials.token not in message
    assert message.startswith("AWS iam:GetRole failed: Weird: echo ********")


# -- error messages --------------------------------------------------------------------------


def test_client_error_message(moto):
    connection = AwsConnection({"region": "us-east-1"})
    with pytest.raises(AwsError) as info:
        connection.call("iam", "get_role", RoleName="missing")
    error = info.value
    assert str(error) == "AWS iam:GetRole failed: NoSuchEntity: Role missing not found"
    assert (error.code, error.service, error.operation, error.status_code) == ("NoSuchEntity", "iam", "GetRole", 404)


def test_param_validation_error_message(moto):
    connection = AwsConnection({"region": "us-east-1"})
    with pytest.raises(AwsError, match=r"^AWS iam:GetRole failed: invalid request parameters: Missing required parameter .*RoleName"):
        connection.call("iam", "get_role")


def test_no_credentials_message(clean_env):
    connection = AwsConnection({"region": "us-east-1", "endpoint_url": f"http://127.0.0.1:{free_port()}"}, max_attempts=1)
    with pytest.raises(AwsError) as info:
        connection.call("sts", "get_caller_identity")
    message = str(info.value)
    assert message.startswith("AWS sts:GetCallerIdentity failed: no AWS credentials found")
    for hint in ("access_key", "aws_access_key_id", "profile", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        assert hint in message
    assert info.value.code == "NoCredentialsError"


def test_no_region_message(clean_env):
    connection = AwsConnection(KEYS)
    with pytest.raises(AwsError) as info:
        connection.client("kms")
    message = str(info.value)
    assert message.startswith("AWS kms client setup failed: no AWS region is set")
    for hint in ("region (aws_region)", "AWS_REGION", "AWS_DEFAULT_REGION"):
        assert hint in message
    assert_no_secret(message)


def test_endpoint_connection_message(clean_env):
    url = f"http://127.0.0.1:{free_port()}"
    connection = AwsConnection(dict(KEYS, session_token=TOKEN, region="us-east-1", endpoint_url=url), max_attempts=1)
    with pytest.raises(AwsError) as info:
        connection.call("kms", "list_keys")
    message = str(info.value)
    assert message.startswith(f"AWS kms:ListKeys failed: could not connect to {url}")
    assert "endpoint_url (aws_endpoint_url)" in message
    assert_no_secret(message, repr(info.value), repr(info.value.args))
    assert info.value.__cause__ is None


def test_profile_not_found_message(clean_env):
    connection = AwsConnection({"profile": "nope", "region": "us-east-1"})
    with pytest.raises(AwsError, match=r"^AWS profile 'nope' not found; check profile \(aws_profile\) or AWS_PROFILE"):
        connection.client("kms")


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("NoCredentialsError", {}, ["AWS kms:Decrypt failed: no AWS credentials found", "AWS_ACCESS_KEY_ID"]),
        ("PartialCredentialsError", {"provider": "env", "cred_var": "AWS_SECRET_ACCESS_KEY"}, ["incomplete AWS credentials", "AWS_SECRET_ACCESS_KEY"]),
        ("NoRegionError", {}, ["no AWS region is set", "AWS_DEFAULT_REGION"]),
        ("ProfileNotFound", {"profile": "dev"}, ["AWS profile 'dev' not found", "AWS_PROFILE"]),
        ("EndpointConnectionError", {"endpoint_url": "https://kms.example.test"}, ["could not connect to https://kms.example.test", "endpoint_url"]),
        ("ConnectTimeoutError", {"endpoint_url": "https://kms.example.test"}, ["could not connect to https://kms.example.test"]),
        ("ReadTimeoutError", {"endpoint_url": "https://kms.example.test"}, ["the connection to https://kms.example.test broke (ReadTimeoutError)"]),
        ("SSLError", {"endpoint_url": "https://kms.example.test", "error": "bad cert"}, ["TLS certificate verification failed", "aws_ca_bundle"]),
        ("ParamValidationError", {"report": "Missing required parameter in input: KeyId"}, ["invalid request parameters: Missing required parameter"]),
    ],
)
def test_describe_botocore_errors(name, kwargs, expected):
    from botocore import exceptions

    message = aws.describe_aws_error(getattr(exceptions, name)(**kwargs), "kms:Decrypt")
    for fragment in expected:
        assert fragment in message


def test_describe_aws_error_redacts_and_handles_unknown_errors():
    class StrangeError(Exception):
        pass

    assert aws.describe_aws_error(StrangeError("token " + TOKEN), "kms:Decrypt", [TOKEN]) == "AWS kms:Decrypt failed: StrangeError: token ********"
    assert aws.describe_aws_error(AwsError("AWS x failed: " + SECRET), secrets=[SECRET]) == "AWS x failed: ********"


def test_missing_boto3_is_reported_with_missing_required_lib(clean_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    connection = AwsConnection({"region": "us-east-1"})
    with pytest.raises(AwsDependencyError) as info:
        connection.client("kms")
    assert "Failed to import the required Python library (boto3)" in str(info.value)
    assert "ImportError" in info.value.traceback or "ModuleNotFoundError" in info.value.traceback
