"""Every use of a library's internals, one module per library, each naming the pinned version and why
no public way does. tests/core/test_compat.py checks each against the installed version, so that
bumping a pin fails there, loudly, instead of breaking the service quietly."""
