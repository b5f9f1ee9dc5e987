from animegen.cli import main

raise SystemExit(main())
