"""The pure billing core: parsing, rules, rating.

Nothing in this package does I/O, reads the environment or the clock, or imports Flask, RQ or
Redis (``tests/test_walls.py`` enforces it). Time always comes from the events.
"""
