"""Audio files as users send them, made by the ffmpeg command-line tool (a static build from the
imageio-ffmpeg wheel, independent of the FFmpeg libraries inside PyAV), and ffmpeg's own decode of them as
HF's servers do it (``ffmpeg -i - -ac 1 -ar 16000 -f f32le -``)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SOURCE = ROOT / "samples" / "yes.wav"  # 16 kHz mono speech

# name -> (ffmpeg output options, container/extension, lossy, written to a pipe (unseekable: streamed))
FORMATS: dict[str, tuple[list[str], str, bool, bool]] = {
    "wav-pcm16": (["-c:a", "pcm_s16le"], "wav", False, False),
    "wav-float": (["-c:a", "pcm_f32le"], "wav", False, False),
    "wav-ulaw": (["-c:a", "pcm_mulaw"], "wav", True, False),
    "wav-alaw": (["-c:a", "pcm_alaw"], "wav", True, False),
    "wav-adpcm-ima": (["-c:a", "adpcm_ima_wav"], "wav", True, False),
    "wav-adpcm-ms": (["-c:a", "adpcm_ms"], "wav", True, False),
    "flac": (["-c:a", "flac"], "flac", False, False),
    "flac-streamed": (["-c:a", "flac"], "flac", False, True),
    "ogg-vorbis": (["-c:a", "libvorbis"], "ogg", True, False),
    "ogg-opus": (["-c:a", "libopus"], "ogg", True, False),
    "opus": (["-c:a", "libopus"], "opus", True, False),
    "mp3": (["-c:a", "libmp3lame", "-b:a", "64k"], "mp3", True, False),
    "webm-opus": (["-c:a", "libopus"], "webm", True, False),
    "webm-opus-streamed": (["-c:a", "libopus"], "webm", True, True),  # MediaRecorder: no duration, no cues
    "m4a-aac": (["-c:a", "aac", "-b:a", "64k"], "ipod", True, False),  # Safari, iOS voice memos
    "mp4-aac-fragmented": (["-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"], "mp4", True, True),
    "m4a-alac": (["-c:a", "alac"], "ipod", False, False),
    "amr-nb": (["-c:a", "libopencore_amrnb", "-ar", "8000", "-b:a", "12.2k"], "amr", True, False),
    "aiff": (["-c:a", "pcm_s16be"], "aiff", False, False),
    "caf": (["-c:a", "pcm_s16le"], "caf", False, False),
}


def ffmpeg_encode(name: str, source: Path = SOURCE, extra_input: list[str] | None = None) -> bytes:
    options, container, _, streamed = FORMATS[name]
    inputs = extra_input or ["-i", str(source)]
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *inputs, "-ac", "1", *options, "-f", container]
    if streamed:
        return subprocess.run([*command, "pipe:1"], capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip.{container}"
        subprocess.run([*command, str(path)], capture_output=True, check=True)
        return path.read_bytes()


def ffmpeg_decode(data: bytes, rate: int = 16000) -> np.ndarray:
    """What HF's servers decode a request to: mono float32 at ``rate``."""
    command = [
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        "pipe:0",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-f",
        "f32le",
        "pipe:1",
    ]
    return np.frombuffer(subprocess.run(command, input=data, capture_output=True, check=True).stdout, np.float32)
