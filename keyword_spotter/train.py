"""Train the default keyword spotter from scratch: ``python -m keyword_spotter.train --real-speech DIR``.

Seeded and CPU-only (under 30 minutes on 2 cores): real recordings in the Speech Commands layout (minus a
speaker-disjoint validation split that is never trained on) together with espeak-ng speech, augmented (speed,
placement, reverberation, band-limiting, recorded background noise, gain), through the same Whisper log-mel
features the Triton step computes, into a small ``WhisperForAudioClassification``. Writes a
``save_pretrained`` checkpoint with its model card, metrics and confusion matrix.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import torch
import transformers as tf

from keyword_spotter import KEYWORDS, LABELS, SAMPLING_RATE, augment, model_card, real_speech, synthesize
from triton_steps.audio import resample
from triton_steps.features import FeatureExtractor, extractor_from_config

NUM_MEL_BINS = 64
CHUNK_SECONDS = 1  # the feature extractor pads or cuts every clip to this (Speech Commands clips are 1 s)
CLIP_SECONDS = (0.9, 1.0)  # augmented clips' length range

# Background recordings for augmentation, set once per worker process by the pool's initializer.
_worker_backgrounds: list[np.ndarray] = []


def _log(start: float, message: str) -> None:
    print(f"[{time.monotonic() - start:6.1f}s] {message}", flush=True)


def feature_extractor() -> tf.WhisperFeatureExtractor:
    """The checkpoint's feature extractor: Whisper's log-mel, each clip scaled by its own loudest bin."""
    return tf.WhisperFeatureExtractor(
        feature_size=NUM_MEL_BINS, chunk_length=CHUNK_SECONDS, sampling_rate=SAMPLING_RATE
    )


@functools.cache
def _served_extractor() -> FeatureExtractor:
    """Exactly what the Triton preprocessing step computes from the saved extractor."""
    return extractor_from_config(feature_extractor().to_dict())


def _features(x: np.ndarray) -> np.ndarray:
    return _served_extractor()(x)["input_features"]


def _feature_stack(waves: list[np.ndarray]) -> np.ndarray:
    """Unaugmented clips' features, one row each (evaluation sets)."""
    return np.stack([_features(w) for w in waves])


def _set_backgrounds(backgrounds: list[np.ndarray]) -> None:
    _worker_backgrounds[:] = backgrounds


def _augmented_features(job: tuple[np.ndarray, int]) -> np.ndarray:
    waveform, seed = job
    rng = np.random.default_rng(seed)
    return _features(augment.augment(waveform, rng, _worker_backgrounds, *CLIP_SECONDS))


def _silence_features(job: tuple[int, int]) -> np.ndarray:
    """A ``_silence_`` example: a stretch of a recorded background at a random level, or synthetic noise."""
    index, seed = job
    rng = np.random.default_rng(seed)
    length = int(rng.uniform(*CLIP_SECONDS) * SAMPLING_RATE)
    if index < 0 or not _worker_backgrounds:
        return _features(synthesize.silence(rng, length / SAMPLING_RATE))
    x = augment.crop(_worker_backgrounds[index], length, rng)
    gain = 10 ** rng.uniform(-3, 1.5) if rng.random() < 0.8 else 0.0
    return _features(np.clip(x * gain, -1, 1).astype(np.float32))


def _feature_maps(function, jobs: list, backgrounds: list[np.ndarray]) -> np.ndarray:
    with ProcessPoolExecutor(2, initializer=_set_backgrounds, initargs=(backgrounds,)) as pool:
        return np.stack(list(pool.map(function, jobs, chunksize=64)))


def synthetic_set(
    args: argparse.Namespace, backgrounds: list[np.ndarray], start: float
) -> tuple[np.ndarray, np.ndarray]:
    """espeak-ng utterances of the training voices and settings, ``--synthetic-copies`` augmented draws each."""
    plan = synthesize.training_plan(args.seed, args.per_word, args.per_unknown)
    waves = synthesize.speak_all(plan)
    labels = [LABELS.index(u.label) for u in plan]
    _log(start, f"synthesized {len(plan)} espeak-ng utterances")
    copies = args.synthetic_copies
    jobs = [(w, args.seed * 1_000_003 + i * 7 + c) for c in range(copies) for i, w in enumerate(waves)]
    return _feature_maps(_augmented_features, jobs, backgrounds), np.array(labels * copies)


