"""`python -m adapters.cli`: the console script without the installed `ledger` wrapper."""

from adapters.cli import main

main()
