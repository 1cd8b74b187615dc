"""`python -m vla_nav <verb>`: see vla_nav/cli.py."""
import sys

from vla_nav.cli import main

sys.exit(main())
