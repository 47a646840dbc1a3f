"""Reading sources and computing datasets."""
