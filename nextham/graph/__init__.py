"""Records -> tensors for the model: message-passing graph, shell-pair indices, batches."""
from .batch import DEFAULT_CUTOFF, GraphBatch, GraphData, PairGroup, batch_records, build_graph, collate

__all__ = ["DEFAULT_CUTOFF", "GraphBatch", "GraphData", "PairGroup", "batch_records", "build_graph", "collate"]
