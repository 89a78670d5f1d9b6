"""The contract: what training, export and scoring must do identically, owned once. It is the
only code two stages share (tests/test_layers.py), and it is torch-free, so the light scoring
install and its image worker processes import it cheaply.

    inputs        ModelInputs: what a model expects (image geometry, max_length, normalization)
    geometry      decoded image -> pixel input (resize, centre crop, normalise)
    images        image bytes read safely, decoded, prepared on the CPU; error kinds and limits
    text          tweet bytes decoded (UTF-8, the dataset's legacy encoding) and cleaned
    tweet_text    text normalization (`--text-normalization tweet`)
    tokenizer     BatchTokenizer: normalized texts -> ids and mask, as every stage tokenizes
    rows          the bad-row policy and the output columns (label, prob_*, error, ...)
    decision      the decision rule (label = argmax(log p + b)) and its decision_rule.json
    metrics       classification metrics (training's validation, `mmsa evaluate`)
    device        which device a command runs on (auto/cpu/cuda), one rule for every command
    model_folder  the exported model folder's format (manifest, checksums, tokenizer)
"""
