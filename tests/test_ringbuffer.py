import threading

import numpy as np

from ser_stream.ringbuffer import RingBuffer


def test_wraparound_preserves_order():
    rb = RingBuffer(10)
    stop = threading.Event()
    out = np.empty(10, dtype=np.float32)
    seen = []
    for i in range(0, 40, 7):
        rb.write(np.arange(i, i + 7, dtype=np.float32))
        n = rb.read(out, stop)
        seen.extend(out[:n].tolist())
    assert seen == list(range(0, 42))
    assert rb.overflow_samples == 0


def test_nonblocking_writer_overwrites_and_counts():
    rb = RingBuffer(10)
    stop = threading.Event()
    rb.write(np.arange(0, 25, dtype=np.float32))
    out = np.empty(100, dtype=np.float32)
    n = rb.read(out, stop)
    assert out[:n].tolist() == list(range(15, 25))  # the newest 10 survive
    assert rb.overflow_samples == 15 and rb.overflow_events == 1


def test_blocking_writer_loses_nothing_across_threads():
    rb = RingBuffer(97)
    stop = threading.Event()
    total = 50_000
    data = np.arange(total, dtype=np.float32)

    def writer():
        for i in range(0, total, 333):
            assert rb.write_blocking(data[i : i + 333], stop)
        rb.close()

    t = threading.Thread(target=writer)
    t.start()
    got = []
    out = np.empty(50, dtype=np.float32)
    while not rb.finished:
        n = rb.read(out, stop)
        got.append(out[:n].copy())
    t.join()
    assert np.array_equal(np.concatenate(got), data)
    assert rb.overflow_samples == 0


def test_reader_returns_zero_on_stop():
    rb = RingBuffer(10)
    stop = threading.Event()
    stop.set()
    assert rb.read(np.empty(4, dtype=np.float32), stop) == 0
    assert not rb.finished
    assert not rb.write_blocking(np.zeros(20, dtype=np.float32), stop)  # full and stopped


def test_read_times_out_without_data_and_finishes_after_close():
    rb = RingBuffer(10)
    stop = threading.Event()
    out = np.empty(4, dtype=np.float32)
    assert rb.read(out, stop, timeout=0.05) == 0 and not rb.finished
    rb.write(np.ones(3, dtype=np.float32))
    rb.close()
    assert rb.read(out, stop) == 3 and rb.finished


def test_a_writer_racing_past_the_reader_loses_exactly_what_is_counted():
    """A live writer laps a slow reader thousands of times (thread switches forced to the microsecond):
    every sample the reader returns is the one at its position (no overwritten sample slips through
    as older audio), and the samples it did not return are exactly the ones counted as lost."""
    import sys

    rb = RingBuffer(64)
    stop = threading.Event()
    total = 400_000
    data = np.arange(total, dtype=np.float32)

    def writer():
        for i in range(0, total, 48):
            rb.write(data[i : i + 48])
        rb.close()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        t = threading.Thread(target=writer)
        t.start()
        out = np.empty(40, dtype=np.float32)
        returned = mismatched = 0
        while not rb.finished:
            n = rb.read(out, stop)
            end = rb._read  # the reader's position after this read: returned and skipped samples
            mismatched += int(np.count_nonzero(out[:n] != data[end - n : end]))
            returned += n
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert mismatched == 0
    assert rb.overflow_samples > 0 and returned + rb.overflow_samples == total


def test_a_block_overwritten_while_the_reader_copies_is_counted_as_lost():
    """The exact interleaving the race above rarely hits: the writer has stored part of a block over
    unread samples when the reader copies them. Those samples must count as lost, not be returned."""

    class Interleaved:
        """The ring's storage; on the writer's first store of the armed block, the reader reads."""

        def __init__(self, buf: np.ndarray) -> None:
            self.buf, self.armed, self.got = buf, False, None

        def __getitem__(self, key):
            return self.buf[key]

        def __setitem__(self, key, value):
            self.buf[key] = value
            if self.armed:
                self.armed = False
                out = np.empty(16, dtype=np.float32)
                n = rb.read(out, threading.Event())
                self.got = (out[:n].copy(), rb._read)

    rb = RingBuffer(16)
    store = Interleaved(rb._buf)
    rb._buf = store
    rb.write(np.arange(0, 16, dtype=np.float32))  # full, nothing read yet
    store.armed = True
    rb.write(np.arange(16, 24, dtype=np.float32))  # overwrites 0..7; the reader reads in the middle
    values, end = store.got
    assert values.tolist() == list(range(end - len(values), end))  # what it returned is what it says
    assert rb.overflow_samples == 8 and values.tolist() == list(range(8, 16))
