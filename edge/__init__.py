"""moodbox: a mood-aware speaker (camera → detect → identify/classify → decide → play/publish)."""

from __future__ import annotations

__version__ = "0.2.0"
