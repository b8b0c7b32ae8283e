"""The rate and time left of a transfer: a window of recent seconds, not a mean since the start."""

from __future__ import annotations

import pytest

from hail_emr_lab.notebook.transfer_rate import RateMeter, human_bytes, human_rate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_over_the_last_seconds_not_since_the_start():
    clock = Clock()
    meter = RateMeter(window=5.0, clock=clock)
    # 10 s at 1 MB/s, then 10 s at 10 MB/s.
    for _ in range(10):
        clock.now += 1
        meter.add(meter.done + 1_000_000, 110_000_000)
    assert meter.rate() == pytest.approx(1e6)
    for _ in range(10):
        clock.now += 1
        meter.add(meter.done + 10_000_000)
    assert meter.rate() == pytest.approx(10e6)  # the window holds only the fast part
    assert meter.mean_rate() == pytest.approx(110e6 / 20)  # the mean since the start
    assert meter.done == meter.total and meter.eta() == 0.0


def test_eta_is_what_is_left_at_the_current_rate():
    clock = Clock()
    meter = RateMeter(window=4.0, clock=clock)
    for _ in range(4):
        clock.now += 1
        meter.add(meter.done + 2_000_000, 20_000_000)
    assert meter.rate() == pytest.approx(2e6)
    assert meter.eta() == pytest.approx(12_000_000 / 2e6)


def test_a_stall_lowers_the_rate_and_leaves_no_eta_when_nothing_moves():
    clock = Clock()
    meter = RateMeter(window=5.0, clock=clock)
    clock.now += 1
    meter.add(5_000_000, 50_000_000)
    clock.now += 4  # nothing moved for 4 s: the rate over the window is 5 MB in 5 s
    assert meter.rate() == pytest.approx(1e6)
    clock.now += 10  # nothing moved for the whole window
    assert meter.rate() == 0.0 and meter.eta() is None


def test_chunky_updates_are_smoothed_by_the_window():
    clock = Clock()
    meter = RateMeter(window=5.0, clock=clock)
    rates = []
    for _ in range(10):  # an 8 MB chunk every 3 s: 2.67 MB/s
        clock.now += 2
        meter.add(meter.done + 8_000_000, 80_000_000)
        rates.append(meter.rate())
        clock.now += 1  # read between chunks too
        rates.append(meter.rate())
    settled = rates[6:]
    assert min(settled) > 0.8 * 8e6 / 3 and max(settled) < 1.2 * 8e6 / 3, rates


def test_unknown_before_time_passes_and_without_a_total():
    clock = Clock()
    meter = RateMeter(clock=clock)
    assert meter.rate() is None and meter.mean_rate() is None and meter.eta() is None
    clock.now += 1
    meter.add(1000)
    assert meter.rate() == pytest.approx(1000.0) and meter.eta() is None


def test_bytes_going_back_is_refused():
    meter = RateMeter(clock=Clock())
    meter.add(10)
    with pytest.raises(ValueError, match="went back"):
        meter.add(5)
    with pytest.raises(ValueError, match="positive"):
        RateMeter(window=0)


def test_human_units():
    assert human_bytes(0) == "0 B" and human_bytes(999) == "999 B"
    assert human_bytes(12_345) == "12.3 kB" and human_bytes(120_300_000) == "120.3 MB"
    assert human_bytes(1_204_000_000) == "1.20 GB" and human_bytes(25e9) == "25.0 GB"
    assert human_rate(8_100_000) == "8.1 MB/s" and human_rate(5_000) == "5.0 kB/s" and human_rate(None) == "… MB/s"
