"""Pieces shared by the app's pages (cached resources, formatting)."""
