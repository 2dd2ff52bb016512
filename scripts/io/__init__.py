"""Files that hold weights: checkpoints, the original and released weights, atomic writes."""
