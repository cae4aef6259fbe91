"""The /api/v1 resources: one module per resource, its blueprint listed in app/api/__init__.py."""
