"""``python -m export SOURCE``: a Hugging Face audio-classification checkpoint -> a Triton model repository."""
