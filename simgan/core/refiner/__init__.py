"""The S+U refiner: networks, losses, history buffer, trainer, checkpoint selection, and
applying a trained refiner to a dataset."""
