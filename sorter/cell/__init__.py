"""The hardware boundary: interfaces, the simulated cell and the real adapters."""
