"""Orchestration of the core into jobs people run: the RRRA benchmark, retraining with
human label corrections, and the embedded demo build.
"""
