"""Serve functions from a web framework: one module per framework, each a thin layer
over the framework-agnostic ``stepwise.sdk.handler.ServeHandler``.

Modules that need a framework import it; install the matching extra
(``pip install 'stepwise[flask]'``). See docs/adapters.md.
"""

METHODS = ("GET", "PUT", "POST")
"""What the serve endpoint answers: introspection, sync, and calls."""
