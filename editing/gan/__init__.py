"""DefGAN generators for expression editing: aligned face crops, the training-data cache,
networks and checkpoints."""
