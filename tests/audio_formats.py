"""Audio files as users send them, made by the ffmpeg command-line tool (a static build from the pinned
imageio-ffmpeg wheel: FFmpeg 7.0.2, the release inside the steps' PyAV, built independently of it), and
ffmpeg's own decode of them as transformers' pipeline and HF's servers do it
(``ffmpeg -i - -ac 1 -ar 16000 -f f32le -``)."""

from __future__ import annotations

import functools
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


# The recording every corpus file carries (speech on the first channel, quieter noise on the second), mixed to
# each layout with distinct weights per channel, so that the downmix matters.
_SPEECH_AND_NOISE = ["-i", str(SOURCE), "-f", "lavfi", "-i", "anoisesrc=r=16000:a=0.05:d=1.18:seed=3"]
_LAYOUTS = {
    "mono": "pan=mono|c0=c0+0.3*c1",
    "stereo": "pan=stereo|c0=c0|c1=0.6*c0+c1",
    "5.1": "pan=5.1|c0=c0|c1=c1|c2=0.5*c0|c3=0.2*c1|c4=0.7*c0|c5=c1",
    "7.1": "pan=7.1|c0=c0|c1=c1|c2=0.5*c0|c3=0.2*c1|c4=0.7*c0|c5=c1|c6=0.4*c0|c7=0.9*c1",
}
# name -> (rate, layout, ffmpeg codec options, container): every container and codec the README lists, at the
# rates of real recordings, mono to 7.1, integer and float PCM, lossy codecs at low and high bitrates.
CORPUS: dict[str, tuple[int, str, list[str], str]] = {
    **{f"wav-s16-{r}-mono": (r, "mono", ["-c:a", "pcm_s16le"], "wav") for r in (8000, 11025, 16000, 22050, 44100)},
    **{f"wav-s16-{r}-stereo": (r, "stereo", ["-c:a", "pcm_s16le"], "wav") for r in (16000, 48000, 96000, 192000)},
    "wav-u8-8000-mono": (8000, "mono", ["-c:a", "pcm_u8"], "wav"),
    "wav-mulaw-8000-mono": (8000, "mono", ["-c:a", "pcm_mulaw"], "wav"),
    "wav-alaw-8000-mono": (8000, "mono", ["-c:a", "pcm_alaw"], "wav"),
    "wav-s24-22050-stereo": (22050, "stereo", ["-c:a", "pcm_s24le"], "wav"),
    "wav-s32-96000-5.1": (96000, "5.1", ["-c:a", "pcm_s32le"], "wav"),
    "wav-f32-44100-7.1": (44100, "7.1", ["-c:a", "pcm_f32le"], "wav"),
    "wav-f64-48000-mono": (48000, "mono", ["-c:a", "pcm_f64le"], "wav"),
    "flac-16000-mono": (16000, "mono", ["-c:a", "flac"], "flac"),
    "flac-44100-stereo": (44100, "stereo", ["-c:a", "flac"], "flac"),
    "flac-s24-96000-stereo": (96000, "stereo", ["-c:a", "flac", "-sample_fmt", "s32"], "flac"),
    "flac-48000-5.1": (48000, "5.1", ["-c:a", "flac"], "flac"),
    "mp3-8000-mono-16k": (8000, "mono", ["-c:a", "libmp3lame", "-b:a", "16k"], "mp3"),
    "mp3-22050-mono-32k": (22050, "mono", ["-c:a", "libmp3lame", "-b:a", "32k"], "mp3"),
    "mp3-44100-stereo-64k": (44100, "stereo", ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3"),
    "mp3-48000-stereo-320k": (48000, "stereo", ["-c:a", "libmp3lame", "-b:a", "320k"], "mp3"),
    "vorbis-22050-mono-q1": (22050, "mono", ["-c:a", "libvorbis", "-q:a", "1"], "ogg"),
    "vorbis-48000-stereo-q8": (48000, "stereo", ["-c:a", "libvorbis", "-q:a", "8"], "ogg"),
    "opus-ogg-48000-mono-16k": (48000, "mono", ["-c:a", "libopus", "-b:a", "16k"], "ogg"),
    "opus-ogg-48000-stereo-128k": (48000, "stereo", ["-c:a", "libopus", "-b:a", "128k"], "ogg"),
    "opus-ogg-48000-5.1": (48000, "5.1", ["-c:a", "libopus"], "ogg"),
    "opus-webm-48000-mono-32k": (48000, "mono", ["-c:a", "libopus", "-b:a", "32k"], "webm"),
    "aac-m4a-8000-mono-24k": (8000, "mono", ["-c:a", "aac", "-b:a", "24k"], "ipod"),
    "aac-m4a-44100-stereo-64k": (44100, "stereo", ["-c:a", "aac", "-b:a", "64k"], "ipod"),
    "aac-m4a-48000-stereo-256k": (48000, "stereo", ["-c:a", "aac", "-b:a", "256k"], "ipod"),
    "aac-mp4-48000-7.1": (48000, "7.1", ["-c:a", "aac"], "mp4"),
    "aac-adts-44100-stereo": (44100, "stereo", ["-c:a", "aac"], "adts"),
    "alac-m4a-44100-stereo": (44100, "stereo", ["-c:a", "alac"], "ipod"),
    "amr-nb-8000-mono": (8000, "mono", ["-c:a", "libopencore_amrnb", "-b:a", "12.2k"], "amr"),
    "amr-wb-16000-mono": (16000, "mono", ["-c:a", "libvo_amrwbenc", "-b:a", "23.85k"], "amr"),
    "aiff-44100-stereo": (44100, "stereo", ["-c:a", "pcm_s16be"], "aiff"),
    "caf-48000-stereo": (48000, "stereo", ["-c:a", "pcm_s24le"], "caf"),
}


@functools.cache
def corpus_file(name: str) -> bytes:
    """The corpus file ``name`` (see ``CORPUS``), made by the ffmpeg CLI."""
    rate, layout, options, container = CORPUS[name]
    mix = f"[0:a][1:a]amerge=inputs=2,{_LAYOUTS[layout]},aresample={rate}"
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *_SPEECH_AND_NOISE, "-filter_complex", mix]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip.{container}"
        # an MP4's index first, as a phone's upload has it: the CLI reading a pipe cannot seek back to it
        # (tests/test_triton_steps/test_formats.py decodes the other order)
        index_first = ["-movflags", "+faststart"] if container in ("ipod", "mp4") else []
        subprocess.run([*command, *options, *index_first, "-f", container, str(path)], capture_output=True, check=True)
        return path.read_bytes()


def corpus() -> dict[str, bytes]:
    """Every corpus file and every shipped sample, by name."""
    samples = {f"sample-{path.name}": path.read_bytes() for path in sorted((ROOT / "samples").iterdir())}
    return {**{name: corpus_file(name) for name in CORPUS}, **samples}
