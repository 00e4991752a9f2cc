"""The offer catalogue as YAML: its pydantic schema, the loader that compiles it, and the demo catalogue.

>>> from policies import DEMO_DIRECTORY, load_catalogue
>>> catalogue = load_catalogue(DEMO_DIRECTORY)
>>> len(catalogue.offers) >= 30
True
"""

from pathlib import Path

from policies.loader import catalogue_files, catalogue_version, load_catalogue, validate_catalogue
from policies.problems import CatalogueError, Problem

DEMO_DIRECTORY = Path(__file__).parent / "demo"

__all__ = [
    "DEMO_DIRECTORY",
    "CatalogueError",
    "Problem",
    "catalogue_files",
    "catalogue_version",
    "load_catalogue",
    "validate_catalogue",
]
