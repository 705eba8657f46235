"""Physics on real-space block matrices: Bloch sums, generalized eigenproblems, k-points, bands, DOS."""
