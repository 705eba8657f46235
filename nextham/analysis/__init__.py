"""Metrics, ghost states and plots."""
