"""Workflows above training and analysis: the end-to-end demo and the built-in analytic example."""
