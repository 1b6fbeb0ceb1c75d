"""core.resume: a resumed momentum method gets the EMA coefficient of its restored step."""

import math
from types import SimpleNamespace

import pytest

from solo_coplugin.core.resume import restore_momentum_tau


class Updater:
    """solo-learn's MomentumUpdater schedule (cosine from base_tau to final_tau)."""

    def __init__(self, base_tau=0.99, final_tau=1.0):
        self.base_tau, self.final_tau, self.cur_tau = base_tau, final_tau, base_tau

    def update_tau(self, cur_step, max_steps):
        cosine = (math.cos(math.pi * cur_step / max_steps) + 1) / 2
        self.cur_tau = self.final_tau - (self.final_tau - self.base_tau) * cosine


def module(global_step, max_steps=100, updater=None):
    trainer = SimpleNamespace(global_step=global_step, estimated_stepping_batches=max_steps)
    return SimpleNamespace(momentum_updater=updater or Updater(), _trainer=trainer)


def test_a_resumed_run_gets_the_tau_the_straight_run_has_at_that_step():
    straight = Updater()
    for step in range(1, 41):  # solo-learn: after step g's update, tau(g) for the next step
        straight.update_tau(cur_step=step, max_steps=100)
    resumed = module(global_step=40)
    assert resumed.momentum_updater.cur_tau == 0.99  # what solo-learn resumes with
    restore_momentum_tau(resumed)
    assert resumed.momentum_updater.cur_tau == pytest.approx(straight.cur_tau, abs=0)
    assert straight.cur_tau > 0.99


def test_nothing_changes_at_step_0_without_an_updater_or_a_trainer():
    fresh = module(global_step=0)
    restore_momentum_tau(fresh)
    assert fresh.momentum_updater.cur_tau == 0.99
    restore_momentum_tau(SimpleNamespace(_trainer=fresh._trainer))  # SimCLR: no updater
    detached = SimpleNamespace(momentum_updater=Updater(), _trainer=None)
    restore_momentum_tau(detached)
    assert detached.momentum_updater.cur_tau == 0.99
