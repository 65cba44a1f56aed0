"""Every container, codec, rate and channel layout a real user sends, made by the ffmpeg command-line tool (a
static build of FFmpeg 7.0.2 from the pinned imageio-ffmpeg wheel, independent of the FFmpeg libraries inside
PyAV), decoded by ours and compared with the CLI's own decode as transformers' pipeline runs it
(``ffmpeg -i pipe:0 -ac 1 -ar SR -f f32le pipe:1``): the same length, the same samples (float decoders' SIMD
aside); plus streamed files, truncated files and decompression bombs, with the decoder's peak memory measured
in a fresh process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_formats import CORPUS, FFMPEG, FORMATS, corpus, corpus_file, ffmpeg_decode, ffmpeg_encode

from triton_steps.audio import AudioError, load

ROOT = Path(__file__).resolve().parents[2]
SAME = 1e-6  # float decoders (AAC, Opus, Vorbis, MP3) in two builds of one FFmpeg differ by up to 1.5e-7 here


@pytest.mark.parametrize("rate", [16000, 8000])
def test_every_file_decodes_exactly_as_the_ffmpeg_cli(rate: int) -> None:
    for name, data in corpus().items():
        ours, theirs = load(data, rate), ffmpeg_decode(data, rate)
        assert len(ours) == len(theirs), name
        np.testing.assert_allclose(ours, theirs, atol=SAME, rtol=0, err_msg=name)


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_decodes_exactly_as_the_ffmpeg_cli(name: str) -> None:
    data = ffmpeg_encode(name)
    ours, theirs = load(data, 16000), ffmpeg_decode(data)
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours, theirs, atol=SAME, rtol=0)


def test_mp3_keeps_its_end_padding_as_the_cli_reading_a_pipe() -> None:
    """FFmpeg trims an MP3's end padding (its LAME header says how much) only where it can seek: the CLI
    reading a pipe keeps it, and so does the decoder (190 samples at 16 kHz here)."""
    data = ffmpeg_encode("mp3")
    waveform = load(data, 16000)
    assert len(waveform) == len(ffmpeg_decode(data)) == len(load(ffmpeg_encode("wav-pcm16"), 16000)) + 190
    assert not waveform[-190:].any()


def test_an_mp4_with_its_index_at_the_end_decodes_as_the_cli_reads_the_file() -> None:
    """The CLI cannot read such an MP4 from a pipe once the audio before the index passes its buffer (the
    pipeline then fails); the decoder holds the whole body and reads it as the CLI reads the file itself."""
    rate, layout, options, _ = CORPUS["alac-m4a-44100-stereo"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index-last.m4a"
        source = ["-f", "lavfi", "-i", f"anoisesrc=r={rate}:a=0.2:d=3", "-ac", "2"]
        subprocess.run([FFMPEG, "-loglevel", "error", *source, *options, str(path)], check=True)
        data = path.read_bytes()
        assert data.index(b"moov") > data.index(b"mdat")
        assert not len(ffmpeg_decode(data))  # the CLI on a pipe: nothing
        from_file = subprocess.run(
            [FFMPEG, "-loglevel", "quiet", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"],
            capture_output=True,
            check=True,
        ).stdout
    np.testing.assert_allclose(load(data, 16000), np.frombuffer(from_file, np.float32), atol=SAME, rtol=0)
    assert layout == "stereo"


def test_streamed_flac_reports_no_length_and_still_decodes() -> None:
    data = ffmpeg_encode("flac-streamed")
    total_samples = int.from_bytes(data[18:26], "big") & ((1 << 36) - 1)  # STREAMINFO: 36-bit sample count
    assert total_samples == 0  # what ffmpeg, sox and flac write to a pipe
    np.testing.assert_array_equal(load(data, 16000), ffmpeg_decode(data))


def test_a_mono_16_bit_wav_at_the_models_rate_is_read_bit_for_bit_as_ffmpeg_reads_it() -> None:
    """The one file read without FFmpeg (the standard library's wave): every int16 value, as the CLI gives it."""
    values = np.tile(np.arange(-32768, 32768, dtype=np.int16), 2)
    buffer = io.BytesIO()
    soundfile.write(buffer, values, 16000, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    np.testing.assert_array_equal(load(data, 16000).view(np.int32), ffmpeg_decode(data).view(np.int32))
    streamed = bytearray(corpus_file("wav-s16-16000-mono"))
    size = streamed.index(b"data") + 4
    streamed[size : size + 4] = bytes(4)  # a data chunk of length 0, as written to a pipe: FFmpeg reads to the end
    assert len(ffmpeg_decode(bytes(streamed))) == len(load(corpus_file("wav-s16-16000-mono"), 16000))
    np.testing.assert_array_equal(load(bytes(streamed), 16000), ffmpeg_decode(bytes(streamed)))


@pytest.mark.parametrize("name", FORMATS)
def test_a_truncated_file_is_an_audio_error_or_its_decodable_part(name: str) -> None:
    data = ffmpeg_encode(name)
    cut = data[: len(data) // 2]
    try:
        waveform = load(cut, 16000)
    except AudioError as error:
        assert str(error)
    else:  # a stream cut in half is still the first half of the audio
        assert 0 < len(waveform) <= len(load(data, 16000))


PEAK_RSS = """
import json, resource, sys
from triton_steps.audio import AudioError, load
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load(data, 16000, max_seconds=float(sys.argv[2]))
    outcome = "accepted"
except AudioError as error:
    outcome = str(error)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "peak_growth_mb": (after - before) / 1024}))
"""


def decode_in_fresh_process(data: bytes, max_seconds: float) -> dict:
    """The outcome of ``load`` and how much the process's peak RSS grew while it ran."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        file.write(data)
        file.flush()
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, file.name, str(max_seconds)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=True,
        )
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", ["webm-opus", "m4a-aac", "flac-streamed", "mp3"])
def test_an_hour_of_silence_is_refused_at_the_limit_with_bounded_memory(name: str) -> None:
    silence = ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3600"]
    data = ffmpeg_encode(name, extra_input=silence)
    outcome = decode_in_fresh_process(data, max_seconds=120)
    assert "longer than 120 s" in outcome["outcome"]
    # Decoding stops at the limit: 120 s of 16 kHz mono is 7.7 MB; the whole hour would be 230 MB.
    assert outcome["peak_growth_mb"] < 60, outcome


def test_a_header_claiming_huge_rates_and_channels_is_refused_before_decoding() -> None:
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=655350:duration=2"]
    data = ffmpeg_encode("flac", extra_input=[*tone, "-ac", "8"])
    with pytest.raises(AudioError, match="unsupported sampling rate 655350 Hz"):
        load(data, 16000, max_seconds=120)


def test_a_flac_header_claiming_2_to_the_36_frames_allocates_nothing_from_it() -> None:
    data = bytearray(ffmpeg_encode("flac"))
    assert data[:4] == b"fLaC"
    streaminfo = data[8:42]  # after the 4-byte marker and the 4-byte block header
    packed = int.from_bytes(streaminfo[10:18], "big")
    packed |= (1 << 36) - 1  # the low 36 bits: total samples = 2^36 - 1
    data[18:26] = packed.to_bytes(8, "big")
    outcome = decode_in_fresh_process(bytes(data), max_seconds=120)
    assert outcome["outcome"] == "accepted"  # the real (short) audio decodes
    assert outcome["peak_growth_mb"] < 60, outcome


def _flac(rate: int, channels: int, seconds: float) -> bytes:
    buffer = io.BytesIO()
    silence = np.zeros((int(rate * seconds), channels), np.int16)  # compresses to almost nothing, as an attack's
    soundfile.write(buffer, silence, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def test_the_decode_budget_bounds_rate_times_channels_times_seconds() -> None:
    """Each limit alone admits 119 s x 8 channels x 384 kHz (a 400 kB FLAC, 2.3 s of CPU to decode); the budget
    (max_seconds of 48 kHz stereo) stops it after 3.8 s of its audio, while real recordings pass."""
    assert len(load(_flac(48_000, 2, 5), 16000, max_seconds=5)) == 5 * 16000  # the longest clip, 48 kHz stereo
    with pytest.raises(AudioError, match="costs more to decode than this model allows: 4 channels at 48000 Hz"):
        load(_flac(48_000, 4, 5), 16000, max_seconds=5)
    attack = _flac(384_000, 8, 119)
    assert len(attack) < 500_000
    with pytest.raises(AudioError, match=r"8 channels at 384000 Hz pass 11520000 samples .* after 3\.8 s"):
        load(attack, 16000, max_seconds=120)
