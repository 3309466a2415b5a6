"""Vision stages: decoded frames in, structured clothing labels out.

Importing this package does not import torch; only the stages that need it do, when built.
"""
