"""Hard negatives: mining from a retrieval run, the phase-3 sampling weights, and
false-negative detection (planting hidden positives, scoring a review queue).
"""
