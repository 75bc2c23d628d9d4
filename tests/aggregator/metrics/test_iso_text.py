"""The report's ISO-8601 timestamps read exactly as ``datetime.isoformat()`` writes them."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from uptake_aggregator.metrics.report import iso_utc

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_FIRST = -62_135_596_800_000_000  # 0001-01-01T00:00:00 UTC, in µs
_LAST = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999 UTC


@given(
    st.integers(_FIRST, _LAST)
    | st.integers(-(10**12), 10**12).map(lambda micros: 1_769_817_600_000_000 + micros)
    | st.integers(0, 10**5).map(lambda day: day * 86_400_000_000)
)
def test_iso_utc_is_datetime_isoformat(ts: int) -> None:
    assert iso_utc(ts) == (_EPOCH + dt.timedelta(microseconds=ts)).isoformat()
