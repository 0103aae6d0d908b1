"""The ffdebug plugin module (entry point ``ffdebug``)."""
