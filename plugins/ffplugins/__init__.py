"""FFLib's built-in plugins.

Each is declared under ``[project.entry-points.fflib]`` in the root ``pyproject.toml`` and
loaded exactly like a third-party plugin. :mod:`ffplugins.catalog` holds their
registrations, which name each component's factory by reference (``"ffplugins.ffnet:ffnet"``),
so that loading the plugins imports none of the modules here until a component is built.
"""
