"""Images in scoring: the contract's CPU preparation (mmsa_cli/contract/images.py), run in
worker processes, plus what only scoring does with them.

    prepare  per image: read (local or object storage), pixels or JPEG bytes for the GPU
    workers  the image worker processes and their shared-memory pixel slots
    remote   images on object storage (s3://, gs://)
    gpu      nvJPEG decode + batched resize on CUDA (torchvision)
    dali     NVIDIA DALI on the GPU's JPEG engines; which CUDA image path a run takes
"""
