"""``python -m subcontractor``: the same as the ``subcontractor`` command."""

from subcontractor.cli import main

main()
