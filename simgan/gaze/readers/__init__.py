"""Readers of gaze data into the dataset contract: UnityEyes renders, MPIIGaze, folders of
crops. Entry point: :func:`simgan.gaze.readers.sources.plan_splits`."""
