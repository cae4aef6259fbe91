"""Business operations as plain functions with keyword-only arguments; views and the CLI call these."""
