"""Streaming file ingestion shared by every task's readers: bad-input reporting, split
planning settings, the ordered process pool that feeds the dataset writer."""
