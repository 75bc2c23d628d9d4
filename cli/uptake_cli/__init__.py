"""uptake_cli: the `usage` command for admins (thin: parse, call, render)."""

__all__: list[str] = []
