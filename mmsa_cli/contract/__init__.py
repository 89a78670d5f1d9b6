"""The inference contract: what training, export and scoring must do identically, owned once.
Torch-free, so the light scoring install and its worker processes import it cheaply.

    device    which device a command runs on (auto/cpu/cuda), one rule for every command
"""
