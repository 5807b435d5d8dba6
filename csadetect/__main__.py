import sys

from csadetect.cli import main

sys.exit(main())
