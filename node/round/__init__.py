"""The round engine: one module per phase, in the order a round runs them (engine.py)."""
