"""python -m moodstream: same as the moodstream command."""

import sys

from moodstream.cli import main

sys.exit(main())
