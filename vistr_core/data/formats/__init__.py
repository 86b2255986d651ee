"""Annotation-tool formats, one module per format, each with ``read`` → YouTube-VIS dict and ``write``."""
