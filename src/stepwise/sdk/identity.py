"""How this SDK names itself on the wire."""

from __future__ import annotations

from .._version import __version__

SDK_NAME = "stepwise-py"
SDK_AUTHOR = "stepwise"  # in-band sync answers name who wrote the SDK ("inngest" for theirs)
LANGUAGE = "py"
# The X-Inngest-SDK header carries "<name>:v<semver>"; the register body's ``sdk`` field
# carries "<language>:v<semver>" (the official SDKs differ the same way).
SDK_HEADER_VALUE = f"{SDK_NAME}:v{__version__}"
REGISTER_SDK_VALUE = f"{LANGUAGE}:v{__version__}"
VERSION = __version__
