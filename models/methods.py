"""The registry of pre-training methods: one line per method, importable without torch.

Each :class:`Method` member says which architectures the method fits, which module trains
it and its default learning rate. The module is imported only when the method runs
(:func:`models.pretraining.pretrain`), so the command line lists the methods, and the
runtime image runs ``headstart``, without torch. Every list of methods or of valid
(architecture, method) pairs is derived from here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple, Self

from models.defaults import ARCHS, Arch
from models.errors import ConfigError


class Entry(NamedTuple):
    """One registry line (a tuple, so the enum passes its fields to ``Method.__new__``)."""

    name: str
    archs: tuple[Arch, ...]
    """The architectures whose encoder the method pre-trains."""
    module: str | None = None
    """The module whose ``pretrain`` function trains it; ``None`` for no pre-training."""
    lr: float = 0.0
    """Learning rate when ``PretrainConfig.lr`` is ``None``."""
    epochs: int = 10
    """Passes over the pool a build gives it (per layer for the greedy methods)."""
    batch_size: int = 64
    """Images per step a build gives it."""


class Method(StrEnum):
    """A pre-training method; its value is its name, so it reads and serialises as one."""

    archs: tuple[Arch, ...]
    module: str | None
    lr: float
    epochs: int
    batch_size: int

    def __new__(cls, *fields: Any) -> Self:
        entry = Entry(*fields)
        member = str.__new__(cls, entry.name)
        member._value_ = entry.name
        member.archs, member.module, member.lr = entry.archs, entry.module, entry.lr
        member.epochs, member.batch_size = entry.epochs, entry.batch_size
        return member

    # The order is the order every message lists them in.
    rbm = Entry("rbm", ("mlp",), "models.pretraining.rbm", lr=0.05)  # CD-k with SGD
    dae = Entry("dae", ("mlp",), "models.pretraining.autoencoder", lr=1e-3)
    cae = Entry("cae", ("cnn",), "models.pretraining.conv_autoencoder", lr=1e-3)
    contrastive = Entry(
        "contrastive",
        ("cnn",),
        "models.pretraining.contrastive",
        lr=1e-3,
        epochs=30,
        batch_size=256,
    )
    vicreg = Entry(
        "vicreg", ("cnn",), "models.pretraining.vicreg", lr=1e-3, epochs=30, batch_size=256
    )
    supervised = Entry("supervised", ARCHS, "models.pretraining.supervised", lr=1e-3)
    none = Entry("none", ARCHS)  # the random-init baseline


DEFAULT_METHOD: dict[Arch, Method] = {"mlp": Method.rbm, "cnn": Method.contrastive}
"""The pre-training each architecture gets when ``--method`` is not given."""

VALID_METHODS: dict[str, tuple[Method, ...]] = {
    arch: tuple(m for m in Method if arch in m.archs) for arch in ARCHS
}
"""The methods each architecture can be pre-trained with."""


def check_pairing(arch: str, method: str) -> Method:
    """The :class:`Method` named ``method`` if it fits ``arch``; else a ``ConfigError``
    listing the valid ones."""
    if arch not in VALID_METHODS:
        raise ConfigError(f"unknown architecture {arch!r} (expected one of: {', '.join(ARCHS)})")
    found = Method.__members__.get(str(method))
    if found is None:
        names = ", ".join(Method)
        raise ConfigError(f"unknown method {method!r} (expected one of: {names})")
    if found not in VALID_METHODS[arch]:
        raise ConfigError(
            f"method {found.value!r} does not apply to arch {arch!r} (valid: {pairs()})"
        )
    return found


def pairs() -> str:
    """``mlp: rbm, dae, none; cnn: ...``: the valid pairs, as messages and help list them."""
    return "; ".join(f"{a}: {', '.join(m)}" for a, m in VALID_METHODS.items())
