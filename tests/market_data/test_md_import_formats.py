"""HistData.com ASCII M1 and Dukascopy CSV exports: real-looking samples, their timezones, broken files."""

import gzip
import zipfile
from datetime import datetime, timezone

import pytest

from mochi_assets.market_data.imports import detect_format, read_bars_file
from mochi_resources.errors import BarsError

UTC = timezone.utc

# As downloaded from histdata.com (DAT_ASCII_EURUSD_M1_2024.csv), EST without DST.
HISTDATA = """20240102 170000;1.104270;1.104290;1.104220;1.104240;0
20240102 170100;1.104250;1.104330;1.104250;1.104310;0
20240102 170300;1.104300;1.104300;1.104190;1.104200;0
20240702 170000;1.074010;1.074050;1.073990;1.074030;0
"""

# As exported from Dukascopy's historical data feed (EURUSD_Candlestick_1_M_BID_...csv).
DUKASCOPY = """Gmt time,Open,High,Low,Close,Volume
02.01.2024 22:00:00.000,1.10427,1.10429,1.10422,1.10424,131.54
02.01.2024 22:01:00.000,1.10425,1.10433,1.10425,1.10431,96.2
02.01.2024 22:02:00.000,1.10431,1.10431,1.10431,1.10431,0
02.01.2024 22:03:00.000,1.10430,1.10430,1.10419,1.10420,88.01
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_histdata_is_fixed_utc_minus_5_all_year(tmp_path):
    bars = read_bars_file(write(tmp_path, "DAT_ASCII_EURUSD_M1_2024.csv", HISTDATA))
    # 17:00 EST is 22:00 UTC in January and, without DST, in July too (New York time would be 21:00 UTC).
    assert bars["ts"].to_list() == [
        datetime(2024, 1, 2, 22, 0, tzinfo=UTC), datetime(2024, 1, 2, 22, 1, tzinfo=UTC),
        datetime(2024, 1, 2, 22, 3, tzinfo=UTC), datetime(2024, 7, 2, 22, 0, tzinfo=UTC),
    ]
    assert bars.row(0)[1:] == (1.10427, 1.10429, 1.10422, 1.10424, 0.0)
    assert bars.height == 4  # the missing 17:02 minute stays missing


def test_histdata_in_a_zip_and_chosen_explicitly(tmp_path):
    path = tmp_path / "HISTDATA_COM_ASCII_EURUSD_M12024.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("DAT_ASCII_EURUSD_M1_2024.csv", HISTDATA)
        z.writestr("DAT_ASCII_EURUSD_M1_2024.txt_README", "status report")
    zipped = read_bars_file(path, format="histdata")
    assert zipped.equals(read_bars_file(write(tmp_path, "plain.csv", HISTDATA)))


def test_dukascopy_gmt_drops_flat_filler_bars(tmp_path):
    bars = read_bars_file(write(tmp_path, "EURUSD_Candlestick_1_M_BID.csv", DUKASCOPY))
    assert bars["ts"].to_list() == [datetime(2024, 1, 2, 22, m, tzinfo=UTC) for m in (0, 1, 3)]
    assert bars["volume"].to_list() == [131.54, 96.2, 88.01]


def test_dukascopy_local_time_with_offset(tmp_path):
    text = (
        "Local time,Open,High,Low,Close,Volume\n"
        "02.01.2024 23:00:00.000 GMT+0100,1.10427,1.10429,1.10422,1.10424,131.54\n"
        "02.01.2024 23:01:00.000 GMT+0100,1.10425,1.10433,1.10425,1.10431,96.2\n"
    )
    bars = read_bars_file(write(tmp_path, "local.csv", text))
    assert bars["ts"].to_list() == [datetime(2024, 1, 2, 22, m, tzinfo=UTC) for m in (0, 1)]


def test_dukascopy_gzip_and_same_bars_as_histdata(tmp_path):
    path = tmp_path / "duka.csv.gz"
    path.write_bytes(gzip.compress(DUKASCOPY.encode()))
    duka = read_bars_file(path)
    hist = read_bars_file(write(tmp_path, "h.csv", HISTDATA))
    # The same minutes of the same market from both sources land on the same UTC instants.
    assert set(duka["ts"].to_list()) <= set(hist["ts"].to_list())


def test_detect_format():
    assert detect_format(HISTDATA.encode(), "x") == "histdata"
    assert detect_format(DUKASCOPY.encode(), "x") == "dukascopy"
    assert detect_format(b"ts,open,high,low,close,volume\n", "x") == "generic"


@pytest.mark.parametrize(
    "name, text, fmt, message",
    [
        ("h1.csv", "20240102 170000;1.1;1.2;1.0;1.1;0\n20240102 170100;1.1;1.2;1.0\n", "auto",
         "h1.csv: row 2: '20240102 170100;1.1;1.2;1.0' has 4 fields, expected 6"),
        ("h2.csv", "20240102 170000;1.1;1.2;1.0;1.1;0\n20241302 170100;1.1;1.2;1.0;1.1;0\n", "auto",
         "h2.csv: row 2: '20241302 170100' is not a HistData timestamp"),
        ("h3.csv", "20240102 170000;1.1;1.2;1.0;1.1;0\n20240102 170100;1.1;1.0;1.2;1.1;0\n", "auto",
         "h3.csv: row 2: high 1.0 is below low 1.2"),
        ("h4.csv", "20240102 170000;1.1;1.2;1.0;1.1;0\n20240102 170100;1.1;abc;1.0;1.1;0\n", "auto",
         "h4.csv: row 2: high 'abc' is not a number"),
        ("h5.csv", "20240102 170000;1.1;1.2;1.0;1.1;0\n20240102 170000;1.1;1.2;1.0;1.1;0\n", "auto",
         "h5.csv: row 2: duplicate timestamp"),
        ("h6.csv", "ts,open,high,low,close,volume\n2024-01-02T00:00:00Z,1,1,1,1,1\n", "histdata",
         "h6.csv: row 1: 'ts,open,high,low,close,volume' has 1 fields, expected 6"),
        ("d1.csv", "Gmt time,Open,High,Low,Close\n02.01.2024 22:00:00.000,1,1,1,1\n", "dukascopy",
         "d1.csv: header 'Gmt time,Open,High,Low,Close' is not a Dukascopy export"),
        ("d2.csv", "Gmt time,Open,High,Low,Close,Volume\n2024-01-02 22:00:00,1,1,1,1,1\n", "auto",
         "d2.csv: row 1: time '2024-01-02 22:00:00' is not a Dukascopy time"),
        ("d3.csv", "Gmt time,Open,High,Low,Close,Volume\n32.01.2024 22:00:00.000,1,1,1,1,1\n", "auto",
         "d3.csv: row 1: time '32.01.2024 22:00:00.000' is not a valid date and time"),
        ("d4.csv", "Gmt time,Open,High,Low,Close,Volume\n", "auto", "d4.csv: no bars"),
        ("d5.csv", "Gmt time,Open,High,Low,Close,Volume\n02.01.2024 22:00:00.000,1,1,1,1,0\n", "auto",
         "d5.csv: every bar is a flat filler bar"),
        ("d6.csv", "Gmt time,Open,High,Low,Close,Volume\n02.01.2024 22:00:00.000,1,1.1,0.9,-1,5\n", "auto",
         "d6.csv: row 1: close -1.0 is not a positive price"),
        ("d7.csv", "Local time,Open,High,Low,Close,Volume\n02.01.2024 23:00:00.000 GMT+0100,1,1,1,1,1\n"
         "02.01.2024 23:01:00.000,1,1,1,1,1\n", "auto", "d7.csv: row 2: time '02.01.2024 23:01:00.000' has no GMT offset"),
        ("e.csv", "\n\n", "auto", "e.csv: the file is empty"),
    ],
)
def test_broken_files_give_one_clear_error(tmp_path, name, text, fmt, message):
    with pytest.raises(BarsError) as err:
        read_bars_file(write(tmp_path, name, text), format=fmt)
    assert message in str(err.value)


def test_unknown_format_and_bad_zip(tmp_path):
    with pytest.raises(BarsError, match="format: 'mt4' is not one of"):
        read_bars_file(write(tmp_path, "x.csv", HISTDATA), format="mt4")
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.csv", HISTDATA)
        z.writestr("b.csv", HISTDATA)
    with pytest.raises(BarsError, match="two.zip: the zip holds 2 CSV/TXT files, expected exactly one"):
        read_bars_file(path)
    (tmp_path / "bad.zip").write_bytes(b"PK not really")
    with pytest.raises(BarsError, match="bad.zip: cannot read the file"):
        read_bars_file(tmp_path / "bad.zip", format="histdata")
