"""The HTTP server: an aiohttp app built from a spec."""

from modelcore.server.app import MANAGER, SPEC, create_app

__all__ = ["MANAGER", "SPEC", "create_app"]
