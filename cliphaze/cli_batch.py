"""What every image-writing command shares: inputs, a safe output folder, skipped files, a summary.

``cliphaze dehaze``, ``cliphaze density`` and ``cliphaze haze`` take files, folders and glob
patterns and write into an output folder. The rules are the same everywhere:

- *Inputs.* A folder gives the images directly inside it (not its sub-folders, which are named
  so nothing is skipped silently, symbolic links included); a pattern gives the files it matches;
  each folder and pattern says how many images it yielded. A file with a suffix that is not an
  image suffix (``photo.foo``) is skipped and listed, as is an input that matches nothing.
- *Never overwrite an input.* The output folder may not be the folder of any input image (nor a
  file): every output lands somewhere no input lives. Checked before anything is loaded.
- *A batch always finishes.* An unreadable image, a failed write or a failed computation skips
  that one file; the summary lists every skipped file; the exit status is 1 when anything was
  skipped, 0 otherwise (2, via :class:`cliphaze.cli_types.UserError`, when nothing could start).

Imports no torch: the command modules import it only inside their ``run`` functions.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from cliphaze.cli_types import EXIT_OK, EXIT_SKIPPED, UserError
from cliphaze.io import IMAGE_SUFFIXES

__all__ = ["expand_inputs", "prepare_output_folders", "unique_name", "Batch"]


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _describe_folder(folder: Path) -> tuple[list[Path], str]:
    """Images directly in ``folder`` and a one-line account of what was (not) taken."""
    images, others, subdirs = [], 0, []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            subdirs.append(p.name + ("/ (symbolic link)" if p.is_symlink() else "/"))
        elif p.is_file() and _is_image_name(p):
            images.append(p)
        else:
            others += 1
    parts = [f"{folder}: {len(images)} image(s)"]
    if others:
        parts.append(f"{others} other file(s) ignored (not {', '.join(IMAGE_SUFFIXES)})")
    if subdirs:
        parts.append(f"sub-folders not read (give them as inputs to include them): {', '.join(subdirs)}")
    return images, "; ".join(parts)


def expand_inputs(items: list[str], notes: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Turn command-line inputs into image paths.

    Args:
        items: files, folders (their images, not recursive) and glob patterns.
        notes: if given, receives one line per folder or pattern saying how many images it
            yielded and what it left out (sub-folders, other files).

    Returns:
        ``(paths in order without duplicates, problems)``; a problem names an input that matched
        nothing (a missing file, an empty folder, a pattern without matches) or a file skipped
        because its suffix is not an image suffix.
    """
    notes = notes if notes is not None else []
    paths: list[Path] = []
    problems: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found, line = _describe_folder(p)
            notes.append(line)
            if not found:
                problems.append(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif p.exists():
            if _is_image_name(p):
                paths.append(p)
            else:
                problems.append(f"{p}: unknown image suffix {p.suffix or '(none)'!r}; "
                                f"use one of {', '.join(IMAGE_SUFFIXES)} (rename the file if it is an image)")
        elif any(ch in item for ch in "*?["):
            matched = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            found = [m for m in matched if _is_image_name(m)]
            line = f"{item}: {len(found)} image(s)"
            if len(matched) > len(found):
                line += f"; {len(matched) - len(found)} other file(s) ignored"
            notes.append(line)
            if not found:
                problems.append(f"{item}: pattern matches no image files")
            paths.extend(found)
        else:
            problems.append(f"{p}: no such file or folder")
    seen, unique = set(), []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, problems


def prepare_output_folders(out: Path, inputs: list[Path], subfolders: tuple[str, ...] = (),
                           hint: str = "a new folder such as outputs/") -> Path:
    """Check and create the output folder so that no output can replace an input.

    Args:
        out: the ``-o`` folder.
        inputs: every input image.
        subfolders: names of the folders written under ``out`` (``("hazy", "GT")`` for
            ``cliphaze haze``); each is checked too.
        hint: what to suggest instead.

    Returns:
        ``out`` (created).

    Raises:
        UserError: ``out`` is a file, is (or holds as a written sub-folder) the folder of an
            input image, or cannot be created.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; -o takes an output folder (it is created if needed)")
    targets = [out, *(out / s for s in subfolders)]
    resolved = {t.resolve(): t for t in targets}
    for p in inputs:
        parent = p.resolve().parent
        if parent in resolved:
            raise UserError(f"{resolved[parent]}: holds the input {p}; writing there could replace or mix with "
                            f"the inputs; choose another output folder ({hint})")
    for t in targets:
        try:
            t.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{t}: cannot create the output folder ({err.strerror or err}); "
                            "choose a folder you can write to") from None
        if not os.access(t, os.W_OK):
            raise UserError(f"{t}: output folder is not writable; choose a folder you can write to")
    return out


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``stem_2.ext``, ``stem_3.ext``, ... when an earlier input took it."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{stem}_{n}{suffix}"
    used.add(candidate.lower())
    return candidate


def gather_inputs(items: list[str], what: str = "images") -> tuple[list[Path], list[str]]:
    """:func:`expand_inputs` for a batch command: prints the per-folder notes and refuses when nothing
    was found.

    Args:
        items: the command's ``IN`` arguments.
        what: what the command found none of, for the error ("images to dehaze", ...).

    Returns:
        ``(paths, problems)`` as :func:`expand_inputs` gives them, ``paths`` never empty.

    Raises:
        UserError: no input yields an image (the message lists why for each).
    """
    from cliphaze.cli_types import UserError

    notes: list[str] = []
    paths, problems = expand_inputs(items, notes)
    for line in notes:
        print(line)
    if not paths:
        raise UserError(f"{', '.join(items)}: no {what} ({'; '.join(problems)})")
    return paths, problems


class Batch:
    """Bookkeeping of one batch command: skipped files, notes and the closing summary.

    Args:
        command: ``"cliphaze dehaze"``, ... (message prefix).
        problems: input problems from :func:`expand_inputs` (each counts as a skipped item).
    """

    def __init__(self, command: str, problems: list[str] | None = None):
        self.command = command
        self.skipped: list[str] = list(problems or [])
        self.notes: list[str] = []
        for msg in self.skipped:
            print(f"{command}: skipped: {msg}", file=sys.stderr)

    def skip(self, message: str) -> None:
        """Record and print a skipped file (``message`` names it and says why)."""
        self.skipped.append(message)
        print(f"{self.command}: skipped: {message}", file=sys.stderr)

    def note(self, message: str) -> None:
        """Record and print a warning that did not stop the file (e.g. an animated image)."""
        self.notes.append(message)
        print(f"{self.command}: warning: {message}", file=sys.stderr)

    def read(self, path):
        """The image at ``path`` as :func:`cliphaze.io.read_image` gives it, or None after recording why
        it was skipped; its warnings (an animated image, ...) become notes."""
        import warnings

        from cliphaze.io import ImageReadError, read_image

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                image = read_image(path)
        except ImageReadError as err:
            self.skip(str(err))
            return None
        for w in caught:
            self.note(str(w.message))
        return image

    def finish(self, summary: str) -> int:
        """Print ``summary`` and the skipped files; return 0, or 1 when anything was skipped."""
        print(summary)
        if self.notes:
            print(f"{len(self.notes)} warning(s):", file=sys.stderr)
            for msg in self.notes:
                print(f"  {msg}", file=sys.stderr)
        if self.skipped:
            print(f"skipped {len(self.skipped)} item(s):", file=sys.stderr)
            for msg in self.skipped:
                print(f"  {msg}", file=sys.stderr)
            return EXIT_SKIPPED
        return EXIT_OK
