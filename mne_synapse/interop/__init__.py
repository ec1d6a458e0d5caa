"""Bridges to other people's files: the authors' checkpoints -> ours, export to stock diffusers."""
