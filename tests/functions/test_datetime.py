import datetime as dt

import pytest

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionError
from mailroom.functions.builtins.datetime import millis_to_time, millis_to_ts, ts_to_millis

S, I, B = T.STRING, T.INT, T.BIGINT


def test_datetostring_and_format_date(call):
    assert call("DATETOSTRING", (I, 17662), (S, "yyyy-MM-dd")) == "2018-05-11"
    assert call("DATETOSTRING", (I, 18993), (S, "dd-MMM-yyyy")) == "01-Jan-2022"
    assert call("DATETOSTRING", (I, -1), (S, "dd-MM-yyyy'Sophia'")) == "31-12-1969Sophia"
    assert call("FORMAT_DATE", (T.DATE, dt.date(2019, 5, 11)), (S, "dd/MM/yyyy")) == "11/05/2019"


def test_timestamp_formatting_with_zones(call):
    fmt = "yyyy-MM-dd HH:mm:ss zzz"
    assert call("TIMESTAMPTOSTRING", (B, 1526075913000), (S, fmt), (S, "America/Los_Angeles")) == "2018-05-11 14:58:33 PDT"
    assert call("TIMESTAMPTOSTRING", (B, 1526075913000), (S, fmt), (S, "Europe/London")) == "2018-05-11 22:58:33 BST"
    ts = millis_to_ts(1526075913000)
    assert call("FORMAT_TIMESTAMP", (T.TIMESTAMP, ts), (S, "yyyy-MM-dd HH:mm:ss")) == "2018-05-11 21:58:33"
    assert call("FORMAT_TIMESTAMP", (T.TIMESTAMP, None), (S, "yyyy")) is None


def test_parsing(call):
    assert call("STRINGTOTIMESTAMP", (S, "2020-05-11T21:58:33z"), (S, "yyyy-MM-dd'T'HH:mm:ssX")) == 1589234313000
    ts = call("PARSE_TIMESTAMP", (S, "2018-05-11T21:58:33 PST"), (S, "yyyy-MM-dd'T'HH:mm:ss zzz"))
    assert ts_to_millis(ts) == 1526101113000
    assert call("PARSE_TIME", (S, "01:00:00 Pm"), (S, "hh:mm:ss a")) == millis_to_time(46800000)
    assert call("PARSE_TIME", (S, "11/05/19"), (S, "HH/mm/ss")) == millis_to_time(39919000)
    assert call("STRINGTODATE", (S, "20200102"), (S, "yyyyMMdd")) == 18263
    with pytest.raises(FunctionError):
        call("STRINGTODATE", (S, "nope"), (S, "yyyyMMdd"))


def test_arithmetic_on_dates_and_times(call):
    assert call("TIMESTAMPADD", (S, "MILLISECONDS"), (I, 10), (T.TIMESTAMP, millis_to_ts(10))) == millis_to_ts(20)
    assert call("TIMESUB", (S, "MILLISECONDS"), (I, 10), (T.TIME, millis_to_time(5))) == millis_to_time(86399995)
    assert call("TIMESUB", (S, "MILLISECONDS"), (I, -5), (T.TIME, millis_to_time(86399997))) == millis_to_time(2)
    assert call("DATEADD", (S, "DAYS"), (I, -5), (T.DATE, dt.date(1970, 1, 3))) == dt.date(1969, 12, 29)
    assert call("DATEADD", (S, "MILLISECONDS"), (I, None), (T.DATE, dt.date(1970, 1, 3))) is None


def test_days_and_zones(call):
    assert call("FROM_DAYS", (I, -10)) == dt.date(1969, 12, 22)
    assert call("UNIX_DATE", (T.DATE, dt.date(1970, 4, 11))) == 100
    assert call("UNIX_DATE") > 19000
    assert call("UNIX_TIMESTAMP", (T.TIMESTAMP, millis_to_ts(1234))) == 1234
    for a, b in (("+0200", "+0500"), ("America/Los_Angeles", "America/New_York")):
        assert ts_to_millis(call("CONVERT_TZ", (T.TIMESTAMP, millis_to_ts(1589234313000)), (S, a), (S, b))) == 1589245113000
