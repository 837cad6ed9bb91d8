"""The `sage` command line: `main.py` builds the Typer app, one module per command."""
