import sys

from apps.pipelines.cli import main

sys.exit(main())
