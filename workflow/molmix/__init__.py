"""molmix: feedback-aligned mixed LLMs for molecule captioning, and atomic-level cross-NLI evaluation."""

from importlib import metadata

try:
    __version__ = metadata.version("molmix")  # pyproject.toml's version, recorded when it was installed
except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "unknown"
