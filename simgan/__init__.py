"""simgan: Simulated+Unsupervised learning (SimGAN) as a library; see simgan/core and the task packages."""
