"""``python -m conveyor.runtime``: the step entrypoint."""

import sys

from conveyor.runtime._main import main

sys.exit(main())
