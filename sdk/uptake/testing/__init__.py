"""Test support for host apps (filled in by the SDK work)."""
