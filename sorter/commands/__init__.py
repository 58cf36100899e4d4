"""Command-line subcommands, one module per area; each registers its parsers and imports lazily."""
