"""The Kong import: a decK/Kong declarative file → a Turnout declaration and a report.

`convert` (convert.py) is the entry point; `turnout import kong` (config_file.py)
applies its result and stores the keys.
"""

from turnout.admin.kong.convert import convert
from turnout.admin.kong.report import IMPORT_TAG, KongImport

__all__ = ["IMPORT_TAG", "KongImport", "convert"]
