"""The AWS fault proxy: faithful forwarding, faults in both protocols, request log, HTTP control."""

import http.client
import http.server
import itertools
import json
import random
import threading

import boto3
import botocore.exceptions
import pytest
import requests
from botocore.config import Config

from emulators.aws import Accounts, FaultProxy, MotoServer, client
from emulators.aws.fault_proxy import is_write

_BASE = random.randrange(10**9)
_SERIAL = itertools.count()


def fresh_account():
    return f"8{_BASE:09d}{next(_SERIAL) % 100:02d}"


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture
def proxy(moto):
    with FaultProxy(moto.url, account_resolver=moto.account_for_access_key) as running:
        yield running


@pytest.fixture
def account():
    return fresh_account()


def call_once(proxy, service, account, region="us-east-1"):
    """One call of a read operation that always succeeds against moto, without retries."""
    aws = client(proxy.url, service, account, region)
    method = {"iam": "list_users", "kms": "list_keys", "sts": "get_caller_identity"}[service]
    return getattr(aws, method)()


READ_OPERATION = {"iam": "ListUsers", "kms": "ListKeys", "sts": "GetCallerIdentity"}

FAULT_CASES = [
    # service, error given to fail(), expected code, expected status
    ("iam", "ThrottlingException", "ThrottlingException", 400),
    ("iam", "throttling", "Throttling", 400),
    ("iam", "AccessDenied", "AccessDenied", 403),
    ("iam", "access_denied", "AccessDenied", 403),
    ("iam", "AccessDeniedException", "AccessDeniedException", 400),
    ("iam", "InternalFailure", "InternalFailure", 500),
    ("iam", 500, "InternalFailure", 500),
    ("iam", 503, "ServiceUnavailable", 503),
    ("sts", "throttling", "Throttling", 400),
    ("sts", "access_denied", "AccessDenied", 403),
    ("sts", 503, "ServiceUnavailable", 503),
    ("kms", "ThrottlingException", "ThrottlingException", 400),
    ("kms", "throttling", "ThrottlingException", 400),
    ("kms", "AccessDeniedException", "AccessDeniedException", 400),
    ("kms", "access_denied", "AccessDeniedException", 400),
    ("kms", "internal", "KMSInternalException", 500),
    ("kms", 500, "InternalFailure", 500),
    ("kms", 503, "ServiceUnavailable", 503),
]


@pytest.mark.parametrize(("service", "error", "code", "status"), FAULT_CASES)
def test_fault_answers_n_times_then_calls_pass_through(proxy, account, service, error, code, status):
    proxy.fail(READ_OPERATION[service], error=error, count=2)
    for _attempt in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            call_once(proxy, service, account)
        response = raised.value.response
        assert response["Error"]["Code"] == code
        assert response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert response["Error"]["Message"]
        if service != "kms":  # query protocol: the XML error says who is at fault
            assert response["Error"]["Type"] == ("Receiver" if status >= 500 else "Sender")
    call_once(proxy, service, account)
    log = proxy.request_log()
    assert [(entry["operation"], entry["status"], entry["fault"]) for entry in log] == [
        (READ_OPERATION[service], status, code),
        (READ_OPERATION[service], status, code),
        (READ_OPERATION[service], 200, None),
    ]
    assert {entry["service"] for entry in log} == {service}
    assert proxy.faults() == []


def test_error_bodies_have_each_protocols_format(proxy, account):
    proxy.fail("CreateKey", "throttling")
    proxy.fail("CreateRole", "throttling")
    kms = client(proxy.url, "kms", account)
    iam = client(proxy.url, "iam", account)
    with pytest.raises(botocore.exceptions.ClientError) as kms_error:
        kms.create_key()
    with pytest.raises(botocore.exceptions.ClientError) as iam_error:
        iam.create_role(RoleName="r1", AssumeRolePolicyDocument="{}")
    kms_headers = kms_error.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert kms_headers["x-amzn-errortype"] == "ThrottlingException"
    assert kms_headers["content-type"] == "application/x-amz-json-1.1"
    iam_headers = iam_error.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert iam_headers["content-type"] == "text/xml"
    assert iam_error.value.response["ResponseMetadata"]["RequestId"] == iam_headers["x-amzn-requestid"]


