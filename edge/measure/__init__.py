"""Measurement, not the daemon: the benchmark, the Pi projection, emotion and face evaluation.

Nothing under ``edge/`` outside this package imports it; the `moodbox bench`,
`eval-emotion` and `eval-faces` commands and the scripts do.
"""
