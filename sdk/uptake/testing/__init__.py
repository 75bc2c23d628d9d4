"""Test support for apps that embed uptake: record events in memory and assert on them.

With pytest, the plugin (registered through the ``pytest11`` entry point, so installing
uptake is enough) provides the ``usage_events`` fixture::

    def test_export_is_tracked(usage_events):
        app.export(user="u1")                      # code that calls uptake.track(...)
        usage_events.assert_tracked("export_csv", user="u1", count=1)
        usage_events.assert_not_tracked("export_pdf")

Without pytest, ``with uptake.testing.recording() as usage:`` does the same. Recording is
synchronous: every call is validated and recorded before it returns, so tests never
sleep or flush. Invalid calls are not recorded; ``usage.stats().rejected_by_reason``
says why.
"""

from uptake.testing._recording import ANY, RecordingSink, UsageEvents, recording

__all__ = ["ANY", "RecordingSink", "UsageEvents", "recording"]
