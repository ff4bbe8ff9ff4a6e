"""A stand-in for an AI coding agent, run unattended in the agent phase.

It does what such an agent does in a loop: run the tests, read the failure, edit the code,
run the tests again, and stop when they pass. Its edits reach the host only as
changes.patch in the run record. (A real agent would call a model here; this one knows the
one fix it needs, so the example runs offline and deterministically.)
"""
import os
import pathlib
import subprocess
import sys


def run_tests() -> bool:
    r = subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", "tests", "-q"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."})
    print(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.stdout.strip())
    return r.returncode == 0


print("agent: running the tests")
if run_tests():
    print("agent: nothing to fix")
    sys.exit(0)
src = pathlib.Path("calc.py")
code = src.read_text()
fixed = code.replace("len(values) + 1", "len(values)")
if fixed == code:
    print("agent: no fix found")
    sys.exit(1)
src.write_text(fixed)
print("agent: edited calc.py (off-by-one in mean)")
ok = run_tests()
print("agent: tests pass" if ok else "agent: tests still fail")
sys.exit(0 if ok else 1)
