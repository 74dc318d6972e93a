"""JSON Lines rows (prompt sets, benchmarks, responses), with errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

from itero.errors import IteroError


class DataFileError(IteroError, ValueError):
    pass


# One row of a prompt set or benchmark; a longer line is a broken file or a document, not a problem
# (a 5 MB prompt took 65 s and 17 GB before failing inside generation).
MAX_LINE_CHARS = 1_000_000


def _lines(f, path: Path):
    """The file's lines, refusing one over ``MAX_LINE_CHARS`` without reading all of it into memory."""
    lineno = 0
    while line := f.readline(MAX_LINE_CHARS + 1):
        lineno += 1
        if len(line) > MAX_LINE_CHARS:
            raise DataFileError(
                f"{path}:{lineno}: line longer than {MAX_LINE_CHARS:,} characters; one row is one problem "
                "(a prompt, its answer): shorten or drop it"
            )
        yield line


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """Every row of a JSONL file; blank lines are skipped, anything else malformed is an error."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file does not exist")
    if not path.is_file():
        raise DataFileError(f"{path}: is a folder, not a JSON Lines file")
    try:
        return _rows(path, required)
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path}: not UTF-8 text (byte {err.start} of a line): is it a JSON Lines file?") from None
    except OSError as err:
        raise DataFileError(f"{path}: cannot be read ({err.strerror})") from None


def _rows(path: Path, required: tuple[str, ...]) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(_lines(f, path), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFileError(f"{path}:{lineno}: malformed JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(row, dict):
                raise DataFileError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for name in required:
                if row.get(name) is None:
                    raise DataFileError(f"{path}:{lineno}: missing field {name!r} (fields present: {', '.join(row)})")
            rows.append(row)
    return rows
