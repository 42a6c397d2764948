from lxcfs_py.cli import main

raise SystemExit(main())