def test_faulted_calls_are_not_forwarded(proxy, account):
    proxy.fail("CreateUser", "access_denied")
    iam = client(proxy.url, "iam", account)
    with pytest.raises(botocore.exceptions.ClientError):
        iam.create_user(UserName="blocked")
    assert iam.list_users()["Users"] == []
    iam.create_user(UserName="blocked")
    assert [user["UserName"] for user in iam.list_users()["Users"]] == ["blocked"]


def test_faults_match_by_service_account_and_wildcard(proxy, account):
    other = fresh_account()
    proxy.fail("*", "throttling", count=1, service="kms", account=other)
    call_once(proxy, "iam", other)  # another service
    call_once(proxy, "kms", account)  # another account
    with pytest.raises(botocore.exceptions.ClientError):
        call_once(proxy, "kms", other)
    call_once(proxy, "kms", other)
    assert [entry["fault"] for entry in proxy.request_log()] == [None, None, "ThrottlingException", None]


def test_faults_are_consumed_in_the_order_armed(proxy, account):
    proxy.fail("ListKeys", 503)
    proxy.fail("ListKeys", "access_denied")
    codes = []
    for _attempt in range(3):
        try:
            call_once(proxy, "kms", account)
            codes.append("ok")
        except botocore.exceptions.ClientError as error:
            codes.append(error.response["Error"]["Code"])
    assert codes == ["ServiceUnavailable", "AccessDeniedException", "ok"]


def test_botocore_retries_absorb_transient_faults(proxy, account):
    # 5xx, not throttling: botocore waits far shorter before retrying a server error.
    Accounts(proxy.url).create_key(account)
    proxy.clear_request_log()
    proxy.fail("ListKeys", 503, count=2)
    patient = boto3.session.Session().client(
        "kms",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    patient.meta.events.register("before-sign", lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))
    assert len(patient.list_keys()["Keys"]) == 1
    assert [entry["status"] for entry in proxy.request_log()] == [503, 503, 200]


def test_request_log_entries(proxy, account):
    accounts = Accounts(proxy.url)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
    user = accounts.create_user_with_access_key(account, "logged", document)
    key = accounts.create_key(account, alias="alias/logged")
    client(proxy.url, "kms", credentials=user).describe_key(KeyId=key["key_id"])
    client(proxy.url, "sts", credentials=user).get_caller_identity()
    log = proxy.request_log()
    assert [(entry["service"], entry["operation"], entry["write"]) for entry in log] == [
        ("iam", "CreateUser", True),
        ("iam", "PutUserPolicy", True),
        ("iam", "CreateAccessKey", True),
        ("kms", "CreateKey", True),
        ("kms", "CreateAlias", True),
        ("kms", "DescribeKey", False),
        ("sts", "GetCallerIdentity", False),
    ]
    assert all(entry["status"] == 200 and entry["fault"] is None for entry in log)
    assert all(entry["method"] == "POST" and entry["path"] == "/" for entry in log)
    # From moto's header for the first five, from the access key (resolved by moto) for the rest.
    assert {entry["account"] for entry in log} == {account}
    assert log[-1]["access_key_id"] == user["access_key_id"]
    assert [entry["operation"] for entry in proxy.write_calls()] == ["CreateUser", "PutUserPolicy", "CreateAccessKey", "CreateKey", "CreateAlias"]
    proxy.clear_request_log()
    assert proxy.request_log() == []


def test_unknown_credentials_log_no_account_without_a_resolver(moto, account):
    with FaultProxy(moto.url) as bare:
        client(bare.url, "sts", credentials={"access_key_id": "AKIAEXAMPLEEXAMPLE", "secret_access_key": "x"}).get_caller_identity()
        client(bare.url, "sts", account).get_caller_identity()
        assert [entry["account"] for entry in bare.request_log()] == [None, account]


@pytest.mark.parametrize(
    ("operation", "write"),
    [
        ("CreateRole", True),
        ("PutKeyPolicy", True),
        ("TagRole", True),
        ("UpdateAssumeRolePolicy", True),
        ("ScheduleKeyDeletion", True),
        ("GetRole", False),
        ("ListRolePolicies", False),
        ("DescribeKey", False),
        ("AssumeRole", False),
        ("GetCallerIdentity", False),
        ("Encrypt", False),
        ("Decrypt", False),
        ("SimulatePrincipalPolicy", False),
        (None, False),
    ],
)
def test_write_classification(operation, write):
    assert is_write(operation) is write


