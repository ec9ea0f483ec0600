import contextlib
import json
from unittest import mock

import pytest
from ansible.module_utils import basic

from ansible_collections.cmk.atlas.plugins.module_utils import _module as base

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19 (make compat): AnsibleModule reads its arguments from basic._ANSIBLE_ARGS

    @contextlib.contextmanager
    def patch_module_args(args=None):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()):
            yield


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", False),
        (base.UNKNOWN, True),
        ("arn:aws:iam::123456789012:role/" + base.UNKNOWN, True),
        ({"a": [1, {"b": base.UNKNOWN}]}, True),
        ({"a": [1, {"b": "x"}]}, False),
        (None, False),
        (42, False),
    ],
)
def test_is_unknown_finds_the_placeholder_anywhere(value, expected):
    assert base.is_unknown(value) is expected


def test_diff_of_uses_empty_documents_for_absent_sides():
    assert base.diff_of(None, {"a": 1}) == {"before": {}, "after": {"a": 1}}
    assert base.diff_of({"a": 1}, None, "role", "role")["before_header"] == "role"


def _module(args, check_mode):
    params = dict(args)
    params["_ansible_check_mode"] = check_mode
    with patch_module_args(params):
        return base.CmkAtlasModule({"name": {"type": "str"}})


def test_known_accepts_placeholder_only_in_check_mode():
    module = _module({"name": "x"}, check_mode=True)
    assert module.known("external_id", "abc") is True
    assert module.known("external_id", base.UNKNOWN) is False

    module = _module({"name": "x"}, check_mode=False)
    with pytest.raises(base.ModuleInputError, match=r"external_id is '\(known after apply\)'.*without --check"):
        module.known("external_id", base.UNKNOWN)


def _module_for(args, **sides):
    with patch_module_args(dict(args)):
        return base.CmkAtlasModule({"name": {"type": "str"}}, **sides)


def test_every_module_accepts_both_sides_connection_options_for_one_group_default():
    # One module_defaults for group/cmk.atlas.atlas carries Atlas and AWS options to every module.
    connection = {"public_key": "pub", "private_key": "priv", "retries": 1, "profile": "ops", "region": "eu-west-2", "aws_endpoint_url": "http://x"}
    atlas_only = _module_for({"name": "x", **connection}, atlas=True)
    assert atlas_only.params["retries"] == 1
    assert atlas_only.params["region"] == "eu-west-2"
    aws_only = _module_for({"name": "x", **connection}, aws=True)
    assert aws_only.params["profile"] == "ops"
    assert aws_only.params["public_key"] == "pub"


def test_ignored_options_keep_secrecy_and_drop_defaults_and_fallbacks():
    spec = {
        "base_url": {"type": "str", "default": "https://cloud.mongodb.com", "fallback": (None, ["X"])},
        "private_key": {"type": "str", "no_log": True},
        "region": {"type": "str", "aliases": ["aws_region"]},
        "validate_certs": {"type": "bool", "default": True},
    }
    assert base.ignored_options(spec, keep={"validate_certs": {}}) == {
        "base_url": {"type": "str"},
        "private_key": {"type": "str", "no_log": True},
        "region": {"type": "str", "aliases": ["aws_region"]},
    }
    atlas_only = _module_for({"name": "x"}, atlas=True)
    assert atlas_only.params["assume_role_session_name"] is None  # ignored: no default
    assert atlas_only.params["validate_certs"] is True  # the Atlas option, with its default
