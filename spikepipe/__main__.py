import sys

from spikepipe.cli import main

sys.exit(main())
