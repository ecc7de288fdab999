from vmconsole.cli.main import main

raise SystemExit(main())
