"""The pacer never books more than R request starts in any one-second window."""

from __future__ import annotations

import threading
import time

from analytics_assets.split_source.pacing import RequestPacer


def test_configured_limit_holds_in_every_sliding_window_across_threads():
    rate = 20
    pacer = RequestPacer(max_requests_per_second=rate)
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            slot = pacer.reserve()
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    slots.sort()
    assert len(slots) == 200
    # Any rate + 1 consecutive starts span more than a second (plus a jitter margin)...
    spans = [slots[i + rate] - slots[i] for i in range(len(slots) - rate)]
    assert min(spans) >= 1.0 + RequestPacer.JITTER - 1e-9
    # ...while the limit is still used: 200 starts are booked over about 10 s, not much more.
    assert slots[-1] - slots[0] < 200 / rate * 1.05


def test_a_429_holds_every_request_back_until_the_reset():
    pacer = RequestPacer(max_requests_per_second=None)
    first = pacer.reserve()
    pacer.pause_until(time.monotonic() + 2.0)
    assert pacer.reserve() >= first + 2.0 - 0.05


def test_a_rate_below_one_a_second_spaces_requests():
    # SPLIT_MAX_REQUESTS_PER_SECOND=0.5: one request every two seconds, no error.
    pacer = RequestPacer(max_requests_per_second=0.5)
    slots = [pacer.reserve() for _ in range(4)]
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert all(abs(gap - 2.0) < 1e-6 for gap in gaps), gaps


def test_a_request_sent_late_holds_the_window_from_when_it_was_sent():
    # A request let go on time can be sent much later (it waited for an in-flight place, a
    # handshake or the interpreter), and the server counts it when it arrives. Every R + 1
    # consecutive sends must still span more than a second.
    rate = 5
    pacer = RequestPacer(max_requests_per_second=rate)
    late = pacer.acquire()
    threading.Timer(0.4, late.sent).start()
    others = []
    for _ in range(2 * rate):
        start = pacer.acquire()
        start.sent()
        others.append(start)
    sends = sorted(s.at for s in [late, *others] if s.at is not None)
    assert len(sends) == 2 * rate + 1
    spans = [sends[i + rate] - sends[i] for i in range(len(sends) - rate)]
    assert min(spans) >= RequestPacer.WINDOW_SECONDS + RequestPacer.JITTER - 1e-3


def test_a_request_that_never_went_out_stops_counting_as_pending():
    # An attempt that fails before sending (refused connection, stop) is settled as sent
    # then: it holds one place for one window, never the window for ever.
    pacer = RequestPacer(max_requests_per_second=2)
    first, second = pacer.acquire(), pacer.acquire()
    first.settle()
    second.settle()
    began = time.monotonic()
    pacer.acquire().sent()
    assert time.monotonic() - began < RequestPacer.WINDOW_SECONDS + 0.5
