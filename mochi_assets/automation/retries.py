"""Retry policies of the assets, declared once: exponential backoff with jitter.

Network-bound steps (the provider download, steps reading and writing an S3 lake) retry a few
times so that a throttled or briefly unreachable service does not fail a backtest; the jitter
keeps many partitions retried together from hitting the service at the same instant. The
simulation retries once only: it is long, and a second failure is rarely transient. Errors that
a retry cannot fix (a bad request, missing bars) are raised as `dg.Failure(allow_retries=False)`
or fail again quickly.
"""

import dagster as dg

# raw bars: the data provider over HTTP (Polygon) or the S3 lake.
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
# steps that read and write the lake (S3 in a cluster) and run in seconds to minutes.
LAKE_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
# the simulation: one retry after a pause, in case a pod was evicted or S3 refused the upload.
SIMULATION_RETRY = dg.RetryPolicy(max_retries=1, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
