"""animegen: a reproducible research pipeline for anime-character image generation."""

__version__ = "0.1.0"
