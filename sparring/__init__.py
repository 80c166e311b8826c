"""Sparring: attack your own LLM agents before users do.

The domain core: records, the battle engine, the judge, the LLM gateway, the simulated
provider and the DuckDB store. It imports neither Streamlit nor Huey; importing it does
not import litellm either (the gateway does, on first use).
"""

__version__ = "0.1.0"
