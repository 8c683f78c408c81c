"""The installed cordio version (semantic versioning, https://semver.org)."""

__version__ = "0.1.0"
