"""Seeing attributions: HTML pages, terminal output and image heatmaps (arrays and strings first).

Drawing libraries are imported inside the functions that need them, never at import. One
colour-blind-safe palette serves text and images: orange raises the explained output, blue
lowers it, purple is magnitude without sign.
"""

from ._generation import generation_html_fragment as generation_html_fragment
from ._generation import generation_html_page as generation_html_page
from ._generation import generation_rich as generation_rich
from ._generation import generation_section as generation_section
from ._image import ColourScale as ColourScale
from ._image import colour_scale as colour_scale
from ._image_html import image_html_fragment as image_html_fragment
from ._image import normalize as normalize
from ._image import overlay as overlay
from ._image import pixel_map as pixel_map
from ._image_plot import plot_baselines as plot_baselines
from ._image_plot import plot_overlay as plot_overlay
from ._text import text_html_fragment as text_html_fragment
from ._text import text_html_page as text_html_page
from ._text import text_rich as text_rich

__all__ = ["ColourScale", "colour_scale", "generation_html_fragment", "generation_html_page", "generation_rich",
           "generation_section", "image_html_fragment", "normalize", "overlay", "pixel_map", "plot_baselines",
           "plot_overlay", "text_html_fragment", "text_html_page", "text_rich"]
