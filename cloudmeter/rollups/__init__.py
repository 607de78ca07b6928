"""Rollups: time (raw -> hourly -> daily) and topology; imports only numpy, numba and cloudmeter.model."""
