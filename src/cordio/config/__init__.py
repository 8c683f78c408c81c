"""Configuration: sources, merging, validation and provenance of settings sections.

Sources, lowest priority first: defaults in the models, config files, environment
variables. Every effective value remembers where it came from (:meth:`Config.explain`).
"""

from cordio.config.loader import Config, load_config
from cordio.config.sources import EnvSource, FileSource, Layer, Source

__all__ = ["Config", "EnvSource", "FileSource", "Layer", "Source", "load_config"]
