"""Sphinx configuration of kernelzoo's documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing is fetched from the network: intersphinx is off, the theme's assets are
bundled with it, and the gallery runs on the embedded digits.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the checkout's package, installed or not
sys.path.insert(0, str(HERE / "_ext"))

# the gallery's examples and the API pages import torch: keep them to the build's share of
# the machine and deterministic
os.environ.setdefault("KERNELZOO_COMPILE", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import kernelzoo  # noqa: E402

project = "kernelzoo"
author = "the kernelzoo developers"
copyright = "the kernelzoo developers"  # noqa: A001 - Sphinx's name
release = kernelzoo.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "kernelzoo_docs",  # docs/_ext: parameter tables, the CLI reference, signatures
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
default_role = "literal"
highlight_language = "python"
# ARCHITECTURE.md's ```layers block (read by tests/test_layers.py) is plain text to Pygments
suppress_warnings = ["misc.highlighting_failure"]

# -- no network --------------------------------------------------------------------------
# intersphinx is not loaded at all (its inventories would be fetched); MathJax comes from the
# sphinx-mathjax-offline package (copied into _static/mathjax), so pages render formulas
# without a network too
extensions.append("sphinx-mathjax-offline")

# -- autodoc / autosummary ---------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # a module's page lists its __all__, nothing else
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # types are in the numpydoc sections; signatures stay short
autoclass_content = "class"
add_module_names = False

# -- numpydoc ----------------------------------------------------------------------------
numpydoc_show_class_members = False  # the class template lists members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False
# Validation of every documented public object (the API pages): a failure is a Sphinx
# warning, so ``-W`` fails the build. The checks chosen are the ones that make a page wrong
# or useless to a reader, not those about style:
#   GL08  the object has no docstring at all
#   PR01  a parameter of the signature is not documented (a new Param, option or argument
#         without a line in the docstring fails the build)
#   PR02  a documented parameter does not exist (renamed or removed)
#   PR03  documented parameters in another order than the signature's
#   PR10  "name: type" without the space numpydoc needs to parse it
#   GL07  sections out of numpydoc's order (numpydoc would mis-render them)
#   SS01  no one-line summary (the autosummary tables show it)
#   RT03  a Returns section whose entry has no description
#   YD01  a generator without a Yields section
# Left out on purpose: the style checks (SS03-SS06: summary punctuation/verb mood; PR06-PR09
# and RT02/RT04/RT05: capitals, full stops, type spellings; ES01: an extended summary;
# EX01: an Examples section; SA01: See Also; GL01/GL02/GL03: blank lines) and RT01 (a
# Returns section for every function): the house style puts the return and its shape in the
# summary and Shape note of short functions, and demanding a section of each would add
# boilerplate, not information.
numpydoc_validation_checks = {
    "GL08", "PR01", "PR02", "PR03", "PR10", "GL07", "SS01", "RT03", "YD01",
}
# Members inherited from torch, gpytorch, scikit-learn or builtins are not documented at all
# (docs/_ext skips them). Documented but not validated, each for its reason:
numpydoc_validation_exclude = {
    # overrides of another library's protocol (torch's and gpytorch's forward, Dask's worker
    # plugin setup, scikit-learn's get_params/set_params): their parameters are that
    # library's, documented there
    r"\.forward$",
    r"\.TorchThreadsPlugin\.setup$",
    r"\.KernelFeatures\.(get_params|set_params)$",
    r"\.DeferredGram\.to_dense$",  # linear_operator's LinearOperator.to_dense
    # the feature kernels' featurize overrides: documented once, on FeatureKernel.featurize
    r"\.(ScaledFeatureKernel|TrainableNystromKernel|LayerwiseCKNKernel)\.featurize$",
    # the Harness hooks of each harness: the parameters are documented once, on
    # kernelzoo.bench.Harness, and every harness implements the same signatures
    r"^kernelzoo\.bench\.harnesses\.\w+\.\w+\.(planned_n|kernels|methods|run|finish|section)$",
    # class attributes documented by a ``#:`` comment whose value is None (no docstring of
    # its own for numpydoc to read)
    r"\.homogeneity$",
}

# -- myst (docs/ARCHITECTURE.md, docs/INPUTS.md stay the single source) -----------------
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# -- sphinx-gallery ----------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # run every plot_*.py
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    "abort_on_example_error": True,
    "reset_modules": ("matplotlib", "kernelzoo_docs.reset_example"),
    "min_reported_time": 0,
    "capture_repr": ("_repr_html_", "__repr__"),
    "plot_gallery": "True",
    "reference_url": {"kernelzoo": None},
    "doc_module": ("kernelzoo",),
    "backreferences_dir": None,
}
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")
# numpydoc parses raw docstrings for signatures too, where it warns about the house style's
# ``Shape`` section; the rendered docstrings get it as a rubric in Notes (docs/_ext)
warnings.filterwarnings("ignore", category=UserWarning, message="Unknown section Shape")

# -- HTML --------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"kernelzoo {release}"
html_static_path = ["_static"]
html_css_files = ["kernelzoo.css"]
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "icon_links": [],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "light"}
