"""Request and response bodies (pydantic), one module per resource; fields.py holds the shared field types."""
