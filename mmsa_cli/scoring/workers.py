"""Moved to mmsa_cli.scoring.images.workers (issue 28); this name keeps old imports working."""
from .._moved import moved

__getattr__ = moved(__name__, 'mmsa_cli.scoring.images.workers')

if __name__ == "__main__":  # `python -m mmsa_cli.scoring.workers`, as older parents start it
    import runpy

    runpy.run_module('mmsa_cli.scoring.images.workers', run_name="__main__")
