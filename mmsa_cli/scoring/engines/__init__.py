"""The scoring engines: how rows travel from inputs to the output, around one Scorer.

    local        score_files(): Parquet files -> one Parquet file, an overlapped pipeline on
                 this machine, resumable (ScoreOptions)
    ray_dataset  score_dataset(): a Ray Data Dataset in, the Dataset with the result columns
                 out (ScoreActor, the image stage)
    ray_files    score_files_ray(): `mmsa score --engine ray`, Parquet files -> a folder of
                 part files on a Ray cluster
"""
