"""TAGF engine: configuration, data access, model and training. Imports no torch at package level."""
