"""ray32: directed video variants from one source shot — the engine (shot I/O, controls, engines, colour, export).

This package never imports prefect, great_expectations or jinja2 and never reads a campaign; heavy libraries
(torch, diffusers, PyAV) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
