"""The `dex` commands, one module per area; dex/cli.py registers them on its `app`.

Each command imports what it needs (the program, the policy pack, the apps) inside its own
body, so `dex --help` loads only typer and rich: keep heavy imports there, not at module level.
"""
