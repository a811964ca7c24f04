"""RRRA Studio core: data, encoder, index, evaluation, mining, training and runs.

Never imports streamlit or plotly: the app reads what this package writes.
"""

from __future__ import annotations

from rrra_core.runtime.errors import ConfigError, DataError, UserError

__all__ = ["UserError", "DataError", "ConfigError", "__version__"]

__version__ = "0.1.0"
