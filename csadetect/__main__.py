import sys

from csadetect.cli.main import main

sys.exit(main())
