# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attribute fragments shared by the collection's modules.

A module lists the ones that apply, for example
``cmk.atlas.attributes.action_group`` with ``cmk.atlas.attributes.check_mode_full`` and
``cmk.atlas.attributes.diff_mode_full``, or ``cmk.atlas.attributes.info_module``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    # Nothing by itself: modules name the fragments below. Earlier fragments and the module's own
    # attributes take precedence over later fragments, so list each attribute once.
    DOCUMENTATION = r"""
options: {}
"""

    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/cmk.atlas.atlas) in C(module_defaults) to set the Atlas and AWS connection options once for all modules of this collection.
    support: full
    membership:
      - cmk.atlas.atlas
"""

    CHECK_MODE_FULL = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and report exactly the changes it would make, without making them.
    support: full
"""

    CHECK_MODE_READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    description: This module only reads, so it does the same in check mode.
    support: full
"""

    DIFF_MODE_FULL = r"""
options: {}
attributes:
  diff_mode:
    description: With C(--diff), returns every changed document before and after the change (or the change it would make in check mode).
    support: full
"""

    DIFF_MODE_NONE = r"""
options: {}
attributes:
  diff_mode:
    description: This module changes nothing, so there is no difference to show.
    support: N/A
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    description: This module only reads, so it does the same in check mode.
    support: full
  diff_mode:
    description: This module changes nothing, so there is no difference to show.
    support: N/A
"""
