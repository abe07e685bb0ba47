"""``python -m tinygrad_bp``: the same as the ``tinygrad-bp`` command."""

from tinygrad_bp.cli import main

if __name__ == "__main__":  # imported, not run, by pytest --doctest-modules
    raise SystemExit(main())
