# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one root of every error the collection raises: the module base turns any of them into a clean failure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class CmkAtlasError(Exception):
    """Base of every cmk.atlas error; ``str()`` is a message fit to show a user."""