def test_reset_clears_faults_and_log(proxy, account):
    proxy.fail("ListKeys", "throttling", count=5)
    call_once(proxy, "iam", account)
    proxy.reset()
    assert proxy.faults() == []
    assert proxy.request_log() == []
    call_once(proxy, "kms", account)


def test_http_control(proxy, account):
    control = proxy.url + "/__proxy/"
    armed = requests.post(control + "faults", json={"operation": "ListUsers", "error": "throttling", "count": 1, "service": "iam"}, timeout=5)
    assert armed.status_code == 201
    assert armed.json()["remaining"] == 1
    assert requests.get(control + "faults", timeout=5).json()[0]["operation"] == "ListUsers"
    with pytest.raises(botocore.exceptions.ClientError):
        call_once(proxy, "iam", account)
    log = requests.get(control + "log", timeout=5).json()
    assert [(entry["operation"], entry["fault"]) for entry in log] == [("ListUsers", "Throttling")]
    assert requests.delete(control + "log", timeout=5).ok
    assert requests.get(control + "log", timeout=5).json() == []
    requests.post(control + "faults", json={"operation": "ListKeys", "error": 503}, timeout=5)
    assert requests.delete(control + "faults", timeout=5).ok
    assert requests.get(control + "faults", timeout=5).json() == []
    requests.post(control + "faults", json={"operation": "ListKeys"}, timeout=5)
    assert requests.post(control + "reset", timeout=5).ok
    assert proxy.faults() == []
    assert requests.post(control + "faults", json={"error": "throttling"}, timeout=5).status_code == 400
    assert requests.post(control + "faults", json={"operation": "X", "count": 0}, timeout=5).status_code == 400
    assert requests.get(control + "nothing", timeout=5).status_code == 404
    assert proxy.request_log() == []  # control calls are not logged


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records the request exactly as received and answers with an unusual response."""

    protocol_version = "HTTP/1.1"
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.command, self.path, list(self.headers.items()), body))
        payload = b"\x00\xffbinary"
        self.send_response(418, "I'm a teapot")
        self.send_header("X-Amzn-RequestId", "req-1")
        self.send_header("X-Repeated", "one")
        self.send_header("X-Repeated", "two")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_forwards_requests_and_responses_unchanged():
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=backend.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Recorder.received = []
    try:
        with FaultProxy(f"http://127.0.0.1:{backend.server_address[1]}") as proxy:
            port = int(proxy.url.rsplit(":", 1)[1])
            body = b"Action=CreateRole&Version=2010-05-08&RoleName=a%2Fb&Doc=%7B%22x%22%3A+1%7D&raw=\xc3\xa9"
            headers = [
                ("Host", f"127.0.0.1:{port}"),
                ("X-Amz-Date", "20240101T000000Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
                ("x-lower-case", "Mixed Value  with  spaces"),
                ("X-Repeated", "1"),
                ("X-Repeated", "2"),
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("Content-Length", str(len(body))),
            ]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.putrequest("POST", "/some/path?b=2&a=1&encoded=%2F", skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            assert response.status == 418
            assert response.reason == "I'm a teapot"
            assert response.read() == b"\x00\xffbinary"
            assert response.getheader("X-Amzn-RequestId") == "req-1"
            assert [value for name, value in response.getheaders() if name == "X-Repeated"] == ["one", "two"]
            connection.close()
            [(method, path, received_headers, received_body)] = _Recorder.received
            assert method == "POST"
            assert path == "/some/path?b=2&a=1&encoded=%2F"
            assert received_headers == headers
            assert received_body == body
            [entry] = proxy.request_log()
            assert (entry["service"], entry["operation"], entry["status"], entry["write"]) == ("iam", "CreateRole", 418, True)
    finally:
        backend.shutdown()
        backend.server_close()


def test_unreachable_target_answers_502():
    with FaultProxy("http://127.0.0.1:9") as proxy:
        response = requests.post(proxy.url + "/", data={"Action": "ListUsers"}, timeout=10)
        assert response.status_code == 502
        assert proxy.request_log()[0]["status"] == 502


def test_fault_proxy_log_is_json_serialisable(proxy, account):
    call_once(proxy, "kms", account)
    assert json.loads(json.dumps(proxy.request_log()))
