from apps.training.train import main

raise SystemExit(main())
