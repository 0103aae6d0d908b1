"""``python -m ffcore.cli`` runs ``ff``."""

from ffcore.cli.main import main

main()
