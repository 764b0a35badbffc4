"""ARM's tag rules, in one place every resource model uses: at most 50 tags, names up to 512 characters, values up
to 256, names without ``< > % & \\ ? /``, and only text that can be stored.

Without them one principal could write a million tags into a resource every reader of the subscription lists.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from halyard.api.text import storable

MAX_TAGS = 50
MAX_NAME = 512
MAX_VALUE = 256
_FORBIDDEN = frozenset("<>%&\\?/")


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` if ARM would accept them; ValueError naming the first rule broken otherwise."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags are allowed per resource ({len(tags)} given)")
    for name, value in tags.items():
        if not name.strip():
            raise ValueError("a tag name must not be empty")
        if len(name) > MAX_NAME:
            raise ValueError(f"a tag name may have at most {MAX_NAME} characters")
        if len(value) > MAX_VALUE:
            raise ValueError(f"the value of tag '{name[:64]}' may have at most {MAX_VALUE} characters")
        if _FORBIDDEN.intersection(name):
            raise ValueError(f"tag name '{name[:64]}' must not contain any of < > % & \\ ? /")
        storable(name)
        storable(value)
    return tags


Tags = Annotated[dict[str, str], AfterValidator(check_tags)]
