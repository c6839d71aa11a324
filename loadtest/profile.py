"""Hot spots from a py-spy raw profile (collapsed stacks), as % of the samples.

    .venv/bin/python loadtest/profile.py loadtest/profiles/<run>-pid0.txt [--top 25]

bench.py --profile writes both <run>-pidN.svg (flame graph) and <run>-pidN.txt (raw).
py-spy samples only threads that are running, so 100 % = the worker's busy CPU time.

* self: the innermost frame of each sample (where the CPU actually was);
* inclusive: samples with the function anywhere on the stack (app/ frames only, since
  every sample is under the event loop and the framework anyway);
* by package: the innermost frame's package (site-packages top-level name, app, stdlib).
"""

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def name(frame: str) -> str:
    """'func (file:line)' -> 'func (file)': aggregate a function over its lines."""
    m = FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def package(frame: str) -> str:
    m = FRAME.match(frame)
    file = m["file"] if m else frame
    if file.startswith("app/"):
        return "app"
    return file.split("/", 1)[0] if "/" in file else file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("raw", type=Path, nargs="+")
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args()
    stacks = [s for path in args.raw for s in parse(path)]
    total = sum(n for _, n in stacks) or 1
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkg: Counter[str] = Counter()
    for frames, n in stacks:
        own[name(frames[-1])] += n
        pkg[package(frames[-1])] += n
        for f in {name(f) for f in frames if "(app/" in f}:
            incl[f] += n
    print(f"{total} samples from {', '.join(str(p) for p in args.raw)}")
    sections = (("self", own), ("inclusive (app/ frames)", incl), ("by package (self)", pkg))
    for title, counter in sections:
        print(f"\n{title}:")
        for key, n in counter.most_common(args.top):
            print(f"  {100 * n / total:5.1f} %  {key}")


if __name__ == "__main__":
    main()
