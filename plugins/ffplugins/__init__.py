"""FFLib's built-in plugins.

Each module here is one plugin, declared under ``[project.entry-points.fflib]`` in the
root ``pyproject.toml`` and loaded exactly like a third-party plugin.
"""
