"""ARM naming rules, checked before anything is stored."""

from __future__ import annotations

import re

from halyard.core.errors import InvalidResourceName

_GROUP = re.compile(r"^[-\w._()]{1,90}$", re.UNICODE)


def check_group_name(name: str) -> None:
    """Resource groups: 1-90 letters, digits, underscores, hyphens, periods, parentheses; not ending in a period."""
    if not _GROUP.match(name) or name.endswith("."):
        raise InvalidResourceName(
            f"Resource group name '{name}' is invalid. It can include alphanumeric, underscore, parentheses, hyphen, "
            "period (except at end), and Unicode characters that match the allowed characters, up to 90 characters.",
            code="InvalidResourceGroup" if name else "InvalidResourceName",
        )
