"""``python -m integrad.cli``: the same as the ``integrad`` command."""

from . import main

main()
