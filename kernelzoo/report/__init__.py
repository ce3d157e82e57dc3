"""Reports from harness DataFrames: Markdown/CSV tables and matplotlib plots."""
