"""Streaming file ingestion shared by every task's readers: bad-input reporting, split
planning settings, and the driver that decodes units in order and feeds the dataset writer
(its pool and chunk regrouping are :mod:`simgan.core.stream`'s)."""
