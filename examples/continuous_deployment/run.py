"""Run the continuous deployment pipeline on the active stack."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pipeline import continuous_deployment  # noqa: E402

if __name__ == "__main__":
    c = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    run = continuous_deployment(c=c)
    print(f"run {run.name}: {run.status}")
