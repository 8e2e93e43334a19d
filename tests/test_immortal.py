"""app/immortal.py: the preloaded objects made immortal before gunicorn forks.

On the interpreters it supports (64-bit CPython 3.12, 3.13: the image's), a
forked child that uses the objects keeps sharing their pages; elsewhere it
changes nothing and says why. The image's interpreter is checked in the stack
suite too (tests/stack/test_02_image.py), inside the app's container."""

import json
import os
import subprocess
import sys
import textwrap

from app.immortal import why_not_supported

# A child process: a heap of 200,000 small objects (a dict of lists of strings,
# about 20 MB), made immortal or not, frozen, forked; the forked child reads
# every object (taking and dropping a reference to each, as serving requests
# does) and reports how much memory it had to copy from its parent.
FORKED_READER = textwrap.dedent(
    """
    import gc, json, os, re, sys
    gc.disable()
    from app.immortal import make_preloaded_objects_immortal, is_immortal
    heap = {f"key {i}": [f"value {i}-{j}" for j in range(4)] for i in range(200_000)}
    made = make_preloaded_objects_immortal() if sys.argv[1] == "immortal" else 0
    gc.freeze()

    def private_kb():
        text = open("/proc/self/smaps_rollup").read()
        return sum(int(v) for v in re.findall(r"Private_(?:Clean|Dirty):\\s+(\\d+)", text))

    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        before = private_kb()
        for key, values in heap.items():
            for value in values:
                len(value)
        report = {"copied_kb": private_kb() - before, "sample_immortal": is_immortal(heap["key 7"])}
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.waitpid(child, 0)
    print(json.dumps({"made": made, **json.loads(os.read(read, 4096))}))
    """
)


def forked_reader(mode: str) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", FORKED_READER, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    report: dict[str, int] = json.loads(result.stdout)
    return report


def test_what_this_interpreter_gets() -> None:
    reason = why_not_supported()
    mortal = forked_reader("mortal")
    immortal = forked_reader("immortal")
    if reason is None:
        # Every one of the 1,000,000 objects (and the app's own) made immortal, and
        # the reading child copied a small fraction of what the mortal one copied.
        assert immortal["made"] > 1_000_000
        assert immortal["sample_immortal"]
        assert mortal["copied_kb"] > 10_000
        assert immortal["copied_kb"] < mortal["copied_kb"] / 5
    else:
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        assert version in reason or "CPython" not in reason
        assert immortal["made"] == 0
        assert not immortal["sample_immortal"]
