"""``python -m queuert``: the ``queuert`` command."""

from queuert.cli import main

main()
