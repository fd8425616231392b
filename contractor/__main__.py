"""``python -m contractor`` is the ``contractor`` command."""

from contractor.cli import main

main()
