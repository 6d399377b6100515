"""The `tagf` command line: flags → config → one engine call → a message and an exit code."""
