"""`python -m loadtest`: Locust against the lab's target, then the gate."""

import sys

from loadtest.run import main

sys.exit(main())
