"""``python -m emulators serve``: starts, writes the env file, answers, reseeds on SIGHUP, stops on SIGTERM."""

import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import boto3
import requests

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_env_file(path):
    env, unset = {}, []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            words = shlex.split(line, comments=True)
            if words and words[0] == "export":
                name, _sep, value = words[1].partition("=")
                env[name] = value
            elif words and words[0] == "unset":
                unset.extend(words[1:])
    return env, unset


def wait_for_file(path, process, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the test bed did not write its env file in time"
        time.sleep(0.1)


class Lines:
    """Collects a process's output lines as they come, so a test can wait for one."""

    def __init__(self, stream):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"no line with {text!r} in {self.lines}"
            time.sleep(0.05)

    def text(self):
        self._thread.join(timeout=10)
        return "\n".join(self.lines)


def test_serve_writes_env_file_answers_and_stops_on_sigterm(tmp_path):
    env_file = tmp_path / "testbed.env"
    environment = {**os.environ, "PYTHONPATH": TESTS_DIR}
    command = [sys.executable, "-m", "emulators", "serve", "--scenario", "demo", "--env-file", str(env_file)]
    process = subprocess.Popen(command, cwd=TESTS_DIR, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = Lines(process.stdout)
    try:
        wait_for_file(env_file, process)
        env, unset = read_env_file(env_file)
        assert {"AWS_PROFILE", "AWS_SESSION_TOKEN", "MONGODB_ATLAS_CLIENT_ID"} <= set(unset)
        for name in ("MONGODB_ATLAS_BASE_URL", "MONGODB_ATLAS_PUBLIC_KEY", "MONGODB_ATLAS_PRIVATE_KEY", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
            assert env[name]
        sts = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"]
        ).client("sts", endpoint_url=env["AWS_ENDPOINT_URL"])
        assert sts.get_caller_identity()["Account"] == "111111111111"
        log = requests.get(env["AWS_ENDPOINT_URL"] + "/__proxy/log", timeout=10).json()
        assert [entry["operation"] for entry in log] == ["GetCallerIdentity"]
        response = requests.get(
            env["MONGODB_ATLAS_BASE_URL"] + "/api/atlas/v2/groups/660000000000000000000012/encryptionAtRest",
            auth=requests.auth.HTTPDigestAuth(env["MONGODB_ATLAS_PUBLIC_KEY"], env["MONGODB_ATLAS_PRIVATE_KEY"]),
            headers={"Accept": "application/vnd.atlas.2023-01-01+json"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["awsKms"]["enabled"] is True

        # SIGHUP seeds the scenario again; the env file stays valid.
        iam = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"]
        ).client("iam", endpoint_url=env["AWS_ENDPOINT_URL"])
        iam.create_role(RoleName="made-by-hand", AssumeRolePolicyDocument="{}")
        output.wait_for("test bed ready")
        process.send_signal(signal.SIGHUP)
        output.wait_for("test bed reset to scenario demo")
        assert iam.list_roles()["Roles"] == []
        assert sts.get_caller_identity()["Account"] == "111111111111"

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    stdout = output.text()
    assert process.returncode == 0, stderr
    assert "test bed ready" in stdout
    assert env["MONGODB_ATLAS_BASE_URL"] in stdout
    assert stdout.rstrip().endswith("test bed stopped")
    for url in (env["AWS_ENDPOINT_URL"], env["MONGODB_ATLAS_BASE_URL"]):
        try:
            requests.get(url, timeout=2)
        except requests.ConnectionError:
            continue
        raise AssertionError(f"{url} still answers after the test bed stopped")


def test_scenarios_command_lists_named_scenarios():
    result = subprocess.run(
        [sys.executable, "-m", "emulators", "scenarios"],
        cwd=TESTS_DIR,
        env={**os.environ, "PYTHONPATH": TESTS_DIR},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert {"empty", "demo", "cross_account"} <= set(result.stdout.split())


def test_serve_refuses_an_unknown_scenario():
    result = subprocess.run(
        [sys.executable, "-m", "emulators", "serve", "--scenario", "nope"],
        cwd=TESTS_DIR,
        env={**os.environ, "PYTHONPATH": TESTS_DIR},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "unknown scenario 'nope'" in result.stderr
