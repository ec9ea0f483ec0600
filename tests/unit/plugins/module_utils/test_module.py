import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.cmk.atlas.plugins.module_utils import module as base


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
