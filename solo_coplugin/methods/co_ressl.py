"""CO-ReSSL: ReSSL plus its relational loss between the weak view's teacher and each local."""

from solo.methods.ressl import ReSSL

from solo_coplugin.core import co_ressl_local_loss
from solo_coplugin.methods.co_base import CoMixin

#: ReSSL's teacher is the second large crop, the weakly augmented one (see its augmentations)
TEACHER_VIEW = 1


class CoReSSL(CoMixin, ReSSL):
    """CO-ReSSL (ReSSL, https://arxiv.org/abs/2107.09282, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector (ReSSL's layer sizes, as
    1x1 convolutions); its normalized projection is a student of ReSSL's relational target: the
    momentum projection of the weakly augmented view, as a distribution over the queue (the
    queue as the global loss saw it, before this step's enqueue), is the target of a
    cross-entropy with the local projection's own distribution over that queue, with ReSSL's
    two temperatures. ReSSL is asymmetric and so is its CO variant: the locals of the strongly
    augmented view (and of small crops, with ``local_small_crops``) are students, the weak
    view's locals are not, since their target would be a strongly augmented teacher. Only
    global momentum projections are enqueued.

    Extra cfg settings:
        method_kwargs: ReSSL's (proj_output_dim, proj_hidden_dim, temperature_q,
            temperature_k, queue_size), and the CO keys of
            :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector"}
    global_target = "momentum_z"

    def state_before_step(self):
        # ReSSL enqueues this step's keys inside its step; the local loss uses the queue the
        # global loss used
        return self.queue.clone()

    def local_loss(self, local, targets, batch, state):
        students = [z for view, z in enumerate(local) if view != TEACHER_VIEW]
        return co_ressl_local_loss(
            students, targets[TEACHER_VIEW], state, self.temperature_q, self.temperature_k
        )
