"""Training of the GANs and the FER classifier: imported only by `face3d train` and the rebuild scripts."""
