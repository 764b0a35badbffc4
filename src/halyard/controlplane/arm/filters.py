"""The subset of OData ``$filter`` that ARM's generic resource listing accepts, as a pure parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from halyard.core.errors import InvalidRequest

_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_SUBSTRING = re.compile(r"^\s*substringof\(\s*'((?:[^']|'')*)'\s*,\s*name\s*\)\s*$", re.IGNORECASE)
FIELDS = {
    "resourcegroup": "resource_group",
    "resourcetype": "resource_type",
    "name": "name",
    "location": "location",
    "tagname": "tag_name",
    "tagvalue": "tag_value",
}


@dataclass
class ResourceFilter:
    resource_group: str | None = None
    resource_type: str | None = None
    name: str | None = None
    location: str | None = None
    tag_name: str | None = None
    tag_value: str | None = None
    name_contains: list[str] = field(default_factory=list)

    def matches(self, *, group: str, type_: str, name: str, location: str | None, tags: dict[str, str]) -> bool:
        if self.resource_group and self.resource_group.lower() != group.lower():
            return False
        if self.resource_type and self.resource_type.lower() != type_.lower():
            return False
        if self.name and self.name.lower() != name.lower():
            return False
        if self.location and self.location.replace(" ", "").lower() != (location or "").lower():
            return False
        if any(s.lower() not in name.lower() for s in self.name_contains):
            return False
        if self.tag_name is not None:
            lowered = {k.lower(): v for k, v in tags.items()}
            if self.tag_name.lower() not in lowered:
                return False
            if self.tag_value is not None and lowered[self.tag_name.lower()] != self.tag_value:
                return False
        return True


def parse_filter(text: str | None) -> ResourceFilter:
    """``resourceGroup eq 'rg' and resourceType eq 'Microsoft.Kubernetes/connectedClusters'`` and the like."""
    result = ResourceFilter()
    if not text or not text.strip():
        return result
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        substring = _SUBSTRING.match(clause)
        if substring:
            result.name_contains.append(substring.group(1).replace("''", "'"))
            continue
        match = _CLAUSE.match(clause)
        if not match or match.group(1).lower() not in FIELDS:
            raise InvalidRequest(
                f"The $filter '{text}' is not supported. Use clauses such as resourceGroup eq 'x', resourceType eq "
                "'ns/type', name eq 'n', location eq 'l', tagName eq 'k' [and tagValue eq 'v'], substringof('s', name),"
                " joined with 'and'.",
                code="InvalidFilterInQueryString",
            )
        setattr(result, FIELDS[match.group(1).lower()], match.group(2).replace("''", "'"))
    if result.tag_value is not None and result.tag_name is None:
        raise InvalidRequest("tagValue may be used only with tagName.", code="InvalidFilterInQueryString")
    return result
