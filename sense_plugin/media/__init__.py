"""Media code: PyAV stream copy, cuts, muxing, hashing sinks, stills and the export worker.

Used by ``export`` (jobs) and ``archive`` (the recorder transcodes audio); imports neither.
"""
