"""vistr_cli: the thin Typer shell over vistr_core."""
