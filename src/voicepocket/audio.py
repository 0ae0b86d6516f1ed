"""Encoding mono float32 PCM into container formats, chunk by chunk.

This module owns turning the samples a voice yields into the bytes of an audio file, both
for streaming over HTTP (bytes leave while later sentences are still being synthesized) and
for storing. It knows nothing about models: only samples, rates and formats.

The formats are OpenAI's ``response_format`` names::

    format  file                              rate                          streams
    wav     RIFF WAVE, 16-bit PCM             the voice's                   yes
    mp3     MPEG Layer III, mono, CBR 64      smallest MP3 rate >= voice    yes
            kbit/s (96 at >= 32 kHz, 32 below 16 kHz)
    opus    Ogg Opus, ~32 kbit/s VBR          smallest Opus rate >= voice   yes, 100 ms pages
    flac    FLAC, 16-bit                      the voice's                   no: at finish()
    pcm     raw signed 16-bit LE, no header   24 kHz, as OpenAI documents   yes

Resampling uses one ``soxr.ResampleStream`` per file, flushed at the end, so chunk
boundaries are seamless: the output equals resampling the whole signal at once.

How a streamed file stays valid when its header went out before its length was known:

* ``wav``: the header carries the largest sizes that still fit and are block aligned
  (RIFF 0xFFFFFFFE, data 0xFFFFFFDA; plain 0xFFFFFFFF is odd, which strict readers reject).
  Readers (libsndfile, Python's ``wave``, ffmpeg) stop at the end of the bytes. A file
  produced whole (``encode_all``) gets the real sizes.
* ``mp3``: libsndfile reserves the first frame for LAME's Info tag (length, gapless
  trimming) and fills it in at close. Streamed, that frame has already gone out, so it
  stays an empty (silent) frame, and decoders also play the encoder delay and padding:
  about 0.1 s more silence than the same audio from ``encode_all``, which has the tag.
* ``opus``: libsndfile writes Ogg pages in order and never goes back. Its default page
  holds 1 s of audio; we ask for 100 ms so a sentence leaves the encoder almost at once.
* ``flac``: a streamed FLAC must leave STREAMINFO's sample count at 0 ("unknown"). That is
  valid, but libsndfile (so soundfile, so most Python users) cannot read such a file, so
  FLAC is held until ``finish()``, when libsndfile has written the real count and MD5.

Empty audio (no samples at all): ``wav`` is a header with no frames and ``pcm`` is zero
bytes; ``mp3``, ``opus`` and ``flac`` get one sample of silence, because libsndfile writes
nothing decodable for zero samples.

``aac`` is not offered: nothing installed encodes it (libsndfile has no AAC codec).
"""

from __future__ import annotations

import enum
import io
import itertools
import logging
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePath
from types import MappingProxyType, TracebackType
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr

from voicepocket.chunks import AudioChunk
from voicepocket.errors import UnsupportedFormat

_LOGGER = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("wav", "mp3", "opus", "flac", "pcm")
"""Every ``response_format`` we encode."""

MEDIA_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "wav": "audio/wav",
        "mp3": "audio/mpeg",
        # RFC 7845 registers audio/ogg for Ogg Opus files; OpenAI's "audio/opus" is the
        # RTP payload type (RFC 7587), which browsers do not take for a file.
        "opus": "audio/ogg",
        "flac": "audio/flac",
        # Unregistered, but what OpenAI-compatible clients expect; audio/L16 would be wrong,
        # as it is big-endian.
        "pcm": "audio/pcm",
    }
)
"""The ``Content-Type`` of each format."""

PCM_RATE = 24_000
"""Rate of the ``pcm`` format in Hertz: OpenAI documents raw 24 kHz 16-bit little-endian."""

_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {
        ".wav": "wav",
        ".mp3": "mp3",
        ".opus": "opus",
        ".ogg": "opus",
        ".flac": "flac",
        ".pcm": "pcm",
        ".raw": "pcm",
    }
)

_OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)
_MP3_RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)

_OPUS_BITS_PER_S = 32_000
_OPUS_PAGE_MS = 100.0
_SFC_SET_OGG_PAGE_LATENCY_MS = 0x1302  # sndfile.h, libsndfile >= 1.1; soundfile lacks it

# (lowest rate, lowest kbit/s, highest kbit/s, our CBR kbit/s) for MPEG-1, 2 and 2.5; the
# range is the one libsndfile maps compression levels onto (mpeg_l3_encoder_set_quality).
_MP3_BITRATES = ((32_000, 32, 320, 96), (16_000, 8, 160, 64), (0, 8, 64, 32))

