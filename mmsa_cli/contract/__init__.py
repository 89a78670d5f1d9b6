"""The inference contract: what training, export and scoring must do identically, owned once.
Torch-free, so the light scoring install and its worker processes import it cheaply.

    geometry  decoded image -> pixel input (resize, centre crop, normalise)
    inputs    ModelInputs: what a model expects (image size and statistics, max_length, ...)
    rows      the bad-row policy and the output columns (label, prob_*, error, error_kind, ...)
    device    which device a command runs on (auto/cpu/cuda), one rule for every command
Tokenization is mmsa_cli/scoring/texts.py (BatchTokenizer), used by training too.
"""
