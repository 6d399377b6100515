"""`python -m tagf_cli` runs the `tagf` command."""

from tagf_cli.app import main

main()
