"""sorter: an impurity-sorting robot cell (perception, push-grasp policy, pick loop, simulated cell)."""

__version__ = "0.1.0"
