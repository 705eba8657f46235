"""Command-line interface (typer): thin commands over the library."""
