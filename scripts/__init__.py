"""Data, metrics, training, testing and prediction for artery/vein segmentation."""
