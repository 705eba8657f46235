"""Reusable physics checks for tests: fixtures location, Hermiticity, equivariance, gauge, round trips."""
