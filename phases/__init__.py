"""Phase entrypoints: each is ``python -m phases.<name>`` with ``main(argv) -> int``."""
