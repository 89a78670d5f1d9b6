"""Moved to mmsa_cli.training.train (issue 28); this name keeps old imports working."""
from .._moved import moved

__getattr__ = moved(__name__, 'mmsa_cli.training.train')
