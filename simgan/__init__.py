"""simgan: Simulated+Unsupervised learning (SimGAN): the core and one package per task."""
