"""The single source of geofm's version string."""

__version__ = "0.1.0.dev0"
