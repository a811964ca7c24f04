"""Read models for the app: pure functions over what runs and benchmarks wrote
(candidates, run comparison, training dynamics, embedding projections, result tables).

Nothing here trains or encodes; the app imports these without torch.
"""
