"""The /auth views."""
