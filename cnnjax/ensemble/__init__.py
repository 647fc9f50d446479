"""Ensembles of trained members: cached predictions, combiners, significance, diversity and reports."""
