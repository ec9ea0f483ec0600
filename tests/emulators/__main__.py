"""Run the test bed in the foreground: ``python -m emulators serve --scenario demo --env-file PATH``
(from tests/ or with PYTHONPATH=tests). Stops on SIGINT (Ctrl-C) or SIGTERM; SIGHUP seeds the
scenario again (ids and credentials stay the same, so the env file stays valid)."""

import argparse
import os
import shlex
import signal
import sys
import threading

from .testbed import ScenarioError, TestBed, scenario_names

# Variables that would make boto3 or the collection use something other than the test bed.
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_UNSET_FOR_AUTH = {
    "api_key": ("MONGODB_ATLAS_CLIENT_ID", "MONGODB_ATLAS_CLIENT_SECRET"),
    "service_account": ("MONGODB_ATLAS_PUBLIC_KEY", "MONGODB_ATLAS_PRIVATE_KEY"),
}


def env_file_text(bed, auth):
    lines = [f"# cmk.atlas test bed, scenario {bed.scenario_name} (process {os.getpid()})"]
    lines.append("unset " + " ".join(_UNSET + _UNSET_FOR_AUTH[auth]))
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in sorted(bed.env(auth).items()))
    # Not read by the collection; for looking around by hand.
    lines.append(f"export CMK_TESTBED_MOTO_URL={shlex.quote(bed.moto_url)}")
    lines.append(f"export CMK_TESTBED_SCENARIO={shlex.quote(bed.scenario_name)}")
    lines.append(f"export CMK_TESTBED_PID={os.getpid()}")
    return "\n".join(lines) + "\n"


def write_env_file(path, text):
    # Written whole and renamed, so a script polling for the file never reads half of it.
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def serve(args):
    stop = threading.Event()
    reseed = threading.Event()

    def request_stop(_signum, _frame):
        stop.set()

    def request_reseed(_signum, _frame):
        reseed.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGHUP, request_reseed)
    bed = TestBed(args.scenario, atlas_contract=not args.no_contract)
    bed.start()
    try:
        print(bed.describe())
        if args.env_file:
            write_env_file(args.env_file, env_file_text(bed, args.auth))
            print(f"env file:          {args.env_file}  (source it: . {shlex.quote(args.env_file)})")
        print(f"faults and logs:   {bed.aws_endpoint_url}/__proxy/faults, {bed.aws_endpoint_url}/__proxy/log")
        print(f"test bed ready; Ctrl-C or kill {os.getpid()} stops it, kill -HUP {os.getpid()} seeds the scenario again", flush=True)
        while not stop.wait(0.2):
            if reseed.is_set():
                reseed.clear()
                bed.reset()
                print(f"test bed reset to scenario {bed.scenario_name}", flush=True)
    finally:
        bed.stop()
        print("test bed stopped", flush=True)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m emulators", description="cmk.atlas test bed: moto, AWS fault proxy, Atlas emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="start the test bed in the foreground")
    serve_parser.add_argument("--scenario", default="demo", help=f"a scenario name ({', '.join(scenario_names())}) or a scenario file")
    serve_parser.add_argument("--env-file", help="write the environment as shell export lines to this file")
    serve_parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"], help="listen address (loopback only)")
    serve_parser.add_argument("--auth", default="api_key", choices=sorted(_UNSET_FOR_AUTH), help="Atlas credentials in the env file")
    serve_parser.add_argument("--no-contract", action="store_true", help="do not check Atlas traffic against the API spec")
    commands.add_parser("scenarios", help="list the named scenarios")
    args = parser.parse_args(argv)
    if args.command == "scenarios":
        print("\n".join(scenario_names()))
        return 0
    try:
        return serve(args)
    except ScenarioError as error:
        print(f"python -m emulators: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
