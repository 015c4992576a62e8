"""Prompt texts per language, read from flows/prompts/<language>.yaml."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

PROMPTS_DIR = Path(__file__).with_name("prompts")


@cache
def prompts(language: str) -> dict[str, str]:
    """Every prompt of `language`, by name."""
    path = PROMPTS_DIR / f"{language}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: prompts must be a mapping of name to text")
    return data


def text(name: str, language: str) -> str:
    return prompts(language)[name]


def digits(number: str, language: str) -> str:
    """'226001' → 'two, two, six, zero, zero, one': a number read key by key, as it is keyed."""
    words = prompts(language)["digit_words"].split()
    return ", ".join(words[int(c)] if c.isdigit() else c for c in number)
