"""The project's default model: a Speech Commands keyword spotter trained on real recorded speech (Speech
Commands, CC BY 4.0) and espeak-ng speech.

- ``real_speech``: recordings in the Speech Commands layout, and the seeded speaker-disjoint split.
- ``synthesize``: the words, voices and settings, and espeak-ng itself (training and held-out plans).
- ``augment``: noise (synthetic or recorded), gain, shift, band-limiting, reverberation, speed.
- ``train``: the seeded training script; writes ``keyword_spotter/checkpoint`` (save_pretrained).
- ``model_card``: the checkpoint's README and confusion matrix; ``validation_set``: the committed test clips.
"""

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]
KEYWORDS = LABELS[:10]
SAMPLING_RATE = 16000
