"""``python -m generator``: the same as the ``gen`` command."""

from generator.cli import main

main()
