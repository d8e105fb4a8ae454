"""Seeing attributions: HTML pages and terminal output (arrays and strings first).

Drawing libraries are imported inside the functions that need them, never at import.
"""

from ._text import text_html_fragment as text_html_fragment
from ._text import text_html_page as text_html_page
from ._text import text_rich as text_rich

__all__ = ["text_html_fragment", "text_html_page", "text_rich"]
