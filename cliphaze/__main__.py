import sys

from cliphaze.cli import main

sys.exit(main())
