"""Reading and preparing data: datasets, images, labels, augmentation."""
