"""mrsisr: a re-executable study of deep-learning super-resolution for MRSI metabolite maps."""

__version__ = "0.1.0"