def real_set(
    clips: list[real_speech.Clip], backgrounds: list[np.ndarray], args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray]:
    """Each real training utterance ``--real-copies`` times augmented, plus ``_silence_`` from the backgrounds."""
    speech = [c for c in clips if c.label != real_speech.SILENCE]
    waves = [c.waveform() for c in speech]
    copies = args.real_copies
    jobs = [(w, args.seed * 2_000_003 + i * 11 + c) for c in range(copies) for i, w in enumerate(waves)]
    features = _feature_maps(_augmented_features, jobs, backgrounds)
    labels = [LABELS.index(c.label) for c in speech] * copies
    silence_jobs = [(i % len(backgrounds) if i % 4 else -1, args.seed * 3_000_017 + i) for i in range(args.silence)]
    silence = _feature_maps(_silence_features, silence_jobs, backgrounds)
    labels += [LABELS.index(real_speech.SILENCE)] * len(silence)
    return np.concatenate([features, silence]), np.array(labels)


def real_validation_set(clips: list[real_speech.Clip]) -> tuple[list[np.ndarray], np.ndarray]:
    """Waveforms and labels of the validation speakers' clips, unaugmented."""
    return [c.waveform() for c in clips], np.array([LABELS.index(c.label) for c in clips])


def held_out_set(seed: int, per_word: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Clean held-out espeak-ng clips: features, labels and the 16 kHz waveforms (also served in the tests)."""
    plan = synthesize.held_out_plan(seed, per_word, per_word * 2)
    waves = synthesize.speak_all(plan)
    labels = [LABELS.index(u.label) for u in plan]
    rng = np.random.default_rng(seed + 7)
    for _ in range(per_word):
        waves.append(synthesize.silence(rng, 1.0))
        labels.append(LABELS.index("_silence_"))
    waves = [augment.place(w, np.random.default_rng(i), 1.0, 1.0) for i, w in enumerate(waves)]
    return _feature_stack(waves), np.array(labels), waves


def other_synthesizers() -> dict[str, list[tuple[int, np.ndarray]]]:
    """The keywords spoken by flite and festival voices: synthesizers never heard in training."""
    sets: dict[str, list[tuple[int, np.ndarray]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.wav"
        for voice in ("kal", "kal16", "awb", "rms", "slt"):
            clips = []
            for word in KEYWORDS:
                subprocess.run(["flite", "-voice", voice, "-t", word, "-o", str(out)], check=True)
                x, rate = soundfile.read(out, dtype="float32")
                clips.append((LABELS.index(word), resample(x, rate, SAMPLING_RATE)))
            sets[f"flite-{voice}"] = clips
        for voice in ("voice_kal_diphone", "voice_cmu_us_slt_arctic_hts"):
            clips = []
            for word in KEYWORDS:
                script = f'({voice}) (utt.save.wave (SayText "{word}") "{out}" \'riff)'
                result = subprocess.run(["festival", "--pipe"], input=script, text=True, capture_output=True)
                if result.returncode != 0 or not out.exists():
                    break
                x, rate = soundfile.read(out, dtype="float32")
                clips.append((LABELS.index(word), resample(x, rate, SAMPLING_RATE)))
            if len(clips) == len(KEYWORDS):
                sets[f"festival-{voice}"] = clips
    return sets


def build_model(args: argparse.Namespace) -> tf.WhisperForAudioClassification:
    """A small Whisper-style encoder: two convolutions over the log-mel frames, then transformer layers."""
    torch.manual_seed(args.seed)
    frames = CHUNK_SECONDS * SAMPLING_RATE // feature_extractor().hop_length
    config = tf.WhisperConfig(
        num_mel_bins=NUM_MEL_BINS,
        d_model=args.hidden_size,
        encoder_layers=args.layers,
        encoder_attention_heads=4,
        encoder_ffn_dim=4 * args.hidden_size,
        max_source_positions=frames // 2,  # the second convolution halves the frame rate: one step per 20 ms
        classifier_proj_size=args.hidden_size,
        dropout=args.dropout,
        # Only the encoder is built for classification; the decoder's sizes just keep the config small.
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=args.hidden_size,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return tf.WhisperForAudioClassification(config)


def _spec_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per example, set a random band of up to 11 bins and a span of up to 29 frames to the example's mean."""
    batch, bins, frames = x.shape

    def band(size: int, widest: int) -> torch.Tensor:
        width = torch.randint(0, widest, (batch, 1), generator=generator)
        start = (torch.rand((batch, 1), generator=generator) * (size - width + 1)).long()
        position = torch.arange(size)[None, :]
        return (position >= start) & (position < start + width)

    masked = band(bins, 12)[:, :, None] | band(frames, 30)[:, None, :]
    return torch.where(masked, x.mean(dim=(1, 2), keepdim=True), x)


def predict(model: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [
                model(input_features=torch.from_numpy(features[i : i + 256])).logits.argmax(-1).numpy()
                for i in range(0, len(features), 256)
            ]
        )


def evaluate(model: torch.nn.Module, features: np.ndarray, labels: np.ndarray) -> float:
    return float((predict(model, features) == labels).mean())


def confusion(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Counts, rows = true label, columns = predicted label, in ``LABELS`` order."""
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def train(args: argparse.Namespace) -> dict:
    start = time.monotonic()
    torch.set_num_threads(2)
    clips = real_speech.find_clips(args.real_speech)
    train_clips, validation_clips = real_speech.speaker_split(clips, args.validation_fraction, args.seed)
    backgrounds = [c.waveform() for c in train_clips if c.label == real_speech.SILENCE]
    _log(
        start,
        f"real speech: {len(train_clips)} training clips, {len(validation_clips)} validation clips "
        f"({len({c.speaker for c in validation_clips})} speakers never trained on)",
    )
    real_x, real_y = real_set(train_clips, backgrounds, args)
    synthetic_x, synthetic_y = synthetic_set(args, backgrounds, start)
    features, labels = np.concatenate([real_x, synthetic_x]), np.concatenate([real_y, synthetic_y])
    _log(start, f"{len(features)} augmented feature maps ({len(real_x)} real, {len(synthetic_x)} espeak-ng)")
    validation_waves, validation_labels = real_validation_set(validation_clips)
    validation_x = _feature_stack(validation_waves)
    held_x, held_labels, _ = held_out_set(args.seed + 100, args.heldout_per_word)

    model = build_model(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps_per_epoch = math.ceil(len(features) / args.batch_size)
    total = steps_per_epoch * args.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=total, pct_start=0.1)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    generator = torch.Generator().manual_seed(args.seed)
    x_all, y_all = torch.from_numpy(features.astype(np.float32)), torch.from_numpy(labels)
    del features
    _log(start, f"training {sum(p.numel() for p in model.parameters()):,} parameters, {args.epochs} epochs")
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            logits = model(input_features=_spec_augment(x_all[index], generator)).logits
            loss = loss_fn(logits, y_all[index])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            running += loss.item()
        _log(
            start,
            f"epoch {epoch + 1}: loss {running / steps_per_epoch:.3f}, "
            f"real validation {evaluate(model, validation_x, validation_labels):.3f}, "
            f"held-out espeak-ng {evaluate(model, held_x, held_labels):.3f}",
        )
    training_seconds = time.monotonic() - start

    other = {}
    for name, clips_of_voice in other_synthesizers().items():
        x = _feature_stack([w for _, w in clips_of_voice])
        other[name] = evaluate(model, x, np.array([label for label, _ in clips_of_voice]))
    matrix = confusion(validation_labels, predict(model, validation_x))
    metrics = {
        "real_validation_accuracy": float(np.trace(matrix) / matrix.sum()),
        "real_validation_per_class": {
            label: float(matrix[i, i] / max(1, matrix[i].sum())) for i, label in enumerate(LABELS)
        },
        "real_validation_clips": len(validation_labels),
        "real_validation_speakers": len({c.speaker for c in validation_clips if c.label != real_speech.SILENCE}),
        "real_validation_confusion": matrix.tolist(),
        "real_training_clips": len(train_clips),
        "real_training_speakers": len({c.speaker for c in train_clips if c.label != real_speech.SILENCE}),
        "held_out_espeak_accuracy": evaluate(model, held_x, held_labels),
        "held_out_espeak_clips": len(held_labels),
        "other_synthesizers_accuracy": other,
        "training_seconds": round(training_seconds, 1),
        "training_examples": len(x_all),
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder_steps": model.config.max_source_positions,
        "seed": args.seed,
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "real_speech")},
    }
    output = Path(args.output)
    model.eval()
    model.save_pretrained(output)
    feature_extractor().save_pretrained(output)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (output / "validation_clips.json").write_text(
        json.dumps(sorted({c.path.relative_to(args.real_speech).as_posix() for c in validation_clips}), indent=0) + "\n"
    )
    model_card.write(output, metrics)
    _log(start, json.dumps({k: v for k, v in metrics.items() if k != "real_validation_confusion"}))
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m keyword_spotter.train")
    parser.add_argument(
        "--real-speech",
        type=Path,
        required=True,
        help="real recordings in the Speech Commands layout (a folder per label)",
    )
    parser.add_argument("--output", default="keyword_spotter/checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=real_speech.VALIDATION_FRACTION,
        help="share of the real speakers held out of training",
    )
    parser.add_argument("--real-copies", type=int, default=10, help="augmented copies of each real clip")
    parser.add_argument("--per-word", type=int, default=150, help="espeak-ng training utterances per keyword")
    parser.add_argument("--per-unknown", type=int, default=500, help="espeak-ng utterances of other words")
    parser.add_argument("--synthetic-copies", type=int, default=2, help="augmented copies of each espeak-ng clip")
    parser.add_argument("--silence", type=int, default=2400, help="_silence_ examples (recorded and synthetic)")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--heldout-per-word", type=int, default=30)
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
