"""Configuration: sources, formats, merging, validation and provenance of settings sections.

Sources, lowest priority first by default: defaults in the models, the discovered config
files, overlays (profile files and ``--config`` files), environment variables, a ``.env``
file, command-line options. Every effective value remembers where it
came from (:meth:`Config.explain`).
"""

from cordio.config.files import DEFAULT_PATTERNS, FileSource
from cordio.config.loader import Config, ConfigSources, load_config
from cordio.config.sources import (
    CliSource,
    ConfigPolicy,
    DotEnvSource,
    EnvSource,
    Layer,
    Source,
)

__all__ = [
    "DEFAULT_PATTERNS",
    "CliSource",
    "Config",
    "ConfigPolicy",
    "ConfigSources",
    "DotEnvSource",
    "EnvSource",
    "FileSource",
    "Layer",
    "Source",
    "load_config",
]
