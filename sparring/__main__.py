import sys

from jobs import dispatch  # the one place the core reaches into jobs/: wiring the queue at the entry point
from sparring.cli import main

dispatch.wire()
sys.exit(main())
