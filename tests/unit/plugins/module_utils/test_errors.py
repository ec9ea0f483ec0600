"""Every error the collection defines derives from the one root, so the module base has one failure path."""

import importlib
import inspect
import pkgutil

import pytest

from ansible_collections.cmk.atlas.plugins import module_utils
from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError


def _modules():
    for info in pkgutil.walk_packages(list(module_utils.__path__), prefix="ansible_collections.cmk.atlas.plugins.module_utils."):
        yield importlib.import_module(info.name)


def _error_classes():
    for module in _modules():
        for _name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                yield value


@pytest.mark.parametrize("error", sorted(set(_error_classes()), key=lambda cls: f"{cls.__module__}.{cls.__name__}"), ids=lambda cls: cls.__name__)
def test_every_error_class_derives_from_the_root(error):
    assert issubclass(error, CmkAtlasError)


def test_the_module_base_fails_cleanly_on_any_collection_error(monkeypatch):
    from ansible_collections.cmk.atlas.plugins.module_utils import _module

    failures = []

    class Base(_module.CmkAtlasModule):
        def __init__(self):  # no AnsibleModule needed to test the failure path
            pass

        def fail_from(self, exc, **result):
            failures.append(str(exc))

    class Custom(CmkAtlasError):
        pass

    def logic(_module_instance):
        raise Custom("the message")

    Base().run(logic)
    assert failures == ["the message"]
