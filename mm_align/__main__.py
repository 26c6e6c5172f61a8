from mm_align.cli import main

raise SystemExit(main())
