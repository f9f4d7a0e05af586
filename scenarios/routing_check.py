"""The `command` checker of the routing evaluation's code tasks: the answer (stdin) is Python code, perhaps in
a Markdown fence; it is run, then the test given as the first argument. Exit 0: the answer passes."""

import re
import sys

answer = sys.stdin.read()
fenced = re.findall(r"```(?:python|py)?\n(.*?)```", answer, re.S)
source = "\n".join(fenced) if fenced else answer
scope = {}
try:
    exec(compile(source, "<answer>", "exec"), scope)
    exec(compile(sys.argv[1], "<test>", "exec"), scope)
except BaseException as e:  # the answer's own errors are a failed check, whatever they are
    print(f"check failed: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