_WAV_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_WAV_RIFF_OVERHEAD = _WAV_HEADER.size - 8  # RIFF size counts everything after its field
_WAV_MAX_DATA = (0xFFFFFFFF - _WAV_RIFF_OVERHEAD) & ~1  # largest block-aligned data size


def check_format(fmt: str, *, param: str | None = "response_format") -> str:
    """Return ``fmt`` normalized (``" MP3"`` -> ``"mp3"``); raise ``UnsupportedFormat`` if
    we do not encode it, naming ``param`` as the request field at fault."""
    name = fmt.strip().lower()
    if name in FORMATS:
        return name
    supported = ", ".join(FORMATS)
    if name == "aac":
        message = f"Audio format 'aac' is not available on this server; use one of: {supported}."
    else:
        message = f"Unsupported audio format {name[:32]!r}; use one of: {supported}."
    raise UnsupportedFormat(message, param=param)


def format_from_path(path: str | os.PathLike[str], default: str = "wav") -> str:
    """The format a file name asks for by its extension, or ``default`` if it has none.

    ``.ogg`` means Ogg Opus and ``.raw`` means ``pcm``. An unknown extension raises
    ``UnsupportedFormat`` rather than writing, say, WAV bytes into ``speech.m4a``.
    """
    suffix = PurePath(path).suffix.lower()
    if not suffix:
        return check_format(default, param=None)
    return check_format(_EXTENSIONS.get(suffix, suffix.removeprefix(".")), param=None)


