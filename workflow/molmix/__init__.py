"""molmix: feedback-aligned mixed LLMs for molecule captioning, and atomic-level cross-NLI evaluation."""

__version__ = "0.1.0"
