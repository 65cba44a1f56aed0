"""The project's default model: a Speech Commands keyword spotter trained on espeak-ng speech.

- ``synthesize``: the words, voices and settings, and espeak-ng itself (training and held-out plans).
- ``augment``: noise, gain, shift, band-limiting, reverberation, speed: beyond espeak's clean voices.
- ``train``: the seeded training script; writes ``keyword_spotter/checkpoint`` (save_pretrained).
"""

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]
KEYWORDS = LABELS[:10]
SAMPLING_RATE = 16000
