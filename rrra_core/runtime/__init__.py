"""What every layer needs at run time: run folders, background jobs, typed configs,
paths, device choice, the command-line plumbing and user-facing errors.
"""
