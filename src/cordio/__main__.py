"""``python -m cordio``: the ``cordio`` command."""

from cordio.cli import main

main()
