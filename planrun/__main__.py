import sys

from planrun.cli import main

sys.exit(main())
