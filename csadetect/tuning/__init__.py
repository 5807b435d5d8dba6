"""Thresholds for the data team (DESIGN §5): :mod:`.tune` picks a threshold for a target precision
or false-positive rate, with Wilson intervals, from labelled examples."""
