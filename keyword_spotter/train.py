"""Train the default keyword spotter from scratch: ``python -m keyword_spotter.train``.

Seeded and CPU-only (about 8 minutes on 2 cores): espeak-ng speech of training voices / variants /
settings, augmented, through the same AST feature extraction the Triton step runs, into a small
``ASTForAudioClassification``. Writes a ``save_pretrained`` checkpoint with its model card.
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

from keyword_spotter import KEYWORDS, LABELS, SAMPLING_RATE, augment, model_card, synthesize
from triton_steps.audio import resample
from triton_steps.features import ASTFeatures, extractor_from_config

NUM_MEL_BINS = 64
MAX_FRAMES = 150  # 1.5 s: clips are padded or cut to this many 10 ms frames


def _log(start: float, message: str) -> None:
    print(f"[{time.monotonic() - start:6.1f}s] {message}", flush=True)


@functools.cache
def _unnormalised_extractor() -> ASTFeatures:
    return ASTFeatures(num_mel_bins=NUM_MEL_BINS, max_length=MAX_FRAMES, do_normalize=False)


def _raw_features(x: np.ndarray) -> np.ndarray:
    """Log-mel fbank before normalisation (the statistics come from the training set)."""
    return _unnormalised_extractor()(x)["input_values"]


def _augmented_features(job: tuple[np.ndarray, int]) -> np.ndarray:
    waveform, seed = job
    return _raw_features(augment.augment(waveform, np.random.default_rng(seed)))


def _clean_features(waveform: np.ndarray) -> np.ndarray:
    return _raw_features(augment.place(waveform, np.random.default_rng(len(waveform)), 1.0, 1.0))


def training_set(args: argparse.Namespace, start: float) -> tuple[np.ndarray, np.ndarray]:
    plan = synthesize.training_plan(args.seed, args.per_word, args.per_unknown)
    waves = synthesize.speak_all(plan)
    labels = [LABELS.index(u.label) for u in plan]
    rng = np.random.default_rng(args.seed + 1)
    for _ in range(args.silence):
        waves.append(synthesize.silence(rng, rng.uniform(0.8, 1.5)))
        labels.append(LABELS.index("_silence_"))
    _log(start, f"synthesized {len(plan)} utterances + {args.silence} silences")
    jobs = [(w, args.seed * 1_000_003 + i * 7 + c) for c in range(args.copies) for i, w in enumerate(waves)]
    with ProcessPoolExecutor(2) as pool:
        features = np.stack(list(pool.map(_augmented_features, jobs, chunksize=64)))
    _log(start, f"{len(features)} augmented feature maps")
    return features, np.array(labels * args.copies)


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
    return np.stack([_raw_features(w) for w in waves]), np.array(labels), waves


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


def build_model(seed: int) -> tf.ASTForAudioClassification:
    torch.manual_seed(seed)
    config = tf.ASTConfig(
        hidden_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=192,
        hidden_dropout_prob=0.0,  # the augmentation regularises enough: this small model underfits
        attention_probs_dropout_prob=0.0,
        num_mel_bins=NUM_MEL_BINS,
        max_length=MAX_FRAMES,
        frequency_stride=16,  # 4 x 14 patches: ~0.1 s per training step of 64 on 2 cores
        time_stride=10,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return tf.ASTForAudioClassification(config)


def _spec_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per example, zero (the normalised mean) a random band of up to 11 bins and a span of up to 29 frames."""
    batch, frames, bins = x.shape

    def band(size: int, widest: int) -> torch.Tensor:
        width = torch.randint(0, widest, (batch, 1), generator=generator)
        start = (torch.rand((batch, 1), generator=generator) * (size - width + 1)).long()
        position = torch.arange(size)[None, :]
        return (position >= start) & (position < start + width)

    keep = ~(band(frames, 30)[:, :, None] | band(bins, 12)[:, None, :])
    return x * keep


def evaluate(model: torch.nn.Module, features: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        predictions = np.concatenate(
            [model(input_values=torch.from_numpy(features[i : i + 256])).logits.argmax(-1).numpy()
             for i in range(0, len(features), 256)]
        )  # fmt: skip
    return float((predictions == labels).mean())


def train(args: argparse.Namespace) -> dict:
    start = time.monotonic()
    torch.set_num_threads(2)
    features, labels = training_set(args, start)
    mean, std = float(features.mean()), float(features.std())
    features = (features - mean) / (2 * std)  # what ASTFeatureExtractor's normalisation does
    held_features, held_labels, _ = held_out_set(args.seed + 100, args.heldout_per_word)
    held_features = (held_features - mean) / (2 * std)

    model = build_model(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps_per_epoch = math.ceil(len(features) / args.batch_size)
    total = steps_per_epoch * args.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=total, pct_start=0.1)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    generator = torch.Generator().manual_seed(args.seed)
    x_all, y_all = torch.from_numpy(features.astype(np.float32)), torch.from_numpy(labels)
    _log(start, f"training {sum(p.numel() for p in model.parameters()):,} parameters, {args.epochs} epochs")
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            logits = model(input_values=_spec_augment(x_all[index], generator)).logits
            loss = loss_fn(logits, y_all[index])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            running += loss.item()
        message = f"epoch {epoch + 1}: loss {running / steps_per_epoch:.3f}"
        if (epoch + 1) % 4 == 0 or epoch + 1 == args.epochs:
            message += f", held-out accuracy {evaluate(model, held_features, held_labels):.3f}"
        _log(start, message)
    training_seconds = time.monotonic() - start

    extractor = tf.ASTFeatureExtractor(
        num_mel_bins=NUM_MEL_BINS, max_length=MAX_FRAMES, mean=mean, std=std, sampling_rate=SAMPLING_RATE
    )
    other = {}
    served_features = extractor_from_config(extractor.to_dict())  # exactly what the Triton step computes
    for name, clips in other_synthesizers().items():
        x = np.stack([served_features(w)["input_values"] for _, w in clips])
        other[name] = evaluate(model, x, np.array([label for label, _ in clips]))
    metrics = {
        "held_out_espeak_accuracy": evaluate(model, held_features, held_labels),
        "held_out_espeak_clips": len(held_labels),
        "other_synthesizers_accuracy": other,
        "training_seconds": round(training_seconds, 1),
        "training_examples": len(features),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": args.seed,
    }
    output = Path(args.output)
    model.eval()
    model.save_pretrained(output)
    extractor.save_pretrained(output)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    model_card.write(output, metrics)
    _log(start, json.dumps(metrics))
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m keyword_spotter.train")
    parser.add_argument("--output", default="keyword_spotter/checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-word", type=int, default=500, help="training utterances per keyword")
    parser.add_argument("--per-unknown", type=int, default=1200, help="training utterances of other words")
    parser.add_argument("--silence", type=int, default=600, help="silence / noise clips")
    parser.add_argument("--copies", type=int, default=3, help="augmented copies of each clip")
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--heldout-per-word", type=int, default=30)
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
