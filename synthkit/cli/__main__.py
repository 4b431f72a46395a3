import sys

from synthkit.cli import main

sys.exit(main())
