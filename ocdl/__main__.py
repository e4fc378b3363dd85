from ocdl.cli.main import main

raise SystemExit(main())
