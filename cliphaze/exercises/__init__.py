"""Answer checks for the lessons' exercises: ``check("03.2", answer)`` says right or wrong, and why.

Every lesson ends with an ``## Exercises`` section; the worked solutions are
``notebooks/solutions/NN_*.ipynb``. Where an answer can be checked by a program, the lesson names
the exercise id (``"LL.K"``: lesson ``LL``, exercise ``K``) and the learner calls::

    from cliphaze.exercises import check
    check("03.2", my_zoh_step)          # prints "[RIGHT] ..." or "[NOT YET] ...", returns a Verdict

The checks compare the learner's answer with the library (the one source of truth for every
piece) or with a quantity computed from the exercise's own data; they never compare with a
hard-coded number. A check that receives something of the wrong kind (a tensor of the wrong
shape, a function that raises) answers "[NOT YET]" with the reason instead of a traceback.

Each lesson's checks live in ``cliphaze/exercises/lessonLL.py`` and register themselves with
:func:`exercise`; :func:`check` imports the lesson's module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Verdict", "check", "exercise", "available"]

#: exercise id -> (check function, one-line statement)
_REGISTRY: dict[str, tuple[Callable[..., Verdict], str]] = {}
LESSONS = ("00", "01", "02", "03", "04", "05", "06", "07")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check.

    Attributes:
        exercise: the exercise id, e.g. ``"03.2"``.
        right: whether the answer is accepted.
        reason: why (what was compared, with the numbers).
    """

    exercise: str
    right: bool
    reason: str

    def __bool__(self) -> bool:
        return self.right

    def __str__(self) -> str:
        return f"[{'RIGHT' if self.right else 'NOT YET'}] exercise {self.exercise}: {self.reason}"


def exercise(exercise_id: str, statement: str):
    """Register ``fn(answer, **context) -> (right: bool, reason: str)`` as the check of an exercise."""

    def register(fn: Callable[..., tuple[bool, str]]):
        if exercise_id in _REGISTRY:
            raise ValueError(f"exercise {exercise_id} is registered twice")
        _REGISTRY[exercise_id] = (fn, statement)
        return fn

    return register


def _load(lesson: str) -> None:
    try:
        importlib.import_module(f"cliphaze.exercises.lesson{lesson}")
    except ModuleNotFoundError as err:
        if err.name != f"cliphaze.exercises.lesson{lesson}":
            raise


def available() -> dict[str, str]:
    """Every checkable exercise id and its one-line statement, in order."""
    for lesson in LESSONS:
        _load(lesson)
    return {k: _REGISTRY[k][1] for k in sorted(_REGISTRY, key=lambda s: tuple(int(p) for p in s.split(".")))}


def check(exercise_id: str, answer, quiet: bool = False, **context) -> Verdict:
    """Check a learner's answer to one exercise.

    Args:
        exercise_id: ``"LL.K"`` as the lesson's Exercises section names it.
        answer: what the exercise asks for (a number, a tensor, a function, a module...).
        quiet: do not print the verdict (it is returned either way).
        **context: extra inputs some exercises take (named in the exercise text).

    Returns:
        a :class:`Verdict` (truthy when right); printed unless ``quiet``.

    Raises:
        KeyError: no exercise has this id (the message lists the ones that exist).
    """
    lesson = exercise_id.split(".")[0]
    _load(lesson)
    if exercise_id not in _REGISTRY:
        known = ", ".join(available())
        raise KeyError(f"no checkable exercise {exercise_id!r}; the checkable ones are: {known}")
    fn, _ = _REGISTRY[exercise_id]
    try:
        right, reason = fn(answer, **context)
    except Exception as err:  # a learner's function that raises is an answer that is not right yet
        right, reason = False, f"checking the answer raised {type(err).__name__}: {err}"
    verdict = Verdict(exercise_id, bool(right), reason)
    if not quiet:
        print(verdict)
    return verdict
