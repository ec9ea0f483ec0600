"""Atlas Admin API emulator for the test bed (see DESIGN.md in this directory)."""

from .server import AtlasEmulator

__all__ = ["AtlasEmulator"]
