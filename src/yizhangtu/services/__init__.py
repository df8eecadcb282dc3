"""Framework-neutral service functions: the CLI and the web app are thin adapters over these."""
