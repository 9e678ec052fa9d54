import sys

from mxha.cli import main

sys.exit(main())
