"""CLI commands of this package, registered by mmsa_cli.cli."""
COMMANDS: list = []
