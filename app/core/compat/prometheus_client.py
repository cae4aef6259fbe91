"""prometheus_client (pinned 0.26.0): adding one process' multiprocess file into another.

Its public API reads the per-process files (`MultiProcessCollector`) and drops a dead process' live
gauges (`mark_process_dead`), but has no way to merge a dead process' counters into a file that
stays, so that recycled gunicorn workers do not pile up files. That takes its file format, through
`prometheus_client.mmap_dict.MmapedDict`: `read_all_values_from_file`, `read_value`, `write_value`.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict


def add_file_into(source: Path, *, archive: Path) -> None:
    """Add every value of `source` to the same key's value in `archive` (created if missing)."""
    into = MmapedDict(str(archive))
    try:
        for key, value, timestamp, _position in MmapedDict.read_all_values_from_file(str(source)):
            archived, _ = into.read_value(key)
            into.write_value(key, archived + value, timestamp)
    finally:
        into.close()
