"""moto server (IAM, KMS, STS and the rest of AWS) on a free loopback port.

moto keeps its state in module globals, so every moto server in one process serves the same
backends, and a reset of one empties them all. ``MotoServer()`` runs in a thread of this process
(quick to start, for tests that keep to accounts of their own); ``MotoServer(isolated=True)`` runs
in a child process with state of its own (what the test bed uses, as it resets moto often).
The child stops when the parent stops it, closes its stdin or dies.
"""

import argparse
import contextlib
import os
import re
import select
import subprocess
import sys
import threading

import requests
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

_TESTS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ACCOUNT = re.compile(r"<Account>(\d{12})</Account>")


class _QuietMotoRequestHandler(MotoRequestHandler):
    """moto's handler without the access line per request (the fault proxy keeps a log)."""

    def log_request(self, code="-", size="-"):
        pass


class MotoServer:
    """Start with ``start()`` (returns the URL), stop with ``stop()``; also a context manager."""

    def __init__(self, host="127.0.0.1", port=0, isolated=False, start_timeout=60):
        self.isolated = isolated
        self._host = host
        self._port = port
        self._start_timeout = start_timeout
        self._server = None
        self._thread = None
        self._process = None
        self._accounts = {}
        self._accounts_lock = threading.Lock()
        self.url = None

    def start(self):
        if self.url is not None:
            return self.url
        if self.isolated:
            self._start_process()
        else:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._host, self._port, app, threaded=True, request_handler=_QuietMotoRequestHandler)
            host, port = self._server.server_address[:2]
            self.url = f"http://{host}:{port}"
            # A short poll interval keeps stop() quick: shutdown() waits for the next poll.
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="moto-server", daemon=True)
            self._thread.start()
        return self.url

    def _start_process(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(path for path in (_TESTS_DIR, env.get("PYTHONPATH")) if path)
        command = [sys.executable, "-m", "emulators.aws.moto_server", "--host", self._host, "--port", str(self._port)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        ready, _unused, _unused2 = select.select([self._process.stdout], [], [], self._start_timeout)
        line = self._process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self._stop_process()
            raise RuntimeError(f"moto server process did not start (said {line!r})")
        self.url = line

    def stop(self):
        if self._process is not None:
            self._stop_process()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None
            self._thread = None
        self.url = None
        self.forget_accounts()

    def _stop_process(self):
        process, self._process = self._process, None
        try:
            process.stdin.close()  # the child's signal to stop
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=10)
        finally:
            process.stdout.close()

    def reset(self):
        """Drop every resource in every account (moto's own reset endpoint)."""
        self._post("/moto-api/reset")
        self.forget_accounts()

    def seed(self, value):
        """Seed moto's random source so ids and access keys created next are the same on every reset."""
        self._post(f"/moto-api/seed?a={int(value)}")

    def _post(self, path):
        if self.url is None:
            raise RuntimeError("moto server is not running")
        response = requests.post(self.url + path, timeout=30)
        response.raise_for_status()

    def account_for_access_key(self, access_key_id):
        """The account moto acts in for requests signed with ``access_key_id`` (moto's default
        account for a key it does not know), as STS GetCallerIdentity tells. Cached until reset."""
        with self._accounts_lock:
            if access_key_id in self._accounts:
                return self._accounts[access_key_id]
        # Unsigned but with the SigV4 credential scope: moto reads the key and service from it.
        authorization = f"AWS4-HMAC-SHA256 Credential={access_key_id}/20240101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0"
        response = requests.post(
            self.url + "/",
            data={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
            headers={"Authorization": authorization},
            timeout=30,
        )
        match = _ACCOUNT.search(response.text)
        account = match.group(1) if match else None
        with self._accounts_lock:
            self._accounts[access_key_id] = account
        return account

    def forget_accounts(self):
        with self._accounts_lock:
            self._accounts.clear()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    """Child process of ``MotoServer(isolated=True)``: print the URL, serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m emulators.aws.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = MotoServer(args.host, args.port)
    print(server.start(), flush=True)
    # Ctrl-C in a terminal reaches the whole process group; stop quietly then too.
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