def output_rate(fmt: str, voice_rate: int) -> int:
    """Rate in Hertz at which ``fmt`` carries audio synthesized at ``voice_rate``.

    ``wav`` and ``flac`` keep the voice's rate and ``pcm`` is always 24 kHz. ``opus`` and
    ``mp3`` allow a fixed set of rates: we take the smallest one at or above the voice's,
    which keeps all of its bandwidth (22.05 kHz Piper voices go to 24 kHz Opus; a decoder
    plays Opus at 48 kHz whatever the input rate, so going higher would only cost CPU).
    """
    fmt = check_format(fmt)
    if voice_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {voice_rate}")
    if fmt == "pcm":
        return PCM_RATE
    if fmt == "opus":
        return _at_least(voice_rate, _OPUS_RATES)
    if fmt == "mp3":
        return _at_least(voice_rate, _MP3_RATES)
    return voice_rate


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Mono float PCM in [-1, 1] as signed 16-bit little-endian bytes.

    Like libsndfile's FLAC writer we scale by 32768, round to nearest and clip to the int16
    range, so ``wav``, ``pcm`` and ``flac`` carry the same integers for the same samples, and
    int16 audio read back as float (divided by 32768) re-encodes to the very same bytes.
    """
    scaled = np.clip(_mono_float32(samples) * np.float32(32768.0), -32768.0, 32767.0)
    return np.rint(scaled).astype("<i2").tobytes()


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class StreamEncoder:
    """Encodes the audio of one response into one file, chunk by chunk.

    ``encode()`` returns the bytes that are final so far (possibly ``b""``), ``finish()``
    the rest; concatenated, they are the file. With ``progressive=False`` every byte waits
    for ``finish()``, so headers carry real sizes (use this for storage). ``flac`` is never
    progressive (see the module docstring). Not thread-safe: one encoder per response.
    """

    def __init__(self, fmt: str, *, sample_rate: int, progressive: bool = True) -> None:
        self.format = check_format(fmt)
        """The normalized format name."""

        self.sample_rate = output_rate(self.format, sample_rate)
        """Rate of the encoded audio in Hertz."""

        self.progressive = progressive and self.format != "flac"
        """Whether ``encode()`` hands out bytes before ``finish()``."""

        # None when the voice's rate is already the format's.
        self._resampler = (
            soxr.ResampleStream(sample_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
            if sample_rate != self.sample_rate
            else None
        )
        self._sink = _ByteSink()
        self._codec = _open_codec(self.format, self._sink, self.sample_rate)
        self._state = _State.OPEN

    def encode(self, samples: np.ndarray) -> bytes:
        """Add mono float32 samples at the voice's rate; return the bytes now final."""
        self._check_open()
        pcm = _mono_float32(samples)
        if self._resampler is not None and len(pcm):
            pcm = self._resampler.resample_chunk(pcm)
        self._codec.write(pcm)
        return self._sink.take() if self.progressive else b""

    def finish(self) -> bytes:
        """Flush the resampler and the codec; return the remaining bytes of the file."""
        self._check_open()
        self._state = _State.CLOSED
        try:
            if self._resampler is not None:
                self._codec.write(
                    self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                )
        finally:
            self._codec.close()
        return self._sink.take()

    def close(self) -> None:
        """Abandon an unfinished file (e.g. the client went away) and free the codec."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
            self._codec.close()
            self._sink.take()

    def __enter__(self) -> StreamEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            raise ValueError("The encoder is closed: finish() or close() was already called.")


def encode_stream(
    chunks: Iterable[AudioChunk], fmt: str, *, sample_rate: int | None = None
) -> Iterator[bytes]:
    """Yield the bytes of one ``fmt`` file as ``chunks`` arrive.

    The rate is the first chunk's; ``sample_rate`` is needed only if ``chunks`` may be empty.
    The format is checked now, before iteration, so an HTTP layer can still answer 400.
    """
    return _encode_chunks(chunks, check_format(fmt), sample_rate, progressive=True)


def encode_all(chunks: Iterable[AudioChunk], fmt: str, *, sample_rate: int | None = None) -> bytes:
    """The whole ``fmt`` file for ``chunks``, with exact headers (for storage)."""
    return b"".join(_encode_chunks(chunks, check_format(fmt), sample_rate, progressive=False))


def _encode_chunks(
    chunks: Iterable[AudioChunk], fmt: str, sample_rate: int | None, *, progressive: bool
) -> Iterator[bytes]:
    iterator = iter(chunks)
    first = next(iterator, None)
    rate = first.sample_rate if first is not None else sample_rate
    if rate is None:
        raise ValueError("No audio chunks and no sample_rate: cannot write an empty file.")
    head = [] if first is None else [first]
    with StreamEncoder(fmt, sample_rate=rate, progressive=progressive) as encoder:
        for chunk in itertools.chain(head, iterator):
            if chunk.sample_rate != rate:
                raise ValueError(f"Chunk at {chunk.sample_rate} Hz in a {rate} Hz stream.")
            if data := encoder.encode(chunk.samples):
                yield data
        if data := encoder.finish():
            yield data


def _at_least(rate: int, allowed: tuple[int, ...]) -> int:
    return next((candidate for candidate in allowed if candidate >= rate), allowed[-1])


def _mono_float32(samples: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(samples, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"Expected mono samples (a 1-D array), got shape {array.shape}.")
    if not np.isfinite(array).all():
        # A NaN reaching lrintf or an encoder's state is undefined behaviour; silence is not.
        array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0)
    return array


class _ByteSink:
    """A write-only virtual file that hands out bytes as soon as the writer is done with them.

    Writers (libsndfile through soundfile's virtual I/O, or our WAV writer) use ``write``,
    ``seek`` and ``tell``. Bytes from ``_base`` on are held; ``take()`` hands them out and
    forgets them, so memory does not grow with the length of a stream. A later write below
    ``_base`` is a header patch for bytes already sent: it is dropped, and the module
    docstring says why each streamed format is valid without it. A patch to bytes still
    held lands, which is how a file encoded whole gets exact headers.
    """

    def __init__(self) -> None:
        self._held = bytearray()
        """Bytes at file offsets ``_base`` onwards, not yet handed out."""

        self._base = 0
        """File offset of ``_held[0]``: everything before it has been handed out."""

        self._pos = 0
        """The writer's position in the file."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        skip = min(max(self._base - self._pos, 0), size)
        if skip < size:
            start = self._pos + skip - self._base
            end = start + size - skip
            if end > len(self._held):
                self._held.extend(bytes(end - len(self._held)))
            self._held[start:end] = view[skip:]
        self._pos += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._base + len(self._held)
        self._pos = max(offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        """Hand out every held byte; they can no longer change."""
        data = bytes(self._held)
        self._base += len(self._held)
        self._held.clear()
        return data


class _Codec(Protocol):
    """Writes one format into a ``_ByteSink``."""

    def write(self, pcm: np.ndarray) -> None:
        """Encode mono float32 samples already at the format's rate."""
        ...

    def close(self) -> None:
        """Write whatever is pending and patch headers; the codec is unusable afterwards."""
        ...


def _open_codec(fmt: str, sink: _ByteSink, rate: int) -> _Codec:
    if fmt == "wav":
        return _WavCodec(sink, rate)
    if fmt == "pcm":
        return _PcmCodec(sink)
    return _SndfileCodec(_open_sndfile(fmt, sink, rate))


class _PcmCodec:
    """Headerless 16-bit little-endian samples."""

    def __init__(self, sink: _ByteSink) -> None:
        self._sink = sink

    def write(self, pcm: np.ndarray) -> None:
        self._sink.write(float_to_pcm16(pcm))

    def close(self) -> None:
        pass


class _WavCodec:
    """RIFF WAVE, 16-bit mono; the header goes out first with streaming sizes."""

    def __init__(self, sink: _ByteSink, rate: int) -> None:
        self._sink = sink
        self._rate = rate
        self._data_size = 0
        sink.write(_wav_header(rate, _WAV_MAX_DATA))

    def write(self, pcm: np.ndarray) -> None:
        data = float_to_pcm16(pcm)
        self._sink.write(data)
        self._data_size += len(data)

    def close(self) -> None:
        # Like libsndfile at close: rewrite the header with the real sizes. When the header
        # has been streamed already, the sink drops this and the max sizes stand.
        end = self._sink.tell()
        self._sink.seek(0)
        self._sink.write(_wav_header(self._rate, min(self._data_size, _WAV_MAX_DATA)))
        self._sink.seek(end)


def _wav_header(rate: int, data_size: int) -> bytes:
    channels, bytes_per_sample = 1, 2
    block_align = channels * bytes_per_sample
    return _WAV_HEADER.pack(
        b"RIFF",
        _WAV_RIFF_OVERHEAD + data_size,
        b"WAVE",
        b"fmt ",
        16,  # size of the PCM fmt chunk
        1,  # WAVE_FORMAT_PCM
        channels,
        rate,
        rate * block_align,
        block_align,
        8 * bytes_per_sample,
        b"data",
        data_size,
    )


class _SndfileCodec:
    """MP3, Ogg Opus and FLAC through libsndfile, writing into a ``_ByteSink``."""

    def __init__(self, file: sf.SoundFile) -> None:
        self._file = file
        self._frames = 0

    def write(self, pcm: np.ndarray) -> None:
        if len(pcm):
            self._file.write(pcm)
            self._frames += len(pcm)

    def close(self) -> None:
        if self._file.closed:
            return
        if self._frames == 0:
            # libsndfile writes nothing decodable for zero samples; one sample of silence
            # makes a valid, practically empty file.
            self._file.write(np.zeros(1, dtype=np.float32))
        self._file.close()


def _open_sndfile(fmt: str, sink: _ByteSink, rate: int) -> sf.SoundFile:
    if fmt == "flac":
        return sf.SoundFile(sink, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16")
    if fmt == "mp3":
        # CBR, not libsndfile's default VBR: a streamed MP3 has no Info tag, and without it
        # only a constant bitrate lets players (and libsndfile) work out the length.
        return sf.SoundFile(
            sink,
            "w",
            samplerate=rate,
            channels=1,
            format="MP3",
            subtype="MPEG_LAYER_III",
            compression_level=_mp3_compression_level(rate),
            bitrate_mode="CONSTANT",
        )
    file = sf.SoundFile(
        sink,
        "w",
        samplerate=rate,
        channels=1,
        format="OGG",
        subtype="OPUS",
        # libsndfile maps level q to (1 - q) * 250 kbit/s + 6 kbit/s (ogg_opus_command).
        compression_level=1.0 - (_OPUS_BITS_PER_S - 6_000) / 250_000,
    )
    _set_ogg_page_latency(file, _OPUS_PAGE_MS)
    return file


def _mp3_compression_level(rate: int) -> float:
    """libsndfile's compression level that gives our CBR bitrate at ``rate``.

    libsndfile maps 0..1 linearly from the MPEG version's highest bitrate down to its
    lowest and truncates to whole kbit/s, so aim half a kbit/s above the target.
    """
    lowest, highest, kbps = next(
        (low, high, kbps) for floor, low, high, kbps in _MP3_BITRATES if rate >= floor
    )
    return (highest - (kbps + 0.5)) / (highest - lowest)


def _set_ogg_page_latency(file: sf.SoundFile, milliseconds: float) -> None:
    """Make libsndfile close an Ogg page every ``milliseconds`` of audio instead of 1 s.

    soundfile does not wrap SFC_SET_OGG_PAGE_LATENCY_MS, so this uses its cffi handles.
    Should they move in a later soundfile, pages stay 1 s long: later, but still valid.
    """
    try:
        ffi, lib, handle = sf._ffi, sf._snd, file._file
    except AttributeError:
        _LOGGER.debug("soundfile hides its libsndfile handle; Ogg pages stay 1 s long")
        return
    value = ffi.new("double *", milliseconds)
    lib.sf_command(handle, _SFC_SET_OGG_PAGE_LATENCY_MS, value, ffi.sizeof("double"))
