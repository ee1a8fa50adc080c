"""Part-of-speech tags offline: TextBlob's ``PatternTagger`` ships its model inside the package
(the Brill lexicon and context rules of CLiPS Pattern; Penn Treebank tags), where NLTK's and
spaCy's models are downloaded at run time. CT-SAN's concept words and CiSIN's action words read
it."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version


def tagger_name() -> str:
    return f"textblob {version('textblob')} PatternTagger"


def pos_tags(tokens: Sequence[str]) -> list[str]:
    """One Penn Treebank tag per token, each decided in the context of the others."""
    from textblob.en.taggers import PatternTagger

    if not tokens:
        return []
    return [tag for _, tag in PatternTagger().tag(" ".join(tokens), tokenize=False)]
