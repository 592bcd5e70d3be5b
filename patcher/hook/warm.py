"""``python -m bbpatch.hook.warm PACKAGE``: the code cache's entry for the tree as it is now, on stdout.

The finder starts this in a child process on a cold cache, so the patching runs while the parent imports torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bbpatch.hook import cache, compiler, finder


def main(argv) -> int:
    package = Path(argv[0])
    sources = finder.read_sources(package)
    sys.stdout.buffer.write(cache.encode_entry(cache.entry_key(sources), compiler.compile_entry(package, sources)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
