"""A process that edits one live configuration N times (the concurrency tests run two at once).

`python -m tests.live.record_writer CONFIG_ID WRITER N`: edit k sets risk_per_trade to
(WRITER * 1000 + k + 1) / 1e6, so every edit of every writer leaves a distinct value behind.
"""

import sys

from mochi_assets.live.configs import edit_config
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings


def risk_of(writer: int, k: int) -> float:
    return (writer * 1000 + k + 1) / 1e6


def main() -> None:
    cid, writer, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    lake = Lake(MochiSettings.from_env())
    print("READY", flush=True)
    sys.stdin.readline()  # start together
    for k in range(n):
        edit_config(lake, cid, risk_per_trade=risk_of(writer, k))


if __name__ == "__main__":
    main()
