"""``python -m halyard`` is the ``halyard`` command."""

from halyard.cli.main import main

main()
