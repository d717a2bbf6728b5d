"""conveyor-kubeflow's tests: helpers in kfp_test_support, ``repo`` from conveyor_testing's plugin."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # kfp_test_support, kfp_test_pipelines, kfp_api_server
