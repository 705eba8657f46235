"""Records -> tensors for the model: message-passing graph, shell-pair indices, batches."""
from .data import DEFAULT_CUTOFF, GraphBatch, GraphData, PairGroup, batch_records, build_graph, collate, conjugate_index

__all__ = ["DEFAULT_CUTOFF", "GraphBatch", "GraphData", "PairGroup", "batch_records", "build_graph", "collate",
           "conjugate_index"]
