"""An HTTP service speaking the Hugging Face Inference API for audio classification, backed by Triton."""
