"""Fixtures of the live-trading tests: the lake tests' SeaweedFS server and environments."""

from tests.lake.conftest import local_env, s3_env, s3_server  # noqa: F401  (fixtures used by name)
