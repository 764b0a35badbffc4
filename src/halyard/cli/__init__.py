"""The ``halyard`` command line: mirrors ``az`` so an operator who knows it is at home."""
