"""conveyor's test kit: fixtures that run the tests of every distribution against real servers and engines.

Installed, it is a pytest plugin (:mod:`conveyor_testing.plugin`) that gives
every test session the ``repo`` fixture (a fresh repository per test), the
real-server fixtures (:mod:`conveyor_testing.sql_servers`,
:mod:`conveyor_testing.s3_server`, :mod:`conveyor_testing.docker_env`), and
the rule that a test which needs a server or engine carries the
``integration`` marker. The helpers below, the conformance contract
(:mod:`conveyor_testing.conformance`) and the process helpers
(:mod:`conveyor_testing.processes`) are what test modules import.
"""

from conveyor_testing._facade import assert_facade_complete
from conveyor_testing._golden import UPDATE_GOLDEN, assert_golden
from conveyor_testing._repository import fresh_repository

__all__ = ["UPDATE_GOLDEN", "assert_facade_complete", "assert_golden", "fresh_repository"]
