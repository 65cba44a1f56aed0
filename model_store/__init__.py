"""Where a model repository lives: a local folder or an S3 bucket (``s3://bucket/prefix``).

- ``location``: parse a repository argument, and the form Triton's ``--model-repository`` takes.
- ``s3``: the one module that talks to object storage (boto3; endpoint and credentials from the standard
  ``AWS_*`` environment variables).
- ``manifest``: ``published.json`` at the repository root, what each exported model last published; Triton
  ignores files at the root, and ``sync`` loads a model only once its manifest entry says it is complete.
- ``sync``: keeps a Triton in explicit model-control mode in step with the manifest (``python -m model_store sync``).
"""
