"""A process that writes one partition (traders + a large trades table) and can be killed mid-way.

Run as `python lake_writer.py VERSION STOP_AT` with the Mochi environment set. STOP_AT says where the
process stops to wait for its SIGKILL, after printing `MIDWAY`:

- `upload`: inside the multipart upload of the large trades file (S3) or right before the trades
  file is staged (local): before the commit point;
- `apply`: after the commit record is written, while the staged files are being promoted;
- `none`: never (a normal write).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import polars as pl

from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

ROWS = 2_500_000  # ~20 MB of incompressible floats: a multipart upload on S3


def partition(version: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Traders and trades of one version; every row carries the version, so mixes are visible."""
    rng = np.random.default_rng(version)
    traders = pl.DataFrame({"trader_id": np.arange(10, dtype=np.int64), "version": np.full(10, version)})
    trades = pl.DataFrame({"trader_id": rng.integers(0, 10, ROWS), "pnl": rng.standard_normal(ROWS),
                           "version": np.full(ROWS, version)})
    return traders, trades


def _midway() -> None:
    print("MIDWAY", flush=True)
    time.sleep(120)


def main() -> None:
    version, stop_at = int(sys.argv[1]), sys.argv[2]
    lake = Lake(MochiSettings.from_env())
    traders, trades = partition(version)
    store = lake.store
    if stop_at == "upload":
        if lake.backend == "s3":
            parts = [0]

            def on_part(**_kwargs) -> None:
                parts[0] += 1
                if parts[0] == 2:
                    _midway()

            store.client.meta.events.register("before-call.s3.UploadPart", on_part)
        else:
            put = store.put_written

            def put_written(key: str, write) -> None:
                if "/trades/" in key:
                    _midway()
                put(key, write)

            store.put_written = put_written
    elif stop_at == "apply":
        promote = store.promote
        done = [0]

        def slow_promote(src: str, dst: str) -> None:
            promote(src, dst)
            done[0] += 1
            if done[0] == 1:
                _midway()

        store.promote = slow_promote
    lake.replace_folders({
        lake.folder_key("trades", "traders", "SYN_KILL", "breakout-long"): {"data.parquet": traders},
        lake.folder_key("trades", "trades", "SYN_KILL", "breakout-long"): {"data.parquet": trades},
    })
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
