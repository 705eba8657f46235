"""Crystal structures and periodic neighbour lists."""
from .neighbours import NeighbourList, neighbour_list

__all__ = ["NeighbourList", "neighbour_list"]
