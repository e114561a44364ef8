import sys

from semantoks.cli import main

sys.exit(main())
