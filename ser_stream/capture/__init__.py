"""Audio sources: a microphone (sounddevice) and a file or stdin (soundfile).

Both fill a :class:`~ser_stream.ringbuffer.RingBuffer` with mono float32 audio
at their native rate, from a thread of their own; the pipeline resamples.
"""
