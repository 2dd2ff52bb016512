"""Reading and preparing data: datasets, images, labels, A/V map files, augmentation."""
