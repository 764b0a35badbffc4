"""Strings a wire model may accept: text that can be encoded, stored and read back by every client.

A JSON string may carry a lone UTF-16 surrogate (``"\\ud800"``) or a NUL: Python decodes both, but neither can be
encoded as UTF-8 nor stored by PostgreSQL, so a value holding one breaks every later read of what holds it. The
control plane refuses such bodies at its edge (``controlplane.requestbody``) for every route; these types say the
same in the models, so a model used anywhere else (an agent reading a reply, a test) holds only storable text.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field


def storable(value: str) -> str:
    """``value`` if it encodes as UTF-8 and holds no NUL; ValueError (a 400 at the API) otherwise."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone UTF-16 surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(storable)]
# A name a machine chose (a version, a component, a distribution): printable ASCII, no spaces at either end.
Token = Annotated[str, Field(pattern=r"^(?:[0-9A-Za-z][0-9A-Za-z.+_:/-]*)?$")]
