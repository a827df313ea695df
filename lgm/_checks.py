"""The former name of :mod:`lgm.checks`, for modules written before it was public."""
from lgm.checks import *  # noqa: F401,F403
