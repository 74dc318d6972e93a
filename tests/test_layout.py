"""The test tree's layout rules that pytest only reports as a collection error in a full run."""

from collections import defaultdict
from pathlib import Path


def test_test_file_names_are_unique():
    # tests/ has no __init__.py files: pytest imports each file by its basename, so two files with the
    # same name in different folders stop the whole run at collection
    by_name = defaultdict(list)
    for path in Path(__file__).parent.rglob("test_*.py"):
        by_name[path.name].append(str(path))
    assert not {name: paths for name, paths in by_name.items() if len(paths) > 1}
