"""Readers of real datasets into the dataset contract (images + labels), pure functions."""
