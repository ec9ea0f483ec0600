"""Make the collection importable as ``ansible_collections.cmk.atlas`` from this checkout,
and the test bed as the ``emulators`` package (``tests/emulators``).

The repository root is the collection root, so tests reach it through a symlink at
``.ansible/collections/ansible_collections/cmk/atlas`` (ignored by git and by the build).
"""

import contextlib
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".ansible", "collections")
TESTS_ROOT = os.path.join(REPO_ROOT, "tests")


def _link_collection():
    namespace_dir = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "cmk")
    link = os.path.join(namespace_dir, "atlas")
    os.makedirs(namespace_dir, exist_ok=True)
    if not os.path.islink(link):
        with contextlib.suppress(FileExistsError):  # another xdist worker made it first
            os.symlink(REPO_ROOT, link)
    for path in (COLLECTIONS_ROOT, TESTS_ROOT):
        if path not in sys.path:
            sys.path.insert(0, path)


_link_collection()

pytest_plugins = ["emulators.fixtures"]
