"""The ``halyard`` entry point. It imports nothing heavy itself: ``get-token`` (kubectl's exec credential plugin,
run once per kubectl process) is answered from the token cache first, and every other command line loads the command
tree (``commandtree``)."""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["get-token"]:
        from halyard.cli.execcredential import fast

        code = fast(argv)
        if code is not None:
            sys.exit(code)
    from halyard.cli.commandtree import run

    sys.exit(run(argv))
