"""The local web UI (``strikes ui``, extra ``strikes[ui]``): a Starlette app over one store."""

from strikes.ui.server import create_app as create_app
from strikes.ui.server import serve as serve

__all__ = ["create_app", "serve"]
