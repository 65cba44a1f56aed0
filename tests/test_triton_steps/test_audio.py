"""triton_steps.audio: files libsndfile writes (another encoder than FFmpeg's), decoded as the ffmpeg CLI
decodes them; the downmix; what is refused and why; and that only audio is ever opened."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_formats import ffmpeg_decode as ffmpeg_cli_decode

from triton_steps.audio import AudioError, describe, load, resample

ROOT = Path(__file__).resolve().parents[2]

FORMATS = {  # name -> (soundfile format, subtype)
    "wav-pcm16": ("WAV", "PCM_16"),
    "wav-pcm24": ("WAV", "PCM_24"),
    "wav-float": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_16"),
    "ogg-vorbis": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def tones(rate: int, channels: int, seconds: float = 0.8) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    columns = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_libsndfiles_files_decode_as_the_ffmpeg_cli(fmt: str, rate: int, channels: int) -> None:
    if fmt == "mp3" and channels > 2:
        pytest.skip("MP3 carries at most two channels")
    data = encode(tones(rate, channels), rate, *FORMATS[fmt])
    for target in (16000, 8000):
        ours, theirs = load(data, target), ffmpeg_cli_decode(data, target)
        assert len(ours) == len(theirs)
        np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fmt", ["wav-float", "flac"])
@pytest.mark.parametrize("channels", [2, 3, 4, 6, 8, 12])
def test_downmix_is_ffmpegs(fmt: str, channels: int) -> None:
    """What transformers' pipeline decodes bytes to (``ffmpeg -ac 1``): FFmpeg's matrix for the layout (FLAC:
    quad, 5.1(side), ...; WAV without a channel mask: FFmpeg's guess), not the channels' average."""
    if fmt == "flac" and channels > 8:
        pytest.skip("FLAC carries at most eight channels")
    data = encode(tones(16000, channels), 16000, *FORMATS[fmt])
    ours, theirs = load(data, 16000), ffmpeg_cli_decode(data)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert not np.allclose(ours, tones(16000, channels).mean(axis=1), atol=1e-3)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resample_keeps_pitch_and_duration(rate: int) -> None:
    t = np.arange(rate) / rate
    resampled = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), rate, 16000)
    assert resampled.dtype == np.float32 and abs(len(resampled) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(resampled))
    assert abs(np.argmax(spectrum) * 16000 / len(resampled) - 440) < 2


def test_load_stereo_44k_mp3_to_16k_mono() -> None:
    data = encode(tones(44100, 2, 1.0), 44100, "MP3", "MPEG_LAYER_III")
    waveform = load(data, 16000)
    assert waveform.ndim == 1 and waveform.dtype == np.float32
    assert abs(len(waveform) - 16000) < 1200


def _with_bits_per_sample(bits: int) -> bytes:
    """A 16-bit PCM WAV whose header claims ``bits`` bits per sample."""
    wav = bytearray(encode(np.zeros((1600, 1), np.float32), 16000, "WAV", "PCM_16"))
    wav[34:36] = bits.to_bytes(2, "little")  # the fmt chunk's bits-per-sample field
    return bytes(wav)


def _flac_without_frames() -> bytes:
    """A FLAC's marker and metadata blocks, its audio frames cut off (about 100 bytes)."""
    flac = encode(np.zeros((1600, 1), np.float32), 16000, "FLAC", "PCM_16")
    end = 4
    while True:  # each metadata block: a last-block flag, its type, its 24-bit length
        last, length = flac[end] & 0x80, int.from_bytes(flac[end + 1 : end + 4], "big")
        end += 4 + length
        if last:
            return flac[:end]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty audio"),
        (_flac_without_frames(), "no samples"),  # answered 200 "_silence_" once
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "could not decode"),
        (bytes(range(256)) * 4, "could not decode"),
        (encode(np.zeros((0, 1), np.float32), 16000, "WAV", "PCM_16"), "no samples"),
        (encode(np.full((100, 1), np.nan, np.float32), 16000, "WAV", "FLOAT"), "NaN"),
        (_with_bits_per_sample(0), "no decoder here reads"),  # a 502 with an AttributeError once
        (_with_bits_per_sample(255), "no decoder here reads"),
    ],
)
def test_bad_audio_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        load(data, 16000)


def test_length_limits() -> None:
    data = encode(tones(16000, 1, 2.0), 16000, "WAV", "PCM_16")
    with pytest.raises(AudioError, match="at most 1 s"):
        load(data, 16000, max_seconds=1.0)
    with pytest.raises(AudioError, match="too short"):
        load(data, 16000, min_samples=40000)
    assert len(load(data, 16000, min_samples=400, max_seconds=2.0)) == 32000


SAMPLE = str(ROOT / "samples" / "yes.wav")
NOT_AUDIO = {  # what FFmpeg would open or wait on if its demuxer were allowed
    "ffconcat": f"ffconcat version 1.0\nfile '{SAMPLE}'\n".encode(),
    "sdp": b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n",
    "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{SAMPLE}\n#EXT-X-ENDLIST\n".encode(),
    "playlist": f"#EXTM3U\n#EXTINF:1,yes\nfile://{SAMPLE}\n".encode(),
    "a path": SAMPLE.encode(),
    "an image": bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(64),
}
# Runs the decoder on each body between two marker lookups, under strace: nothing else may touch a file or
# the network in between.
UNDER_STRACE = """
import json, os, sys
from triton_steps.audio import AudioError, load
bodies = {name: bytes.fromhex(body) for name, body in json.loads(sys.stdin.read()).items()}
load(open(sys.argv[1], "rb").read(), 8000)  # everything the decoder loads lazily, loaded
def marker(name):
    try:
        os.stat(f"/hf-audio-triton-{name}")
    except FileNotFoundError:
        pass
answers = {}
marker("begin")
for name, body in bodies.items():
    try:
        load(body, 16000)
        answers[name] = "decoded"
    except AudioError as error:
        answers[name] = str(error)
marker("end")
print(json.dumps(answers))
"""


def test_only_audio_is_opened_no_file_or_socket() -> None:
    """ffconcat, SDP, HLS, playlists and the like name files or open sockets: they are refused (400 at the
    gateway) before any demuxer reads them, and the refusal never names the server's files."""
    strace = shutil.which("strace")
    assert strace, "strace is missing (scripts/install-system-packages.sh test installs it)"
    bodies = json.dumps({name: body.hex() for name, body in NOT_AUDIO.items()})
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace"
        run = subprocess.run(
            [strace, "-f", "-qq", "-e", "trace=%file,%network", "-o", str(trace)]
            + [sys.executable, "-c", UNDER_STRACE, SAMPLE],
            input=bodies,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=True,
        )
        calls = trace.read_text().splitlines()
    begin = next(i for i, line in enumerate(calls) if "hf-audio-triton-begin" in line)
    end = next(i for i, line in enumerate(calls) if "hf-audio-triton-end" in line)
    assert calls[begin + 1 : end] == []
    answers = json.loads(run.stdout)
    for name, answer in answers.items():
        assert answer.startswith("could not decode the audio"), (name, answer)
        assert "yes.wav" not in answer and "samples" not in answer, (name, answer)


def test_the_decoder_is_named_with_its_release() -> None:
    assert describe(8000) == "FFmpeg 7.0.2 (PyAV 13.1.0), as `ffmpeg -i - -ac 1 -ar 8000 -f f32le -`"
