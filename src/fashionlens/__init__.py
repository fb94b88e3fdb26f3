"""fashionlens: search, recommend, categorize and forecast a fashion catalog."""
__version__ = "0.1.0"
