"""Everything mmsa writes, and where it may write: one room below the stages, which every
command uses (train, export, predict, score with either engine). The guarded I/O layer of
issue 27 grows here.

    storage       paths that may live on object storage (s3://, gs://): is_uri, open_fs
    outputs       the existing-output rule (--overwrite, exit 4); the umask outputs follow
    staging       a folder built beside its final name and renamed in (train's run folder)
    folders       the local engine's output file and parts folder, on a disk or a store
    checkpointed  OutputWriter: row groups as durable parts + checkpoint, renamed in whole
    part_folder   the Ray engine's output directory: hashed part files, manifest last
"""
