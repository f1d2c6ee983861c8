"""ser-stream: real-time speech emotion recognition daemon."""

__version__ = "0.1.0"
