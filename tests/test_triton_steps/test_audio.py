"""triton_steps.audio: decoding checked against an independent decoder (FFmpeg, through PyAV)."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile
from audio_formats import ffmpeg_decode as ffmpeg_cli_decode

from triton_steps.audio import AudioError, decode, load, resample

FORMATS = {  # name -> (soundfile format, subtype, lossy)
    "wav-pcm16": ("WAV", "PCM_16", False),
    "wav-pcm24": ("WAV", "PCM_24", False),
    "wav-float": ("WAV", "FLOAT", False),
    "flac": ("FLAC", "PCM_16", False),
    "ogg-vorbis": ("OGG", "VORBIS", True),
    "mp3": ("MP3", "MPEG_LAYER_III", True),
}


def tones(rate: int, channels: int, seconds: float = 0.8) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    columns = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def ffmpeg_decode(data: bytes) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the rate, decoded by FFmpeg."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        chunks = []
        for frame in container.decode(stream):
            array = frame.to_ndarray()
            if array.dtype == np.int16:
                array = array / 32768.0
            elif array.dtype == np.int32:
                array = array / 2147483648.0
            chunks.append(array.reshape(-1, stream.channels) if frame.format.is_packed else array.T)
        return np.concatenate(chunks).astype(np.float32), stream.rate


def _aligned_error(ours: np.ndarray, theirs: np.ndarray, max_shift: int = 2000) -> float:
    """Smallest RMS difference over small shifts (lossy decoders may trim encoder delay differently)."""
    best = np.inf
    for shift in range(-max_shift, max_shift + 1, 1):
        a = ours[max(shift, 0) :]
        b = theirs[max(-shift, 0) :]
        n = min(len(a), len(b)) - 2000
        if n > len(ours) // 2:
            best = min(best, float(np.sqrt(np.mean((a[1000:n] - b[1000:n]) ** 2))))
    return best


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_decode_matches_ffmpeg(fmt: str, rate: int, channels: int) -> None:
    container, subtype, lossy = FORMATS[fmt]
    if fmt == "mp3" and rate not in (8000, 16000, 44100, 48000):
        pytest.skip("MP3 has no such rate")
    if fmt == "mp3" and channels > 2:
        pytest.skip("MP3 carries at most two channels")
    data = encode(tones(rate, channels), rate, container, subtype)
    ours, our_rate = decode(data)
    theirs, their_rate = ffmpeg_decode(data)
    assert our_rate == their_rate == rate
    assert ours.shape[1] == theirs.shape[1] == channels
    if lossy:
        # Decoders trim encoder delay differently, and order Vorbis' 5.1 channels differently: compare
        # the downmix (independent of channel order) over the best small alignment.
        assert abs(len(ours) - len(theirs)) <= 4096
        assert _aligned_error(ours.mean(axis=1), theirs.mean(axis=1), 1200 if fmt == "mp3" else 0) < 2e-3
    else:
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm16_decodes_bit_for_bit_as_libsndfile(channels: int) -> None:
    """16-bit PCM is read as int16 and scaled by the step: every one of the 65,536 values (and a block
    boundary) gives exactly the float libsndfile's own conversion gives."""
    values = np.tile(np.arange(-32768, 32768, dtype=np.int16), 2)  # 131,072 frames: past one block
    samples = np.stack([values, values[::-1]][:channels], axis=1)
    data = encode(samples, 16000, "WAV", "PCM_16")
    ours, _ = decode(data)
    theirs, _ = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.int32), theirs.view(np.int32))


@pytest.mark.parametrize("fmt", ["wav-float", "flac"])
@pytest.mark.parametrize("channels", [2, 3, 4, 6, 8, 12])
def test_downmix_is_ffmpegs(fmt: str, channels: int) -> None:
    """What transformers' pipeline decodes bytes to (``ffmpeg -ac 1``): FFmpeg's matrix for the layout (FLAC:
    quad, 5.1(side), ...; WAV without a channel mask: FFmpeg's guess), not the channels' average."""
    if fmt == "flac" and channels > 8:
        pytest.skip("FLAC carries at most eight channels")
    container, subtype, _ = FORMATS[fmt]
    data = encode(tones(16000, channels), 16000, container, subtype)
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
