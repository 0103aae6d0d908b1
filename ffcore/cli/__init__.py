"""The ``ff`` command line."""
