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
